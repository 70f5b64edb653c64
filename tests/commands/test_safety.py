"""Destructive commands: ``confirm`` required (400 with the reason), a short default TTL, and
``engine.stop`` held while the device reports more than ``engine_stop_max_speed`` (20 km/h)."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from tests.commands.devices import H02Device, api, command_time, device_id, h02_now, in_thread, joined, wait_for

pytestmark = pytest.mark.timeout(60)

KNOTS_37_8 = 37.8 / 1.852  # the device reports knots


def position(dev: H02Device, knots: float) -> None:
    t, d = h02_now()
    dev.send(f"*HQ,{dev.ident},V1,{t},A,2235.1777,N,11357.8913,E,{knots:06.2f},0,{d},FFFFFBFF#")


@pytest.fixture
def h02(gateway_server: Any) -> Any:
    dev = H02Device(gateway_server.h02_port)
    dev.hello()
    dev.id = device_id(gateway_server, "h02", dev.ident)
    yield dev
    dev.close()


def speed(server: Any, dev: int) -> float:
    got = api(server, "GET", f"/gw/devices/{dev}/telemetry/position.speed").json()["result"][0]["telemetry"]
    return float(got.get("position.speed", {}).get("value", -1))


def test_destructive_commands_need_confirm(gateway_server: Any, h02: H02Device) -> None:
    for path in ("commands", "commands-queue"):
        for item in ({"name": "engine.stop"}, {"name": "custom", "properties": {"payload": "9400000"}},
                     {"name": "factory.reset"}, {"name": "server.set", "properties": {"host": "a.b", "port": 1}},
                     {"name": "engine.stop", "confirm": False}):
            resp = api(gateway_server, "POST", f"/gw/devices/{h02.id}/{path}", json=[item])
            assert resp.status_code == 400, resp.text
            reason = resp.json()["errors"][0]["reason"]
            assert "is destructive (" in reason and '"confirm": true' in reason, reason
    resp = api(gateway_server, "POST", f"/gw/devices/{h02.id}/commands-queue", json=[{"name": "engine.stop",
                                                                                       "confirm": "yes"}])
    assert resp.status_code == 400 and "'confirm' must be true or false" in resp.text
    # nothing went out
    with pytest.raises(TimeoutError):
        h02.read_command(0.5)
    # confirmed: queued with the short default TTL, and written (the device is parked)
    cmd = api(gateway_server, "POST", f"/gw/devices/{h02.id}/commands-queue",
              json=[{"name": "factory.reset", "confirm": True}]).json()["result"][0]
    assert cmd["expire"] - cmd["created"] == pytest.approx(600, abs=1)
    assert h02.read_command() == b"FORMAT"
    harmless = api(gateway_server, "POST", f"/gw/devices/{h02.id}/commands-queue",
                   json=[{"name": "config.query"}]).json()["result"][0]
    assert harmless["expire"] - harmless["created"] == pytest.approx(86400, abs=1)


def test_engine_stop_waits_until_the_vehicle_slows_down(gateway_server: Any, h02: H02Device) -> None:
    position(h02, KNOTS_37_8)
    wait_for(lambda: speed(gateway_server, h02.id) > 37)
    # real-time: refused with the speed in the reason
    resp = api(gateway_server, "POST", f"/gw/devices/{h02.id}/commands",
               json=[{"name": "engine.stop", "confirm": True, "timeout": 5}])
    assert resp.status_code == 400
    reason = resp.json()["errors"][0]["reason"]
    assert "moving at 37.8 km/h, above engine_stop_max_speed 20 km/h" in reason and '"force": true' in reason
    # queued: held, nothing written while it moves
    cmd = api(gateway_server, "POST", f"/gw/devices/{h02.id}/commands-queue",
              json=[{"name": "engine.stop", "confirm": True}]).json()["result"][0]
    assert cmd["status"] == "queued"

    def held() -> dict[str, Any] | None:
        got = api(gateway_server, "GET", f"/gw/devices/{h02.id}/commands-queue/{cmd['id']}").json()["result"]
        return got[0] if got and (got[0].get("reason") or "").startswith("held:") else None

    assert "moving at 37.8 km/h" in wait_for(held)["reason"]
    position(h02, 30 / 1.852)  # still above 20 km/h
    with pytest.raises(TimeoutError):
        h02.read_command(1.0)
    position(h02, 5 / 1.852)  # slowed down: it goes out now
    frame = h02.read_command(5)
    assert re.fullmatch(rb"\*HQ,4210051415,S20,\d{6},1,1#", frame), frame
    h02.send(f"*HQ,{h02.ident},V4,S20,{command_time(frame)},1,1#")

    def done() -> dict[str, Any] | None:
        got = api(gateway_server, "GET", f"/gw/devices/{h02.id}/commands-result/{cmd['id']}").json()["result"]
        return got[0] if got else None

    finished = wait_for(done)
    assert finished["status"] == "processed" and finished["reason"] is None


def test_force_sends_an_engine_stop_at_speed(gateway_server: Any, h02: H02Device) -> None:
    position(h02, KNOTS_37_8)
    wait_for(lambda: speed(gateway_server, h02.id) > 37)
    cmd = api(gateway_server, "POST", f"/gw/devices/{h02.id}/commands-queue",
              json=[{"name": "custom", "properties": {"payload": "S20,1,1"}, "confirm": True,
                     "force": True}]).json()["result"][0]
    first = h02.read_command()
    assert b",S20," in first and cmd["status"] in ("queued", "sent")
    h02.send(f"*HQ,{h02.ident},V4,S20,{command_time(first)},1,1#")
    wait_for(lambda: api(gateway_server, "GET", f"/gw/devices/{h02.id}/commands-result/{cmd['id']}").json()["result"])
    box = in_thread(api, gateway_server, "POST", f"/gw/devices/{h02.id}/commands",
                    json=[{"name": "engine.stop", "confirm": True, "force": True, "timeout": 10}])
    frame = h02.read_command()
    h02.send(f"*HQ,{h02.ident},V4,S20,{command_time(frame)},1,1#")
    assert joined(box).json()["result"][0]["status"] == "processed"


def test_max_speed_is_configurable(tmp_path: Any, gateway_factory: Any) -> None:
    with gateway_factory(tmp_path / "data", engine_stop_max_speed=50.0) as server:
        dev = H02Device(server.h02_port)
        dev.hello()
        dev_id = device_id(server, "h02", dev.ident)
        position(dev, KNOTS_37_8)
        wait_for(lambda: speed(server, dev_id) > 37)
        time.sleep(0.1)
        api(server, "POST", f"/gw/devices/{dev_id}/commands-queue", json=[{"name": "engine.stop", "confirm": True}])
        assert b",S20," in dev.read_command()
        dev.close()
