"""Geofences: circles, polygons and corridors on the WGS 84 ellipsoid, validated, indexed and
evaluated with shapely.

A geofence is ``{"id", "name", "geometry", "speed_limit"? (km/h), "devices" (a device selector,
default "all")}``; ``geometry`` is one of::

    {"type": "circle", "center": {"lat": .., "lon": ..}, "radius": km}
    {"type": "polygon", "path": [{"lat": .., "lon": ..}, ...]}        3+ points, closes itself
    {"type": "corridor", "path": [{"lat": .., "lon": ..}, ...], "width": km}   2+ points; full width

**Frame and precision.** Each fence gets its own local plane around its centre (a circle's centre;
for a path, the middle of its extent): a point goes to Earth-centred coordinates on the
ellipsoid, then to east/north on the plane tangent at the centre, then is stretched radially so
that its distance from the centre equals the geodesic distance (an azimuthal equidistant
projection, km). Distances from the centre are exact to a millimetre within 100 km (so circles
are exact: a circle is a distance test, not a polygon); other distances, which shape polygons and
corridors, are off by at most about d³/(6R²) for points d km from the centre (R = 6371 km):
under 5 mm within 10 km, 0.5 m within 50 km, 4 m within 100 km, 0.5 km within 500 km. Polygon
and corridor edges are straight in that plane, i.e. geodesics up to the same error. Fences may
reach at most ``MAX_EXTENT_KM`` from their centre. Polygons are tested with prepared shapely
geometries (the boundary counts as inside), corridors with ``dwithin`` (exact distance to the
path); a bounding box in degrees of every fence, in an STRtree once there are
``TREE_THRESHOLD`` fences or more, picks the few fences worth testing.

``GeofenceService`` keeps the fences in the store's key-value role (namespace ``geofences``, key
the id; ids come from the ``counters``/``geofences`` key and are never reused), holds the compiled
index the pipeline reads, and is updated by the API.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

import shapely
from geographiclib.geodesic import Geodesic
from shapely.geometry import LineString, Point, Polygon
from shapely.validation import explain_validity

from sinogate.api.selectors import Selector, SelectorError
from sinogate.store.base import KeyValueStore, NotFound

log = logging.getLogger("sinogate.geofences")

NAMESPACE = "geofences"
COUNTER = ("counters", "geofences")  # (namespace, key) of the next id
KINDS = ("circle", "polygon", "corridor")
MAX_EXTENT_KM = 1000.0  # how far any part of a fence may reach from its centre
MAX_POINTS = 5_000  # a path this long still fits the API's 256 KiB request body
MAX_NAME = 256
MAX_SPEED_LIMIT = 1000.0  # km/h
MIN_WIDTH_KM = 0.001  # a polygon narrower than this on average (2·area / perimeter) is a line
TREE_THRESHOLD = 32  # from this many fences on, candidates come from an STRtree
FIELDS = ("id", "name", "geometry", "speed_limit", "devices")

# WGS 84, km
_A = 6378.137
_F = 1 / 298.257223563
_E2 = _F * (2 - _F)
_R = 6371.0088  # mean radius, for error bounds only
_WGS84 = Geodesic.WGS84
# A point this far around the Earth from a centre (radians) is outside any fence of that centre;
# beyond it the tangent plane would fold the far side back onto the near one.
_FAR = 0.35
_FAR_U = 1.0 - math.cos(_FAR)


class GeofenceError(ValueError):
    """A geofence that cannot be used; the message is the reason, for the user."""


# --- the local frame ------------------------------------------------------------------------------

class LocalFrame:
    """The azimuthal equidistant plane (km, x east, y north) around ``(lat0, lon0)``."""

    __slots__ = ("cl", "cp", "lat0", "lon0", "m0", "n0", "sl", "sp", "x0", "y0", "z0")

    def __init__(self, lat0: float, lon0: float) -> None:
        self.lat0, self.lon0 = lat0, lon0
        phi, lam = math.radians(lat0), math.radians(lon0)
        self.sp, self.cp, self.sl, self.cl = math.sin(phi), math.cos(phi), math.sin(lam), math.cos(lam)
        w = 1.0 - _E2 * self.sp * self.sp
        self.n0 = _A / math.sqrt(w)  # prime vertical radius of curvature
        self.m0 = _A * (1.0 - _E2) / (w * math.sqrt(w))  # meridian radius of curvature
        self.x0, self.y0, self.z0 = _ecef(lat0, lon0)

    def forward(self, lat: float, lon: float) -> tuple[float, float] | None:
        """``(x, y)`` km of a point, or ``None`` for a point too far around the Earth."""
        phi, lam = math.radians(lat), math.radians(lon)
        sp, cp = math.sin(phi), math.cos(phi)
        n = _A / math.sqrt(1.0 - _E2 * sp * sp)
        dx = n * cp * math.cos(lam) - self.x0
        dy = n * cp * math.sin(lam) - self.y0
        dz = n * (1.0 - _E2) * sp - self.z0
        east = self.cl * dy - self.sl * dx
        t = self.cl * dx + self.sl * dy
        north = self.cp * dz - self.sp * t
        up = self.cp * t + self.sp * dz
        h2 = east * east + north * north
        if h2 == 0.0:
            return 0.0, 0.0
        # radius of curvature of the normal section in this direction (Euler)
        rho = h2 / (north * north / self.m0 + east * east / self.n0)
        h = math.sqrt(h2)
        if up < -_FAR_U * rho or h >= rho:
            return None
        k = rho * math.asin(h / rho) / h  # orthographic → equidistant: the arc for the chord's foot
        return east * k, north * k

    def inverse(self, x: float, y: float) -> tuple[float, float]:
        """The point at plane coordinates ``(x, y)`` (exact on the ellipsoid; slow: for messages)."""
        out = _WGS84.Direct(self.lat0, self.lon0, math.degrees(math.atan2(x, y)), math.hypot(x, y) * 1000.0)
        return float(out["lat2"]), _wrap(float(out["lon2"]))


def _ecef(lat: float, lon: float) -> tuple[float, float, float]:
    phi, lam = math.radians(lat), math.radians(lon)
    sp, cp = math.sin(phi), math.cos(phi)
    n = _A / math.sqrt(1.0 - _E2 * sp * sp)
    return n * cp * math.cos(lam), n * cp * math.sin(lam), n * (1.0 - _E2) * sp


def _wrap(lon: float) -> float:
    return (lon + 180.0) % 360.0 - 180.0 if not -180.0 <= lon <= 180.0 else lon


def _mean_direction(points: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """The normalized mean of the points' directions from the Earth's centre, as lat/lon."""
    sx = sy = sz = 0.0
    for lat, lon in points:
        phi, lam = math.radians(lat), math.radians(lon)
        sx += math.cos(phi) * math.cos(lam)
        sy += math.cos(phi) * math.sin(lam)
        sz += math.sin(phi)
    if math.hypot(sx, sy, sz) < 1e-9 * len(points):
        raise GeofenceError(f"the path spans more than {MAX_EXTENT_KM:g} km from its centre")
    return math.degrees(math.atan2(sz, math.hypot(sx, sy))), math.degrees(math.atan2(sy, sx))


# --- validation -----------------------------------------------------------------------------------

def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise GeofenceError(f"{what} must be a number")
    if not math.isfinite(value):
        raise GeofenceError(f"{what} must be finite")
    return float(value)


def _point(value: Any, what: str) -> tuple[float, float]:
    if not isinstance(value, Mapping):
        raise GeofenceError(f"{what} must be an object {{\"lat\", \"lon\"}}")
    extra = set(value) - {"lat", "lon"}
    if extra:
        raise GeofenceError(f"{what} has unknown field(s) {', '.join(sorted(map(str, extra)))}; a point is lat, lon")
    if "lat" not in value or "lon" not in value:
        raise GeofenceError(f"{what} needs lat and lon")
    lat, lon = _number(value["lat"], f"{what}.lat"), _number(value["lon"], f"{what}.lon")
    if not -90.0 <= lat <= 90.0:
        raise GeofenceError(f"{what}.lat must be between -90 and 90")
    if not -180.0 <= lon <= 180.0:
        raise GeofenceError(f"{what}.lon must be between -180 and 180")
    return lat, lon


def _path(value: Any, least: int, kind: str) -> list[tuple[float, float]]:
    if not isinstance(value, list):
        raise GeofenceError(f"a {kind} needs a path: a list of points {{\"lat\", \"lon\"}}")
    if len(value) > MAX_POINTS:
        raise GeofenceError(f"a {kind} path has at most {MAX_POINTS} points")
    points = [_point(p, f"path[{i}]") for i, p in enumerate(value)]
    # Repeated consecutive points add nothing (a tracker-drawn path has them).
    distinct = [p for i, p in enumerate(points) if i == 0 or p != points[i - 1]]
    if kind == "polygon" and len(distinct) > 1 and distinct[0] == distinct[-1]:
        distinct.pop()  # the polygon closes itself; a repeated first point is accepted
    if len(distinct) < least:
        raise GeofenceError(f"a {kind} needs at least {least} distinct points, got {len(distinct)}")
    return distinct


def _km(value: Any, what: str) -> float:
    km = _number(value, what)
    if km <= 0:
        raise GeofenceError(f"{what} must be more than 0 km")
    if km > MAX_EXTENT_KM:
        raise GeofenceError(f"{what} must be at most {MAX_EXTENT_KM:g} km")
    return km


def normalize_geometry(geometry: Any) -> dict[str, Any]:
    """The geometry with numbers as floats and a polygon's closing point dropped; raises
    ``GeofenceError`` with the reason. Does not check validity (``compile_fence`` does)."""
    if not isinstance(geometry, Mapping):
        raise GeofenceError("geometry must be an object with a type: circle, polygon or corridor")
    kind = geometry.get("type")
    if kind not in KINDS:
        raise GeofenceError(f"geometry.type must be circle, polygon or corridor, not {kind!r}")
    allowed = {"circle": {"type", "center", "radius"}, "polygon": {"type", "path"},
               "corridor": {"type", "path", "width"}}[kind]
    extra = set(geometry) - allowed
    if extra:
        unknown = ", ".join(sorted(map(str, extra)))
        raise GeofenceError(f"a {kind} takes {', '.join(sorted(allowed))}; unknown: {unknown}")
    if kind == "circle":
        if "center" not in geometry or "radius" not in geometry:
            raise GeofenceError("a circle needs center and radius (km)")
        lat, lon = _point(geometry["center"], "center")
        return {"type": kind, "center": {"lat": lat, "lon": lon}, "radius": _km(geometry["radius"], "radius")}
    path = _path(geometry.get("path"), 3 if kind == "polygon" else 2, kind)
    out: dict[str, Any] = {"type": kind, "path": [{"lat": lat, "lon": lon} for lat, lon in path]}
    if kind == "corridor":
        if "width" not in geometry:
            raise GeofenceError("a corridor needs width (km, the full width)")
        out["width"] = _km(geometry["width"], "width")
    return out


def _selector(text: Any) -> Selector | None:
    if text is None or text == "all":
        return None
    if not isinstance(text, str):
        raise GeofenceError("devices must be a device selector string, e.g. all, 1,2 or name=truck*")
    try:
        selector = Selector.parse(text)
    except SelectorError as exc:
        raise GeofenceError(f"devices: {exc}") from exc
    return None if selector.matches_all else selector


def normalize(record: Mapping[str, Any]) -> dict[str, Any]:
    """A geofence record, checked and normalized (``id`` kept when present); raises
    ``GeofenceError``. ``compile_fence`` of the result also checks the shape."""
    if not isinstance(record, Mapping):
        raise GeofenceError("a geofence must be an object")
    extra = set(record) - set(FIELDS)
    if extra:
        unknown = ", ".join(sorted(map(str, extra)))
        raise GeofenceError(f"unknown geofence field(s) {unknown}; known: {', '.join(FIELDS)}")
    name = record.get("name")
    if not isinstance(name, str) or not name.strip():
        raise GeofenceError("a geofence needs a name")
    if len(name) > MAX_NAME:
        raise GeofenceError(f"name is longer than {MAX_NAME} characters")
    if "geometry" not in record:
        raise GeofenceError("a geofence needs a geometry")
    out: dict[str, Any] = {}
    if record.get("id") is not None:
        out["id"] = int(record["id"])
    out["name"] = name
    out["geometry"] = normalize_geometry(record["geometry"])
    if record.get("speed_limit") is not None:
        limit = _number(record["speed_limit"], "speed_limit")
        if not 0 < limit <= MAX_SPEED_LIMIT:
            raise GeofenceError(f"speed_limit must be more than 0 and at most {MAX_SPEED_LIMIT:g} km/h")
        out["speed_limit"] = limit
    devices = record.get("devices")
    _selector(devices)
    out["devices"] = "all" if devices is None else devices
    return out


# --- a compiled fence -----------------------------------------------------------------------------

class Fence:
    """One geofence ready to evaluate: its frame, its prepared geometry and its bounding box
    ``(min lon, min lat, max lon, max lat)`` in degrees (longitudes continuous around the centre,
    so they may pass ±180)."""

    __slots__ = ("bbox", "frame", "half_width", "id", "kind", "name", "radius", "record", "selector",
                 "shape", "speed_limit")

    def __init__(self, record: dict[str, Any]) -> None:
        self.record = record
        self.id: int = record["id"]
        self.name: str = record["name"]
        self.speed_limit: float | None = record.get("speed_limit")
        self.selector = _selector(record.get("devices"))
        geometry = record["geometry"]
        self.kind: str = geometry["type"]
        self.radius = 0.0
        self.half_width = 0.0
        self.shape: Any = None
        if self.kind == "circle":
            center = geometry["center"]
            self.frame = LocalFrame(center["lat"], center["lon"])
            self.radius = geometry["radius"]
            points = [(center["lat"], center["lon"])]
            extent, longest = self.radius, 0.0
        else:
            points = [(p["lat"], p["lon"]) for p in geometry["path"]]
            if self.kind == "corridor":
                self.half_width = geometry["width"] / 2.0
            self.frame, plane = _frame_for(points)
            if self.kind == "polygon":
                self.shape = _polygon(plane, self.frame)
            else:
                self.shape = LineString(plane)
            shapely.prepare(self.shape)
            extent = max(math.hypot(x, y) for x, y in plane) + self.half_width
            if extent > MAX_EXTENT_KM:
                raise GeofenceError(f"the {self.kind} reaches {extent:.0f} km from its centre; at most "
                                    f"{MAX_EXTENT_KM:g} km")
            longest = max(math.dist(a, b) for a, b in zip(plane, plane[1:] + plane[:1], strict=True))
        self.bbox = self._bbox(points, self.radius + self.half_width, longest, extent)

    def contains(self, lat: float, lon: float) -> bool:
        """Whether the point is inside (on the boundary counts)."""
        xy = self.frame.forward(lat, lon)
        if xy is None:
            return False
        x, y = xy
        if self.kind == "circle":
            return x * x + y * y <= self.radius * self.radius
        if self.kind == "polygon":
            return bool(shapely.intersects_xy(self.shape, x, y))
        return bool(shapely.dwithin(self.shape, Point(x, y), self.half_width))

    def applies(self, device: Mapping[str, Any] | None) -> bool:
        """Whether the fence's ``devices`` selector takes this device."""
        if self.selector is None:
            return True
        return device is not None and self.selector.matches(cast(dict[str, Any], device))

    def _bbox(self, points: list[tuple[float, float]], extra_km: float, longest_km: float,
              extent_km: float) -> tuple[float, float, float, float]:
        lon0 = self.frame.lon0
        lats = [p[0] for p in points]
        lons = [lon0 + _wrap(p[1] - lon0) for p in points]
        top = max(abs(x) for x in lats)
        # How far the fence may stray beyond its points, in km: its radius or half width; an edge
        # bowing towards the pole (a geodesic's apex, L²·tan φ / 8R); the frame's own error.
        bow = longest_km * longest_km * math.tan(math.radians(min(top, 89.0))) / (8.0 * _R)
        margin = extra_km + 1.5 * (bow + extent_km ** 3 / (6.0 * _R * _R)) + 0.01
        dlat = margin / 110.0  # a degree of latitude is 110.57 km or more
        south, north = max(-90.0, min(lats) - dlat), min(90.0, max(lats) + dlat)
        reach = top + dlat
        north_pole, south_pole = self.contains(90.0, 0.0), self.contains(-90.0, 0.0)
        if north_pole:
            north = 90.0
        if south_pole:
            south = -90.0
        if north_pole or south_pole or reach >= 89.5:
            return lon0 - 180.0, south, lon0 + 180.0, north  # around or near a pole: every longitude
        dlon = margin / (111.0 * math.cos(math.radians(reach)))  # a degree of longitude: 111.32·cos φ km or more
        return min(lons) - dlon, south, max(lons) + dlon, north


