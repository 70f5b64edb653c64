#!/bin/sh
# Refreshes the browser libraries the web app uses, from the npm registry (`make vendor`).
# The page loads them from /web/vendor/... at run time: no CDN, works on a LAN without internet.
# Change a version here, run `make vendor`, check the page and the browser tests, commit.
set -eu
cd "$(dirname "$0")"
here=$(pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# unpack PACKAGE VERSION DEST FILE... : copies FILE (paths inside the npm package) into DEST.
unpack() {
    pkg=$1 version=$2 dest=$3
    shift 3
    work="$tmp/$dest"
    mkdir -p "$work"
    tarball=$(cd "$work" && npm pack --silent "$pkg@$version" | tail -n 1)
    tar -xzf "$work/$tarball" -C "$work"
    rm -rf "${here:?}/$dest"
    mkdir -p "$here/$dest"
    for file in "$@"; do
        mkdir -p "$here/$dest/$(dirname "$file")"
        cp "$work/package/$file" "$here/$dest/$file"
    done
    echo "$pkg@$version" > "$here/$dest/VERSION"
    echo "vendored $pkg@$version into $dest/"
}

unpack leaflet 1.9.4 leaflet \
    LICENSE dist/leaflet.js dist/leaflet.css \
    dist/images/layers.png dist/images/layers-2x.png \
    dist/images/marker-icon.png dist/images/marker-icon-2x.png dist/images/marker-shadow.png
unpack leaflet.markercluster 1.5.3 leaflet.markercluster \
    MIT-LICENCE.txt dist/leaflet.markercluster.js dist/MarkerCluster.css dist/MarkerCluster.Default.css
unpack @geoman-io/leaflet-geoman-free 2.20.2 leaflet-geoman \
    LICENSE dist/leaflet-geoman.min.js dist/leaflet-geoman.css
unpack swagger-ui-dist 5.35.0 swagger-ui \
    LICENSE NOTICE swagger-ui-bundle.js swagger-ui-bundle.js.LICENSE.txt swagger-ui.css favicon-32x32.png
