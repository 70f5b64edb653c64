"""Geofence model, validation, precision and index, without a server."""

from __future__ import annotations

import asyncio
import itertools
import math
import random
from typing import Any

import pytest
from geographiclib.geodesic import Geodesic

from sinogate.analytics import geofences as gf
from sinogate.analytics.geofences import (
    Fence,
    GeofenceError,
    GeofenceIndex,
    GeofenceService,
    LocalFrame,
    compile_fence,
    normalize,
)
from tests.analytics.kv import DictKV

G = Geodesic.WGS84


def at(lat: float, lon: float, azimuth: float, km: float) -> tuple[float, float]:
    """The point ``km`` from (lat, lon) along the geodesic starting at ``azimuth``."""
    out = G.Direct(lat, lon, azimuth, km * 1000.0)
    return out["lat2"], out["lon2"]


def pt(lat: float, lon: float) -> dict[str, float]:
    return {"lat": lat, "lon": lon}


def circle(lat: float, lon: float, radius: float, **extra: Any) -> Fence:
    return compile_fence({"id": extra.pop("id", 1), "name": extra.pop("name", "c"),
                          "geometry": {"type": "circle", "center": pt(lat, lon), "radius": radius}, **extra})


def square(lat: float, lon: float, half_km: float, fence_id: int = 1) -> Fence:
    corners = [at(lat, lon, az, half_km * math.sqrt(2)) for az in (45, 135, 225, 315)]
    return compile_fence({"id": fence_id, "name": "sq",
                          "geometry": {"type": "polygon", "path": [pt(*c) for c in corners]}})


# --- the frame -------------------------------------------------------------------------------------

@pytest.mark.parametrize("lat0", [0.0, 45.0, 60.0, 80.0, -35.0])
@pytest.mark.parametrize("km", [0.05, 1.0, 10.0, 100.0])
def test_the_frame_keeps_geodesic_distances_from_its_centre(lat0: float, km: float) -> None:
    frame = LocalFrame(lat0, 30.0)
    for azimuth in range(0, 360, 30):
        xy = frame.forward(*at(lat0, 30.0, azimuth, km))
        assert xy is not None
        assert math.hypot(*xy) == pytest.approx(km, abs=1e-6)  # within a millimetre
        turn = (math.degrees(math.atan2(*xy)) - azimuth + 180.0) % 360.0 - 180.0
        assert abs(turn) < 2e-5  # 0.7 cm sideways at 100 km


@pytest.mark.parametrize(("km", "metres"), [(10.0, 0.005), (50.0, 0.6), (100.0, 4.5)])
def test_distances_between_other_points_are_within_the_stated_error(km: float, metres: float) -> None:
    rng = random.Random(7)
    for _ in range(100):
        lat0, lon0 = rng.uniform(-75, 75), rng.uniform(-180, 180)
        frame = LocalFrame(lat0, lon0)
        a = at(lat0, lon0, rng.uniform(0, 360), km * rng.random())
        b = at(lat0, lon0, rng.uniform(0, 360), km * rng.random())
        xa, xb = frame.forward(*a), frame.forward(*b)
        assert xa is not None and xb is not None
        true = G.Inverse(*a, *b)["s12"]
        assert abs(math.dist(xa, xb) * 1000.0 - true) <= metres


def test_the_far_side_of_the_earth_is_not_folded_onto_the_frame() -> None:
    frame = LocalFrame(52.0, 13.0)
    assert frame.forward(-52.0, -167.0) is None
    assert frame.forward(10.0, 13.0) is None  # 4,600 km away
    assert not circle(52.0, 13.0, 5.0).contains(-52.0, -167.0)


# --- shapes ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("lat0", [0.0, 52.5, 70.0, -33.9])
@pytest.mark.parametrize("radius", [0.1, 2.0, 150.0])
def test_a_circle_is_exact_to_a_metre(lat0: float, radius: float) -> None:
    fence = circle(lat0, 20.0, radius)
    for azimuth in range(0, 360, 45):
        assert fence.contains(*at(lat0, 20.0, azimuth, radius - 0.001))
        assert not fence.contains(*at(lat0, 20.0, azimuth, radius + 0.001))
    assert fence.contains(lat0, 20.0)


