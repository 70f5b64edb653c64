// Live map: every device's latest position from the stream, heading arrow, colour by state,
// clustering; a searchable list beside it.

import { ago, clear, fmtValue, h, stateDot, throttle } from "../dom.js";
import { alarmsOn, fleet, position, stateOf } from "../live.js";
import { arrowIcon, createMap, removeMap } from "../mapbase.js";

const L = window.L;
const STATES = ["moving", "stopped", "offline", "alarm"];

export default {
  id: "map",
  title: "Map",
  perDevice: false,
  async mount(root, ctx) {
    const search = h("input", { type: "search", placeholder: "Search name or ident", "aria-label": "Search devices" });
    const list = h("ul", { class: "device-list", id: "map-devices" });
    const legend = h("div", { class: "legend" }, STATES.map((s) => h("span", {}, stateDot(s), " ", s)));
    const mapEl = h("div", { class: "map", id: "live-map", role: "region", "aria-label": "Map of devices" });
    root.append(h("div", { class: "split" },
      h("aside", { class: "panel side" }, search, legend, list), mapEl));

    const map = createMap(mapEl);
    const cluster = L.markerClusterGroup({
      showCoverageOnHover: false, disableClusteringAtZoom: 13, maxClusterRadius: 50, chunkedLoading: true,
      iconCreateFunction(c) {
        const alarm = c.getAllChildMarkers().some((m) => m.options.sgState === "alarm");
        const n = c.getChildCount();
        return L.divIcon({ html: `<div><span>${n}</span></div>`, className: `marker-cluster sg-cluster${alarm ? " alarm" : ""}`, iconSize: [40, 40] });
      },
    });
    map.addLayer(cluster);
    const markers = new Map(); // id -> marker
    let fitted = false;

    function popup(entry) {
      const d = entry.device, v = entry.values;
      const alarms = alarmsOn(entry);
      return h("div", { class: "popup" },
        h("strong", {}, d.name || d.configuration?.ident), h("br"),
        `${stateOf(entry)} · ${fmtValue(v["position.speed"])} km/h · ignition ${v["engine.ignition.status"] === undefined ? "–" : v["engine.ignition.status"] ? "on" : "off"}`, h("br"),
        alarms.length ? h("span", { class: "alarm-text" }, `alarm: ${alarms.join(", ")}`) : null, alarms.length ? h("br") : null,
        `last message ${ago(entry.last)}`, h("br"),
        h("span", { class: "links" },
          ["history", "messages", "telemetry", "console", "commands"].map((v2) => h("a", { href: ctx.app.link(v2, d.id) }, v2))));
    }

    function update(entry) {
      const pos = position(entry);
      const id = entry.device.id;
      let marker = markers.get(id);
      if (!pos) {
        if (marker) { cluster.removeLayer(marker); markers.delete(id); }
        return;
      }
      const state = stateOf(entry);
      const heading = entry.values["position.direction"] || 0;
      const name = entry.device.name || entry.device.configuration?.ident;
      if (!marker) {
        marker = L.marker(pos, { icon: arrowIcon(state, heading, name, id), title: name, alt: name, keyboard: true, sgState: state, sgHeading: heading });
        marker.sgId = id;
        marker.bindPopup(() => popup(fleet.get(id)));
        markers.set(id, marker);
        cluster.addLayer(marker);
      } else {
        const old = marker.getLatLng();
        if (old.lat !== pos[0] || old.lng !== pos[1]) marker.setLatLng(pos);
        if (marker.options.sgState !== state || marker.options.sgHeading !== heading) {
          marker.options.sgState = state;
          marker.options.sgHeading = heading;
          marker.setIcon(arrowIcon(state, heading, name, id));
        }
      }
    }

    function row(entry) {
      const d = entry.device, state = stateOf(entry);
      const li = h("li", { dataset: { id: d.id } },
        h("button", { type: "button", class: "device-row", onclick: () => focus(d.id) },
          stateDot(state),
          h("span", { class: "name" }, d.name || d.configuration?.ident),
          h("span", { class: "meta" }, state === "moving" ? `${fmtValue(entry.values["position.speed"])} km/h` : state, " · ", ago(entry.last || d.last_active))));
      return li;
    }

    function renderList() {
      const q = search.value.trim().toLowerCase();
      clear(list);
      for (const entry of fleet.list()) {
        const d = entry.device;
        const text = `${d.name} ${d.configuration?.ident} ${d.id}`.toLowerCase();
        if (q && !text.includes(q)) continue;
        list.append(row(entry));
      }
      if (!list.children.length) list.append(h("li", { class: "empty" }, fleet.entries.size ? "No device matches." : "No devices yet."));
    }

    function focus(id) {
      const marker = markers.get(id);
      ctx.app.setDevice(id);
      if (!marker) return;
      cluster.zoomToShowLayer(marker, () => marker.openPopup());
    }

    function fit() {
      const points = [...markers.values()].map((m) => m.getLatLng());
      if (!points.length) return;
      fitted = true;
      if (points.length === 1) map.setView(points[0], 14, { animate: false });
      else map.fitBounds(L.latLngBounds(points), { padding: [30, 30], maxZoom: 14, animate: false });
    }

    const renderListSoon = throttle(renderList, 1000);
    const onChange = (e) => {
      if (e.detail.all) for (const entry of fleet.list()) update(entry);
      else if (fleet.get(e.detail.id)) update(fleet.get(e.detail.id));
      for (const [id, marker] of markers) if (!fleet.get(id)) { cluster.removeLayer(marker); markers.delete(id); }
      if (!fitted) fit();
      renderListSoon();
    };
    fleet.addEventListener("change", onChange);
    search.addEventListener("input", renderList);
    // States age (moving -> offline) without messages: re-evaluate now and then.
    const ticker = setInterval(() => { for (const entry of fleet.list()) update(entry); renderList(); }, 15000);
    for (const entry of fleet.list()) update(entry);
    fit();
    renderList();

    return {
      map,
      // [{id, lat, lng, state, heading}] of every marker, for tests and debugging
      markerPositions: () => [...markers.entries()].map(([id, m]) => ({ id, lat: m.getLatLng().lat, lng: m.getLatLng().lng, state: m.options.sgState, heading: m.options.sgHeading })),
      destroy() {
        clearInterval(ticker);
        fleet.removeEventListener("change", onChange);
        removeMap(map);
      },
    };
  },
};
