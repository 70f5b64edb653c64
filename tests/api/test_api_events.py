"""Analytics through the API: events from posted messages, the odometer, online/offline."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from tests.api.conftest import Api
from tests.conftest import TEST_TOKEN

T0 = 1_760_000_000.0


def fix(ts: float, lat: float, lon: float, **extra: Any) -> dict[str, Any]:
    return {"timestamp": ts, "position.latitude": lat, "position.longitude": lon, "position.valid": True,
            "position.speed": 30.0, **extra}


def test_sos_and_ignition_become_events_once(api: Api) -> None:
    device = api.create_device("666000000007001")
    path = f"/gw/devices/{device['id']}/messages"
    api.ok("POST", path, json=[fix(T0, 52.0, 13.0, **{"sos.alarm": False, "engine.ignition.status": False})])
    api.ok("POST", path, json=[fix(T0 + 10, 52.001, 13.0, **{"sos.alarm": True, "engine.ignition.status": True}),
                               fix(T0 + 20, 52.002, 13.0, **{"sos.alarm": True, "engine.ignition.status": True})])
    events = api.ok("GET", f"/gw/devices/{device['id']}/events")
    assert [(e["type"], e["timestamp"]) for e in events] == [("alarm", T0 + 10), ("ignition.on", T0 + 10)]
    sos = events[0]
    assert sos["alarm"] == "sos" and sos["device.id"] == device["id"] and sos["position.latitude"] == 52.001
    assert isinstance(sos["id"], int)
    only = api.ok("GET", f"/gw/devices/{device['id']}/events", {"types": ["ignition.on"]})
    assert [e["type"] for e in only] == ["ignition.on"]
    assert [e["alarm"] for e in api.ok("GET", f"/gw/devices/{device['id']}/events",
                                       {"filter": 'alarm=="sos"'})] == ["sos"]
    bad = api.request("GET", f"/gw/devices/{device['id']}/events", {"types": "alarm"})
    assert bad.status_code == 400 and "data.types" in bad.json()["errors"][0]["reason"]


def test_the_odometer_counts_accepted_fixes_and_can_be_set(api: Api) -> None:
    device = api.create_device("666000000007002")
    path = f"/gw/devices/{device['id']}/messages"
    api.ok("POST", path, json=[fix(T0, 52.0, 13.0), fix(T0 + 60, 52.01, 13.0),
                               fix(T0 + 70, 60.0, 13.0),  # a jump: flagged, not counted
                               fix(T0 + 120, 52.02, 13.0)])
    stored = api.ok("GET", path)
    assert [m.get("position.filter.reason") for m in stored] == [None, None, "jump", None]
    km = api.ok("GET", f"/gw/devices/{device['id']}/odometer")[0]["odometer.computed"]
    assert 2.2 < km < 2.3  # two legs of 0.01° latitude ≈ 1.113 km each
    assert stored[-1]["odometer.computed"] == km
    assert api.ok("PUT", f"/gw/devices/{device['id']}/odometer", json={"value": 1000})[0]["odometer.computed"] == 1000
    api.ok("POST", path, json=[fix(T0 + 180, 52.03, 13.0)])
    assert 1001.1 < api.ok("GET", f"/gw/devices/{device['id']}/odometer")[0]["odometer.computed"] < 1001.2
    assert api.request("PUT", f"/gw/devices/{device['id']}/odometer", json={"value": -1}).status_code == 400


def test_offline_then_online(tmp_path: Path, gateway_factory) -> None:  # type: ignore[no-untyped-def]
    with gateway_factory(tmp_path / "data", handlers={"offline_after": 1.0}) as server:
        headers = {"Authorization": f"FlespiToken {TEST_TOKEN}"}
        with httpx.Client(base_url=server.http_url, headers=headers, timeout=10) as http:
            body = [{"name": "p", "configuration": {"ident": "555"}, "protocol": "h02"}]
            device = http.post("/gw/devices", json=body).json()["result"][0]
            path = f"/gw/devices/{device['id']}/messages"
            http.post(path, json=[{"timestamp": time.time()}])
            deadline = time.time() + 10
            events: list[dict[str, Any]] = []
            while time.time() < deadline and not events:
                time.sleep(0.2)
                events = http.get(f"/gw/devices/{device['id']}/events").json()["result"]
            assert [e["type"] for e in events] == ["device.offline"]
            http.post(path, json=[{"timestamp": time.time()}])
            events = http.get(f"/gw/devices/{device['id']}/events").json()["result"]
            assert [e["type"] for e in events] == ["device.offline", "device.online"]
            assert events[1]["offline.since"] == events[0]["last.seen"]