def _along(a: tuple[float, float], b: tuple[float, float], fraction: float, side_km: float) -> tuple[float, float]:
    """A point ``side_km`` to the right of the geodesic a→b, at ``fraction`` of its length."""
    line = G.InverseLine(*a, *b)
    mid = line.Position(line.s13 * fraction)
    return at(mid["lat2"], mid["lon2"], mid["azi2"] + 90.0, side_km)


@pytest.mark.parametrize("lat0", [0.0, 52.5, 75.0])
def test_polygon_edges_are_geodesics_to_a_metre(lat0: float) -> None:
    corners = [at(lat0, 10.0, az, 3.0) for az in (10, 100, 200, 290)]  # clockwise
    fence = compile_fence({"id": 1, "name": "p", "geometry": {"type": "polygon", "path": [pt(*c) for c in corners]}})
    for a, b in zip(corners, corners[1:] + corners[:1], strict=True):
        for fraction in (0.1, 0.5, 0.9):
            assert fence.contains(*_along(a, b, fraction, 0.001))  # right of a clockwise ring: inside
            assert not fence.contains(*_along(a, b, fraction, -0.001))


def test_a_corridor_is_the_path_widened_by_half_its_width_on_each_side() -> None:
    road = [(48.10, 11.50), (48.15, 11.58), (48.16, 11.70)]
    fence = compile_fence({"id": 1, "name": "road", "geometry": {
        "type": "corridor", "path": [pt(*p) for p in road], "width": 0.1}})
    for a, b in itertools.pairwise(road):
        for fraction in (0.2, 0.5, 0.8):
            for side in (1.0, -1.0):
                assert fence.contains(*_along(a, b, fraction, side * 0.049))
                assert not fence.contains(*_along(a, b, fraction, side * 0.051))
    # round ends: 49 m beyond the last point along the road is in, 51 m is not
    line = G.InverseLine(*road[1], *road[2])
    end = line.Position(line.s13)
    assert fence.contains(*at(end["lat2"], end["lon2"], end["azi2"], 0.049))
    assert not fence.contains(*at(end["lat2"], end["lon2"], end["azi2"], 0.051))


def test_a_fence_across_the_antimeridian() -> None:
    fence = compile_fence({"id": 1, "name": "fiji", "geometry": {"type": "polygon", "path": [
        pt(-16.0, 179.5), pt(-16.0, -179.5), pt(-17.0, -179.5), pt(-17.0, 179.5)]}})
    assert fence.contains(-16.5, 180.0) and fence.contains(-16.5, -179.9) and fence.contains(-16.5, 179.9)
    assert not fence.contains(-16.5, 179.0) and not fence.contains(-16.5, -179.0)
    index = GeofenceIndex([fence])
    assert index.inside(-16.5, -179.9) == {1: "fiji"} and index.inside(-16.5, 179.9) == {1: "fiji"}


def test_a_fence_around_a_pole() -> None:
    fence = circle(89.9, 0.0, 50.0, name="pole")
    index = GeofenceIndex([fence])
    assert index.inside(90.0, 0.0) == {1: "pole"}
    assert index.inside(89.8, 180.0) == {1: "pole"}  # 33 km from the centre, across the pole
    assert index.inside(89.0, 0.0) == {}