def _frame_for(points: list[tuple[float, float]]) -> tuple[LocalFrame, list[tuple[float, float]]]:
    """A frame centred on the middle of the points' extent, and the points in it."""
    frame = LocalFrame(*_mean_direction(points))
    plane = _project(frame, points)
    xs, ys = [p[0] for p in plane], [p[1] for p in plane]
    frame = LocalFrame(*frame.inverse((min(xs) + max(xs)) / 2.0, (min(ys) + max(ys)) / 2.0))
    return frame, _project(frame, points)


def _project(frame: LocalFrame, points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out = []
    for lat, lon in points:
        xy = frame.forward(lat, lon)
        if xy is None:
            raise GeofenceError(f"the path spans more than {MAX_EXTENT_KM:g} km from its centre")
        out.append(xy)
    return out


def _polygon(plane: list[tuple[float, float]], frame: LocalFrame) -> Polygon:
    polygon = Polygon(plane)
    if polygon.is_valid and 2.0 * polygon.area < MIN_WIDTH_KM * polygon.length:
        raise GeofenceError("the polygon has no area: it is narrower than 1 m (are its points on one line?)")
    if not polygon.is_valid:
        reason = explain_validity(polygon)
        what, _, where = reason.partition("[")
        where = where.rstrip("]").split()
        text = f"the polygon is not valid: {what.strip().lower()}"
        if len(where) == 2:
            try:
                lat, lon = frame.inverse(float(where[0]), float(where[1]))
                text += f" near lat {lat:.6f}, lon {lon:.6f}"
            except ValueError:
                pass
        raise GeofenceError(text + " (the path must not cross itself)")
    return polygon


def compile_fence(record: Mapping[str, Any]) -> Fence:
    """A checked record (with ``id``) compiled for evaluation; raises ``GeofenceError``."""
    normalized = normalize(record)
    if "id" not in normalized:
        raise GeofenceError("a stored geofence needs an id")
    return Fence(normalized)


# --- the index ------------------------------------------------------------------------------------

class GeofenceIndex:
    """Immutable set of compiled fences; answers which contain a point."""

    def __init__(self, fences: Iterable[Fence]) -> None:
        self.fences = tuple(sorted(fences, key=lambda f: f.id))
        boxes = [f.bbox for f in self.fences]
        self._boxes = boxes
        self._wraps = any(b[0] < -180.0 or b[2] > 180.0 for b in boxes)
        self._tree = shapely.STRtree([shapely.box(*b) for b in boxes]) if len(boxes) >= TREE_THRESHOLD else None

    def __len__(self) -> int:
        return len(self.fences)

    def candidates(self, lat: float, lon: float) -> list[Fence]:
        """The fences whose bounding box holds the point (in id order)."""
        lons = (lon, lon - 360.0, lon + 360.0) if self._wraps else (lon,)
        if self._tree is not None:
            hits: set[int] = set()
            for x in lons:
                hits.update(int(i) for i in self._tree.query(Point(x, lat)))
            return [self.fences[i] for i in sorted(hits)]
        out = []
        for fence, (w, s, e, n) in zip(self.fences, self._boxes, strict=True):
            if s <= lat <= n and any(w <= x <= e for x in lons):
                out.append(fence)
        return out

    def inside(self, lat: float, lon: float, device: Mapping[str, Any] | None = None) -> dict[int, str]:
        """``{id: name}`` of the fences that contain the point and apply to ``device``."""
        if not self.fences:
            return {}
        return {f.id: f.name for f in self.candidates(lat, lon) if f.applies(device) and f.contains(lat, lon)}


# --- the service ----------------------------------------------------------------------------------

class GeofenceService:
    """The geofences: stored in the key-value role, compiled into an index for the pipeline.

    Reads (``inside``, ``fence``, ``all``) are synchronous and see the index of the last change;
    changes go through ``create``/``update``/``delete``, one at a time."""

    def __init__(self, store: KeyValueStore) -> None:
        self.store = store
        self._records: dict[int, dict[str, Any]] = {}
        self._fences: dict[int, Fence] = {}
        self.index = GeofenceIndex(())
        self._lock = asyncio.Lock()

    async def load(self) -> None:
        """Reads every stored fence; one that no longer compiles is kept (listed) but not evaluated."""
        records: dict[int, dict[str, Any]] = {}
        fences: dict[int, Fence] = {}
        for key, record in (await self.store.kv_list(NAMESPACE)).items():
            if not isinstance(record, dict) or not key.isdigit():
                continue
            record["id"] = int(key)
            records[record["id"]] = record
            try:
                fences[record["id"]] = compile_fence(record)
            except GeofenceError as exc:
                log.warning("geofence %s %r is not evaluated: %s", key, record.get("name"), exc)
        self._records, self._fences = records, fences
        self.index = GeofenceIndex(fences.values())

    # reads -----------------------------------------------------------------------------------
    def all(self) -> list[dict[str, Any]]:
        return [dict(self._records[i]) for i in sorted(self._records)]

    def get(self, fence_id: int) -> dict[str, Any] | None:
        record = self._records.get(fence_id)
        return None if record is None else dict(record)

    def fence(self, fence_id: int) -> Fence | None:
        return self._fences.get(fence_id)

    def inside(self, lat: float, lon: float, device: Mapping[str, Any] | None = None) -> dict[int, str]:
        return self.index.inside(lat, lon, device)

    # changes ---------------------------------------------------------------------------------
    async def create(self, items: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Creates every item or none: all are checked first (``GeofenceError`` names the item)."""
        prepared = []
        for i, item in enumerate(items):
            try:
                prepared.append(compile_fence({**{k: v for k, v in item.items() if k != "id"}, "id": 0}))
            except GeofenceError as exc:
                raise GeofenceError(f"geofence {i}: {exc}" if len(items) > 1 else str(exc)) from exc
        async with self._lock:
            next_id = await self._next_id()
            out = []
            for fence in prepared:
                fence.id = fence.record["id"] = next_id
                next_id += 1
                await self.store.kv_set(COUNTER[0], COUNTER[1], next_id)
                await self.store.kv_set(NAMESPACE, str(fence.id), fence.record)
                self._records[fence.id], self._fences[fence.id] = fence.record, fence
                out.append(dict(fence.record))
            self._reindex()
        return out

    async def update(self, fence_id: int, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Replaces the given fields (``speed_limit: null`` removes the limit); raises ``NotFound``
        or ``GeofenceError``."""
        async with self._lock:
            current = self._records.get(fence_id)
            if current is None:
                raise NotFound(f"geofence {fence_id} not found")
            merged = {**current, **{k: v for k, v in changes.items() if k != "id"}, "id": fence_id}
            if merged.get("speed_limit") is None:
                merged.pop("speed_limit", None)
            fence = compile_fence(merged)
            await self.store.kv_set(NAMESPACE, str(fence_id), fence.record)
            self._records[fence_id], self._fences[fence_id] = fence.record, fence
            self._reindex()
            return dict(fence.record)

    async def delete(self, fence_id: int) -> None:
        async with self._lock:
            if fence_id not in self._records:
                raise NotFound(f"geofence {fence_id} not found")
            await self.store.kv_delete(NAMESPACE, str(fence_id))
            self._records.pop(fence_id, None)
            self._fences.pop(fence_id, None)
            self._reindex()

    async def _next_id(self) -> int:
        stored = await self.store.kv_get(*COUNTER)
        highest = max(self._records, default=0) + 1
        return max(highest, int(stored) if isinstance(stored, int) else 1)

    def _reindex(self) -> None:
        self.index = GeofenceIndex(self._fences.values())
