"""/gw/geofences over real HTTP: CRUD, selectors, reasons for bad geometry, tokens, and events
from messages posted through the gateway."""

from __future__ import annotations

import time
from typing import Any

from geographiclib.geodesic import Geodesic

from sinogate.store.base import TimeQuery
from tests.api.conftest import Api

G = Geodesic.WGS84
DEPOT = (52.5200, 13.4050)
TYPES = ["geofence.enter", "geofence.exit", "overspeed"]  # other analytics (trips) add their own


def pt(lat: float, lon: float) -> dict[str, float]:
    return {"lat": lat, "lon": lon}


def at(lat: float, lon: float, azimuth: float, km: float) -> tuple[float, float]:
    out = G.Direct(lat, lon, azimuth, km * 1000.0)
    return out["lat2"], out["lon2"]


def circle(name: str, center: tuple[float, float] = DEPOT, radius: float = 0.2, **fields: Any) -> dict[str, Any]:
    return {"name": name, "geometry": {"type": "circle", "center": pt(*center), "radius": radius}, **fields}


def reason(r: Any) -> str:
    return str(r.json()["errors"][0]["reason"])


def test_create_get_update_delete(api: Api) -> None:
    square = [pt(52.0, 13.0), pt(52.0, 13.01), pt(52.01, 13.01), pt(52.01, 13.0)]
    made = api.ok("POST", "/gw/geofences", json=[
        circle("crud depot", speed_limit=20),
        {"name": "crud block", "geometry": {"type": "polygon", "path": [*square, square[0]]}},
        {"name": "crud road", "geometry": {"type": "corridor", "path": square[:2], "width": 0.05},
         "devices": "name=truck*"},
    ])
    depot, block, road = made
    assert depot == {"id": depot["id"], "name": "crud depot", "speed_limit": 20.0, "devices": "all",
                     "geometry": {"type": "circle", "center": pt(*DEPOT), "radius": 0.2}}
    assert block["geometry"]["path"] == square  # the closing point is implied
    assert road["devices"] == "name=truck*" and road["geometry"]["width"] == 0.05
    ids = [f["id"] for f in made]
    assert [f["id"] for f in api.ok("GET", "/gw/geofences") if f["name"].startswith("crud")] == ids
    assert api.ok("GET", f"/gw/geofences/{ids[2]},{ids[0]}") == [road, depot]
    assert api.ok("GET", "/gw/geofences/name=crud%20b*") == [block]
    assert api.ok("GET", "/gw/geofences/name=crud*,type=corridor") == [road]
    assert api.ok("GET", "/gw/geofences/{name=='crud*' && speed_limit<50}") == [depot]
    updated = api.ok("PUT", f"/gw/geofences/{depot['id']}", json={"name": "crud home", "speed_limit": None})
    assert updated == [{k: v for k, v in {**depot, "name": "crud home"}.items() if k != "speed_limit"}]
    moved = api.ok("PUT", f"/gw/geofences/{depot['id']}", json={"geometry": {
        "type": "circle", "center": pt(52.1, 13.1), "radius": 1}})
    assert moved[0]["geometry"]["radius"] == 1.0 and moved[0]["name"] == "crud home"
    assert api.ok("DELETE", "/gw/geofences/name=crud*") == [{"id": i} for i in ids]
    r = api.get(f"/gw/geofences/{ids[0]}")
    assert r.status_code == 404 and reason(r) == f"geofence {ids[0]} not found"
    assert api.ok("GET", "/gw/geofences/name=crud*") == []


def test_bad_geometry_answers_400_with_the_reason(api: Api) -> None:
    bowtie = {"name": "bad", "geometry": {"type": "polygon", "path": [
        pt(52.0, 13.0), pt(52.01, 13.01), pt(52.0, 13.01), pt(52.01, 13.0)]}}
    cases = [
        (bowtie, "the path must not cross itself"),
        ({"name": "bad", "geometry": {"type": "polygon", "path": [pt(1, 1), pt(1, 1), pt(1, 2)]}},
         "at least 3 distinct points"),
        ({"name": "bad", "geometry": {"type": "corridor", "path": [pt(1, 1), pt(1, 2)]}}, "width"),
        ({"name": "bad", "geometry": {"type": "circle", "center": pt(1, 1), "radius": -1}}, "radius"),
        ({"name": "bad", "geometry": {"type": "circle", "center": pt(95, 1), "radius": 1}}, "lat"),
        ({"name": "bad", "geometry": {"type": "hexagon"}}, "circle"),
        (circle("bad", devices="colour=red"), "devices: unknown selector field 'colour'"),
    ]
    before = api.ok("GET", "/gw/geofences")
    for body, why in cases:
        r = api.request("POST", "/gw/geofences", json=[circle("fine"), body])
        assert r.status_code == 400, (body, r.text)
        assert why in reason(r), (why, reason(r))
    assert api.ok("GET", "/gw/geofences") == before  # nothing was created
    [fence] = api.ok("POST", "/gw/geofences", json=[circle("fixable")])
    r = api.request("PUT", f"/gw/geofences/{fence['id']}", json={"geometry": bowtie["geometry"]})
    assert r.status_code == 400 and "cross itself" in reason(r)
    r = api.request("PUT", f"/gw/geofences/{fence['id']}", json={"name": None})
    assert r.status_code == 400 and reason(r) == "name cannot be null"
    assert api.ok("GET", f"/gw/geofences/{fence['id']}") == [fence]
    r = api.request("GET", "/gw/geofences/colour=red")
    assert r.status_code == 400 and "unknown selector field" in reason(r)
    api.ok("DELETE", f"/gw/geofences/{fence['id']}")