def test_bounding_boxes_hold_their_fences() -> None:
    """Every point of a fence's boundary, mapped back exactly, lies in its bounding box."""
    rng = random.Random(3)

    def boxed(box: tuple[float, float, float, float], lat: float, lon: float) -> bool:
        return box[1] <= lat <= box[3] and any(box[0] <= x <= box[2] for x in (lon, lon - 360, lon + 360))

    checked = 0
    for _ in range(60):
        lat0, lon0 = rng.uniform(-85, 85), rng.uniform(-180, 180)
        size = rng.choice([0.5, 20.0, 400.0])
        kind = rng.choice(["polygon", "corridor"])
        path = [pt(*at(lat0, lon0, az, size * rng.uniform(0.3, 1.0)))
                for az in sorted(rng.uniform(0, 360) for _ in range(rng.randint(3, 7)))]
        geometry: dict[str, Any] = {"type": kind, "path": path}
        if kind == "corridor":
            geometry["width"] = size / 4
        try:
            fence = compile_fence({"id": 1, "name": "r", "geometry": geometry})
        except GeofenceError:
            continue  # a random path may cross itself
        checked += 1
        shape = fence.shape if kind == "polygon" else fence.shape.buffer(fence.half_width * 0.999)
        for x, y in shape.exterior.segmentize(shape.length / 300).coords:
            assert boxed(fence.bbox, *fence.frame.inverse(x, y))
    assert checked > 40


# --- validation ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("geometry", "reason"), [
    ({"type": "polygon", "path": [pt(0, 0), pt(1, 1), pt(0, 1), pt(1, 0)]}, "cross itself"),
    ({"type": "polygon", "path": [pt(0, 0), pt(0, 0.01), pt(0, 0)]}, "at least 3 distinct points"),
    ({"type": "polygon", "path": [pt(50, 0), pt(50.01, 0.01), pt(50.02, 0.02)]}, "no area"),
    ({"type": "polygon", "path": "here"}, "needs a path"),
    ({"type": "polygon", "path": [pt(0, 0), {"lat": 1}, pt(1, 1)]}, "path[1] needs lat and lon"),
    ({"type": "polygon", "path": [pt(0, 0), pt(95, 1), pt(1, 1)]}, "path[1].lat must be between -90 and 90"),
    ({"type": "polygon", "path": [pt(0, 0), pt(0, 180), pt(10, 90)]}, "more than 1000 km"),
    ({"type": "circle", "center": pt(0, 0), "radius": 0}, "radius must be more than 0"),
    ({"type": "circle", "center": pt(0, 0), "radius": 5000}, "radius must be at most 1000"),
    ({"type": "circle", "center": pt(0, 200), "radius": 1}, "center.lon must be between -180 and 180"),
    ({"type": "circle", "radius": 1}, "a circle needs center and radius"),
    ({"type": "circle", "center": pt(0, 0), "radius": True}, "radius must be a number"),
    ({"type": "circle", "center": pt(0, 0), "radius": float("nan")}, "radius must be finite"),
    ({"type": "circle", "center": pt(0, 0), "radius": 1, "width": 2}, "unknown: width"),
    ({"type": "corridor", "path": [pt(0, 0), pt(0, 1)]}, "a corridor needs width"),
    ({"type": "corridor", "path": [pt(0, 0)], "width": 1}, "at least 2 distinct points"),
    ({"type": "square"}, "geometry.type must be circle, polygon or corridor"),
    ("circle", "geometry must be an object"),
])
def test_bad_geometry_is_refused_with_the_reason(geometry: Any, reason: str) -> None:
    with pytest.raises(GeofenceError) as err:
        compile_fence({"id": 1, "name": "bad", "geometry": geometry})
    assert reason in str(err.value)


def test_self_intersection_names_where() -> None:
    with pytest.raises(GeofenceError) as err:
        compile_fence({"id": 1, "name": "bowtie", "geometry": {
            "type": "polygon", "path": [pt(52.0, 13.0), pt(52.01, 13.01), pt(52.0, 13.01), pt(52.01, 13.0)]}})
    assert "near lat 52.005" in str(err.value) and "lon 13.005" in str(err.value)


@pytest.mark.parametrize(("record", "reason"), [
    ({"geometry": {"type": "circle", "center": pt(0, 0), "radius": 1}}, "needs a name"),
    ({"name": "x"}, "needs a geometry"),
    ({"name": "x", "geometry": {"type": "circle", "center": pt(0, 0), "radius": 1}, "speed_limit": -5},
     "speed_limit must be more than 0"),
    ({"name": "x", "geometry": {"type": "circle", "center": pt(0, 0), "radius": 1}, "devices": "colour=red"},
     "devices: unknown selector field"),
    ({"name": "x", "geometry": {"type": "circle", "center": pt(0, 0), "radius": 1}, "colour": "red"},
     "unknown geofence field(s) colour"),
])
def test_bad_fields_are_refused_with_the_reason(record: dict[str, Any], reason: str) -> None:
    with pytest.raises(GeofenceError) as err:
        normalize(record)
    assert reason in str(err.value)


