"""H02 commands end to end: a real Gateway, a test device on a real socket, the HTTP API."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest

from tests.commands.devices import H02Device, api, command_time, device_id, in_thread, joined, wait_for

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def h02(gateway_server: Any) -> Any:
    dev = H02Device(gateway_server.h02_port)
    dev.hello()
    dev.id = device_id(gateway_server, "h02", dev.ident)
    yield dev
    dev.close()


def test_realtime_engine_stop_full_v4(gateway_server: Any, h02: H02Device) -> None:
    box = in_thread(api, gateway_server, "POST", f"/gw/devices/{h02.id}/commands",
                    json=[{"name": "engine.stop", "properties": {}, "timeout": 10, "confirm": True}])
    frame = h02.read_command()
    assert re.fullmatch(rb"\*HQ,4210051415,S20,\d{6},1,1#", frame), frame
    t = command_time(frame)
    h02.send(f"*HQ,{h02.ident},V4,S20,DONE,{t},{h02.position_block()}#")
    resp = joined(box)
    assert resp.status_code == 200, resp.text
    item = resp.json()["result"][0]
    assert item["status"] == "processed"
    assert item["executed"] is True
    assert item["response"].startswith("S20,DONE")
    assert item["reply"]["message.type"] == "V4"
    assert item["name"] == "engine.stop" and item["device_id"] == h02.id
    assert item["sent"] and item["finished"] and item["created"]


def test_realtime_short_v4_ack_and_failure(gateway_server: Any, h02: H02Device) -> None:
    box = in_thread(api, gateway_server, "POST", f"/gw/devices/{h02.id}/commands",
                    json=[{"name": "custom", "properties": {"payload": "S20,1,1"}, "confirm": True}])
    frame = h02.read_command()
    assert re.fullmatch(rb"\*HQ,4210051415,S20,\d{6},1,1#", frame), frame
    h02.send(f"*HQ,{h02.ident},V4,S20,{command_time(frame)},1,1#")  # short ack, no position
    item = joined(box).json()["result"][0]
    assert item["status"] == "processed" and item["executed"] is True
    assert item["response"] == f"S20,{command_time(frame)},1,1"

    box = in_thread(api, gateway_server, "POST", f"/gw/devices/{h02.id}/commands",
                    json=[{"name": "engine.resume"}])
    frame = h02.read_command()
    assert frame.endswith(b",1,0#")
    h02.send(f"*HQ,{h02.ident},V4,S20,ERROR,{command_time(frame)},{h02.position_block()}#")
    item = joined(box).json()["result"][0]
    assert item["status"] == "processed" and item["executed"] is False


def test_raw_text_command_answered_by_sms(gateway_server: Any, h02: H02Device) -> None:
    box = in_thread(api, gateway_server, "POST", f"/gw/devices/{h02.id}/commands",
                    json=[{"name": "custom", "properties": {"payload": "RCONF"}}])
    assert h02.read_command() == b"RCONF"
    h02.send(f"*HQ,{h02.ident},SMS,ST901 ID:{h02.ident} IP:1.2.3.4 5013 UT:30,30,300#")
    item = joined(box).json()["result"][0]
    assert item["status"] == "processed"
    assert item["response"] == f"ST901 ID:{h02.ident} IP:1.2.3.4 5013 UT:30,30,300"
    assert item["payload"] == "RCONF"


def test_offline_device_gets_code_2(gateway_server: Any) -> None:
    device = gateway_server.run(gateway_server.runtime.devices.create(
        {"ident": "4210051499", "protocol": "h02", "name": "parked"}))
    resp = api(gateway_server, "POST", f"/gw/devices/{device['id']}/commands",
               json=[{"name": "engine.stop", "confirm": True}])
    assert resp.status_code == 400
    err = resp.json()["errors"][0]
    assert err["code"] == 2
    assert f"device with id {device['id']} is not connected" in err["reason"]
    assert "failed to deliver command 'engine.stop'" in err["reason"]


def test_realtime_timeout_keeps_the_command(gateway_server: Any, h02: H02Device) -> None:
    t0 = time.time()
    box = in_thread(api, gateway_server, "POST", f"/gw/devices/{h02.id}/commands",
                    json=[{"name": "mileage.query", "timeout": 5}])
    assert b",S32," in h02.read_command()
    resp = joined(box)
    assert 4.5 < time.time() - t0 < 15
    assert resp.status_code == 400
    err = resp.json()["errors"][0]
    assert err["code"] == 2 and "no reply" in err["reason"]
    stored = api(gateway_server, "GET", f"/gw/devices/{h02.id}/commands-result/{err['command']['id']}").json()
    assert stored["result"][0]["status"] == "expired"


def test_validation_errors(gateway_server: Any, h02: H02Device) -> None:
    resp = api(gateway_server, "POST", f"/gw/devices/{h02.id}/commands-queue", json=[{"name": "nope"}])
    assert resp.status_code == 400 and "unknown command 'nope'" in resp.json()["errors"][0]["reason"]
    resp = api(gateway_server, "POST", f"/gw/devices/{h02.id}/commands-queue",
               json=[{"name": "interval.set", "properties": {"seconds": "ten"}}])
    assert resp.status_code == 400 and "seconds" in resp.json()["errors"][0]["reason"]
    resp = api(gateway_server, "POST", f"/gw/devices/{h02.id}/commands-queue",
               json=[{"name": "interval.set", "properties": {}}])
    assert resp.status_code == 400 and "missing required property 'seconds'" in resp.json()["errors"][0]["reason"]
    resp = api(gateway_server, "POST", f"/gw/devices/{h02.id}/commands", json=[{"name": "reboot", "timeout": 99}])
    assert resp.status_code == 400 and "'timeout' must be between" in resp.json()["errors"][0]["reason"]
    resp = api(gateway_server, "POST", f"/gw/devices/{h02.id}/commands-queue",
               json=[{"name": "reboot", "ttl": 5, "confirm": True}])
    assert resp.status_code == 400 and "ttl" in resp.json()["errors"][0]["reason"]


def test_queue_when_connected_and_settings_shadow(gateway_server: Any, h02: H02Device) -> None:
    resp = api(gateway_server, "PUT", f"/gw/devices/{h02.id}/settings/interval",
               json={"properties": {"seconds": 30}})
    assert resp.status_code == 200, resp.text
    shadow = resp.json()["result"][0]
    assert shadow["pending"] == 30 and shadow["value"] is None
    frame = h02.read_command()
    assert re.fullmatch(rb"\*HQ,4210051415,S71,\d{6},22,30#", frame), frame
    queue = api(gateway_server, "GET", f"/gw/devices/{h02.id}/commands-queue").json()["result"]
    assert [c["status"] for c in queue] == ["sent"]
    h02.send(f"*HQ,{h02.ident},V4,S71,{command_time(frame)},22,30#")

    def confirmed() -> Any:
        got = api(gateway_server, "GET", f"/gw/devices/{h02.id}/settings/interval").json()["result"][0]
        return got if got["value"] == 30 else None

    got = wait_for(confirmed)
    assert got["pending"] is None
    results = api(gateway_server, "GET", f"/gw/devices/{h02.id}/commands-result",
                  params={"data": json.dumps({"reverse": True, "count": 1})}).json()["result"]
    assert results[0]["name"] == "interval.set" and results[0]["status"] == "processed"
    assert results[0]["executed"] is True and results[0]["response"] == f"S71,{command_time(frame)},22,30"
    assert api(gateway_server, "GET", f"/gw/devices/{h02.id}/commands-queue").json()["result"] == []


def test_status_query_answered_by_link(gateway_server: Any, h02: H02Device) -> None:
    box = in_thread(api, gateway_server, "POST", f"/gw/devices/{h02.id}/commands",
                    json=[{"name": "status.query"}])
    frame = h02.read_command()
    assert b",S26," in frame
    t, d = command_time(frame), time.strftime("%d%m%y", time.gmtime())
    h02.send(f"*HQ,{h02.ident},LINK,{t},20,8,84,0,0,{d},FFFFFBFF#")
    item = joined(box).json()["result"][0]
    assert item["status"] == "processed" and item["reply"]["message.type"] == "LINK"
    assert item["executed"] is True and item["response"]


def test_sms_texts(gateway_server: Any, h02: H02Device) -> None:
    def sms(name: str, props: dict[str, Any] | None = None) -> str:
        params = {"name": name}
        if props is not None:
            params["properties"] = json.dumps(props)
        resp = api(gateway_server, "GET", f"/gw/devices/{h02.id}/sms", params=params)
        assert resp.status_code == 200, resp.text
        return str(resp.json()["result"][0]["text"])

    assert sms("interval.set", {"seconds": 30}) == "8050000 30"
    assert sms("server.set", {"host": "1.2.3.4", "port": 5013}) == "8040000 1.2.3.4 5013"
    assert sms("engine.stop") == "9400000"
    assert sms("reboot") == "RESTART"
    gateway_server.run(gateway_server.runtime.devices.update(h02.id, {"settings": {"sms_password": "1234"}}))
    assert sms("interval.set", {"seconds": 60}) == "8051234 60"
    assert api(gateway_server, "GET", f"/gw/devices/{h02.id}/sms", params={"name": "alarm.arm"}).status_code == 400


def test_catalog_endpoint(gateway_server: Any, h02: H02Device) -> None:
    got = api(gateway_server, "GET", f"/gw/devices/{h02.id}/commands").json()["result"][0]
    by_name = {c["name"]: c for c in got["commands"]}
    assert {"custom", "engine.stop", "interval.set", "server.set", "reboot"} <= set(by_name)
    assert by_name["interval.set"]["address"] == ["connection", "sms"]
    assert "unverified" in by_name["engine.stop"]["description"]
    assert by_name["interval.set"]["schema"]["required"] == ["seconds"]