def test_tokens(api: Api) -> None:
    [fence] = api.ok("POST", "/gw/geofences", json=[circle("token fence")])
    device = api.create_device("777000000000001")
    for token in (api.token_for(read_only=True), api.token_for(devices=str(device["id"]))):
        assert [f["id"] for f in api.ok("GET", f"/gw/geofences/{fence['id']}", token=token)] == [fence["id"]]
        assert any(f["id"] == fence["id"] for f in api.ok("GET", "/gw/geofences", token=token))
        for method, path, body in [("POST", "/gw/geofences", [circle("no")]),
                                   ("PUT", f"/gw/geofences/{fence['id']}", {"name": "no"}),
                                   ("DELETE", f"/gw/geofences/{fence['id']}", None)]:
            r = api.request(method, path, json=body, token=token)
            assert r.status_code == 403, (method, r.text)
    assert api.get("/gw/geofences", token="").status_code == 401
    assert api.ok("GET", f"/gw/geofences/{fence['id']}")[0]["name"] == "token fence"
    api.ok("DELETE", f"/gw/geofences/{fence['id']}")


def test_openapi_documents_the_models(api: Api) -> None:
    schema = api.get("/openapi.json").json()
    assert {"get", "post"} <= set(schema["paths"]["/gw/geofences"])
    assert {"get", "put", "delete"} <= set(schema["paths"]["/gw/geofences/{selector}"])
    names = set(schema["components"]["schemas"])
    assert {"GeofenceCreate", "GeofenceUpdate", "Circle", "Polygon", "Corridor", "LatLon"} <= names


def test_entering_and_leaving_a_fence_are_events(api: Api) -> None:
    device = api.create_device("777000000000002", name="fenced van", settings={"speed_limit": 90})
    [fence] = api.ok("POST", "/gw/geofences", json=[circle("e2e depot", speed_limit=20)])
    t0 = time.time() - 3600
    track = [(DEPOT, 10), (at(*DEPOT, 90, 0.05), 30), (at(*DEPOT, 90, 0.1), 40), (at(*DEPOT, 90, 0.15), 35),
             (at(*DEPOT, 90, 0.5), 40), (at(*DEPOT, 90, 1.0), 40)]
    body = [{"timestamp": t0 + 10 * i, "position.latitude": p[0], "position.longitude": p[1],
             "position.valid": True, "position.speed": speed} for i, (p, speed) in enumerate(track)]
    api.ok("POST", f"/gw/devices/{device['id']}/messages", json=body)

    def stored_events() -> list[dict[str, Any]]:
        store = api.server.runtime.store
        return api.server.run(store.events([device["id"]], TimeQuery(), TYPES))  # type: ignore[no-any-return]

    events = stored_events()
    assert [(e["type"], e["timestamp"]) for e in events] == [
        ("geofence.enter", t0), ("overspeed", t0 + 30), ("geofence.exit", t0 + 40)]
    enter, speeding, leave = events
    assert enter["geofence.id"] == leave["geofence.id"] == fence["id"]
    assert enter["geofence.name"] == "e2e depot" and enter["device.id"] == device["id"]
    assert speeding["speed.limit"] == 20.0 and speeding["position.speed"] == 40
    assert leave["position.latitude"] == body[4]["position.latitude"]  # then 90 km/h, the device's own
    # late messages from inside the fence fire nothing
    api.ok("POST", f"/gw/devices/{device['id']}/messages", json=[{**body[0], "timestamp": t0 - 100}])
    assert len(stored_events()) == 3
    api.ok("DELETE", f"/gw/geofences/{fence['id']}")