def test_a_polygon_closes_itself_and_numbers_become_floats() -> None:
    record = normalize({"name": "p", "geometry": {"type": "polygon", "path": [
        pt(0, 0), pt(0, 1), pt(1, 1), pt(1, 1), pt(0, 0)]}, "speed_limit": 50})
    assert record["geometry"]["path"] == [pt(0.0, 0.0), pt(0.0, 1.0), pt(1.0, 1.0)]
    assert record["speed_limit"] == 50.0 and record["devices"] == "all"


# --- index -------------------------------------------------------------------------------------------

def test_the_index_answers_like_testing_every_fence(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(11)
    fences = []
    for i in range(1, 201):
        lat, lon = rng.uniform(51.9, 52.1), rng.uniform(12.9, 13.1)
        fences.append(circle(lat, lon, rng.uniform(0.2, 2.0), id=i, name=f"f{i}") if i % 2
                      else square(lat, lon, rng.uniform(0.2, 2.0), fence_id=i))
    tree = GeofenceIndex(fences)
    assert tree._tree is not None
    monkeypatch.setattr(gf, "TREE_THRESHOLD", 10_000)
    linear = GeofenceIndex(fences)
    assert linear._tree is None
    hits = 0
    for _ in range(500):
        lat, lon = rng.uniform(51.88, 52.12), rng.uniform(12.88, 13.12)
        brute = {f.id: f.name for f in fences if f.contains(lat, lon)}
        assert tree.inside(lat, lon) == brute == linear.inside(lat, lon)
        hits += len(brute)
    assert hits > 100


def test_the_devices_selector_limits_a_fence() -> None:
    fence = circle(52.0, 13.0, 1.0, devices="name=truck*")
    index = GeofenceIndex([fence, circle(52.0, 13.0, 1.0, id=2, name="all")])
    assert index.inside(52.0, 13.0, {"id": 1, "name": "truck-1"}) == {1: "c", 2: "all"}
    assert index.inside(52.0, 13.0, {"id": 2, "name": "van"}) == {2: "all"}
    assert index.inside(52.0, 13.0, None) == {2: "all"}


# --- the service -------------------------------------------------------------------------------------

def test_the_service_keeps_fences_in_the_store_and_never_reuses_an_id() -> None:
    async def main() -> None:
        store = DictKV()
        service = GeofenceService(store)
        await service.load()
        depot, yard = await service.create([
            {"name": "depot", "geometry": {"type": "circle", "center": pt(52.0, 13.0), "radius": 0.3}},
            {"name": "yard", "geometry": {"type": "circle", "center": pt(52.1, 13.0), "radius": 0.3},
             "speed_limit": 20},
        ])
        assert (depot["id"], yard["id"]) == (1, 2)
        assert service.inside(52.0, 13.0) == {1: "depot"}
        with pytest.raises(GeofenceError, match="geofence 1: a circle needs center"):
            await service.create([{"name": "ok", "geometry": {"type": "circle", "center": pt(0, 0), "radius": 1}},
                                  {"name": "bad", "geometry": {"type": "circle", "radius": 1}}])
        assert len(service.all()) == 2  # all or none
        await service.delete(2)
        updated = await service.update(1, {"name": "home", "speed_limit": 30})
        assert updated["name"] == "home" and service.inside(52.0, 13.0) == {1: "home"}
        again = GeofenceService(store)
        await again.load()
        assert again.all() == [updated] and again.inside(52.0, 13.0) == {1: "home"}
        [third] = await again.create([{"name": "new", "geometry": {
            "type": "circle", "center": pt(0, 0), "radius": 1}}])
        assert third["id"] == 3
        await again.update(1, {"speed_limit": None})
        assert "speed_limit" not in (again.get(1) or {})

    asyncio.run(main())
