"""Messages (GET with data=, POST injection, DELETE), telemetry, bad data= -> 400."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from conftest import Api

T0 = 1_700_000_000


@pytest.fixture(scope="module")
def dev(api: Api) -> dict[str, Any]:
    device = api.create_device("666000000000001", name="msgs")
    msgs = [
        {"timestamp": T0 + i * 10, "position.latitude": 50 + i / 1000, "position.longitude": 30.0,
         "position.speed": i * 10, "engine.ignition.status": i % 2 == 0, **({"alarm.code": 7} if i == 3 else {})}
        for i in range(10)
    ]
    api.ok("POST", f"/gw/devices/{device['id']}/messages", json=msgs)
    return device


def test_get_all_and_time_range(api: Api, dev: dict[str, Any]) -> None:
    path = f"/gw/devices/{dev['id']}/messages"
    msgs = api.ok("GET", path)
    assert [m["timestamp"] for m in msgs] == [T0 + i * 10 for i in range(10)]
    assert msgs[0]["device.id"] == dev["id"] and msgs[0]["ident"] == "666000000000001"
    assert "server.timestamp" in msgs[0] and msgs[0]["protocol.name"] == "h02"
    assert len(api.ok("GET", path, {"from": T0 + 20, "to": T0 + 50})) == 4
    last = api.ok("GET", path, {"count": 1, "reverse": True})
    assert [m["timestamp"] for m in last] == [T0 + 90]
    assert len(api.ok("GET", path, {"count": 3})) == 3


def test_fields_and_filter(api: Api, dev: dict[str, Any]) -> None:
    path = f"/gw/devices/{dev['id']}/messages"
    only = api.ok("GET", path, {"fields": "timestamp,position.speed", "count": 2})
    assert only == [{"timestamp": T0, "position.speed": 0}, {"timestamp": T0 + 10, "position.speed": 10}]
    assert api.ok("GET", path, {"fields": ["position.speed"], "count": 1}) == [{"position.speed": 0}]
    fast = api.ok("GET", path, {"filter": "position.speed>60 && engine.ignition.status==true"})
    assert [m["position.speed"] for m in fast] == [80]
    assert [m["timestamp"] for m in api.ok("GET", path, {"filter": "alarm.code == 7"})] == [T0 + 30]
    assert len(api.ok("GET", path, {"filter": "$alarm.code == null"})) == 9
    assert len(api.ok("GET", path, {"filter": "position.speed >= 50", "count": 2})) == 2
    rev = api.ok("GET", path, {"filter": "position.speed >= 50", "count": 2, "reverse": True})
    assert [m["position.speed"] for m in rev] == [90, 80]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ("{not json", "not valid JSON"),
        ("[1,2]", "JSON object"),
        ('{"count": "ten"}', "count"),
        ('{"count": -1}', "count"),
        ('{"from": "yesterday"}', "from"),
        ('{"from": 10, "to": 5}', "after"),
        ('{"reverse": 1}', "reverse"),
        ('{"fields": 5}', "fields"),
        ('{"filter": "position.speed >"}', "filter"),
        ('{"filter": 3}', "filter"),
        ('{"limit": 3}', "unknown data key"),
    ],
)
def test_bad_data_is_400_with_reason(api: Api, dev: dict[str, Any], data: str, reason: str) -> None:
    r = api.get(f"/gw/devices/{dev['id']}/messages", data)
    assert r.status_code == 400, r.text
    assert reason in r.json()["errors"][0]["reason"]
    for route in ("logs", "packets", "track"):
        assert api.get(f"/gw/devices/{dev['id']}/{route}", data).status_code == 400


def test_telemetry(api: Api, dev: dict[str, Any]) -> None:
    tel = api.ok("GET", f"/gw/devices/{dev['id']}/telemetry/all")
    assert tel[0]["id"] == dev["id"]
    assert tel[0]["telemetry"]["position.speed"] == {"value": 90, "ts": T0 + 90}
    assert tel[0]["telemetry"]["alarm.code"] == {"value": 7, "ts": T0 + 30}
    pos = api.ok("GET", f"/gw/devices/{dev['id']}/telemetry/position,alarm.code")[0]["telemetry"]
    assert set(pos) == {"position.latitude", "position.longitude", "position.speed", "alarm.code"}
    assert api.ok("GET", f"/gw/devices/{dev['id']}/telemetry")[0]["telemetry"] == tel[0]["telemetry"]


def test_inject_validation_and_delete(api: Api) -> None:
    d = api.create_device("666000000000002")
    path = f"/gw/devices/{d['id']}/messages"
    assert api.request("POST", path, json=[{"timestamp": "now"}]).status_code == 400
    assert api.request("POST", path, json={"a": 1}).status_code == 400
    assert api.request("POST", path, json=[1, 2]).status_code == 400
    stored = api.ok("POST", path, json=[{"x": 1}, {"timestamp": T0, "x": 2}])
    assert stored[1]["timestamp"] == T0 and stored[0]["timestamp"] > T0
    assert len(api.ok("GET", path)) == 2
    deleted = api.ok("DELETE", path, {"to": T0 + 1})
    assert deleted[0]["deleted"] == 1
    assert [m["x"] for m in api.ok("GET", path)] == [1]
    api.ok("DELETE", path)
    assert api.ok("GET", path) == []


def test_multi_device_count_is_total(api: Api, dev: dict[str, Any]) -> None:
    other = api.create_device("666000000000003")
    api.ok("POST", f"/gw/devices/{other['id']}/messages", json=[{"timestamp": T0 + 5}])
    msgs = api.ok("GET", f"/gw/devices/{dev['id']},{other['id']}/messages", {"count": 3})
    assert [m["timestamp"] for m in msgs] == [T0, T0 + 5, T0 + 10]


def test_delete_telemetry(api: Api) -> None:
    d = api.create_device("666000000000077")
    api.ok("POST", f"/gw/devices/{d['id']}/messages",
           json=[{"timestamp": T0, "position.latitude": 1.0, "position.longitude": 2.0, "x": 5}])
    assert api.ok("DELETE", f"/gw/devices/{d['id']}/telemetry/position")[0]["removed"] == 2
    left = api.ok("GET", f"/gw/devices/{d['id']}/telemetry/all")[0]["telemetry"]
    assert "position.latitude" not in left and left["x"] == {"value": 5, "ts": T0}
    api.ok("DELETE", f"/gw/devices/{d['id']}/telemetry/all")
    assert api.ok("GET", f"/gw/devices/{d['id']}/telemetry/all")[0]["telemetry"] == {}
    read_only = api.token_for(read_only=True)
    assert api.request("DELETE", f"/gw/devices/{d['id']}/telemetry/all", token=read_only).status_code == 403
