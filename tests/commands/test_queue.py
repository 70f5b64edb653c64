"""The command queue: delivery on connect, across a disconnect and a server restart, TTL expiry,
cancellation, and a reply that matches nothing."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import pytest

from sinogate.store.base import TimeQuery
from tests.commands.devices import H02Device, api, command_time, device_id, wait_for
from tests.conftest import start_gateway

pytestmark = pytest.mark.timeout(60)

IDENT = "4210051416"


def make_device(server: Any, ident: str = IDENT) -> int:
    device = server.run(server.runtime.devices.create({"ident": ident, "protocol": "h02", "name": ident}))
    return int(device["id"])


def result_of(server: Any, dev: int, cid: int) -> dict[str, Any] | None:
    got = api(server, "GET", f"/gw/devices/{dev}/commands-result/{cid}").json()["result"]
    return got[0] if got else None


def test_queued_while_offline_then_delivered_and_resent_after_disconnect(gateway_server: Any) -> None:
    dev = make_device(gateway_server)
    resp = api(gateway_server, "POST", f"/gw/devices/{dev}/commands-queue",
               json=[{"name": "engine.stop", "ttl": 600, "confirm": True},
                     {"name": "custom", "properties": {"payload": "CXZT"}}])
    assert resp.status_code == 200, resp.text
    first, second = resp.json()["result"]
    assert first["status"] == "queued" and second["status"] == "queued"

    device = H02Device(gateway_server.h02_port, IDENT)
    device.hello()
    frame = device.read_command()
    assert re.fullmatch(rb"\*HQ,4210051416,S20,\d{6},1,1#", frame), frame
    assert device.read_command() == b"CXZT"
    pending = api(gateway_server, "GET", f"/gw/devices/{dev}/commands-queue/all").json()["result"]
    assert [(c["id"], c["status"], c["attempts"]) for c in pending] == [(first["id"], "sent", 1),
                                                                        (second["id"], "sent", 1)]
    device.send(f"*HQ,{IDENT},SMS,ST901 VOLT:12.9V#")  # answers CXZT only
    wait_for(lambda: result_of(gateway_server, dev, second["id"]))
    device.close()  # S20 never answered on this connection
    wait_for(lambda: not gateway_server.runtime.session_for(dev))

    device = H02Device(gateway_server.h02_port, IDENT)
    device.hello()
    frame = device.read_command()
    assert b",S20," in frame  # written again
    device.send(f"*HQ,{IDENT},V4,S20,{command_time(frame)},1,1#")
    done = wait_for(lambda: result_of(gateway_server, dev, first["id"]))
    assert done["status"] == "processed" and done["attempts"] == 2
    assert result_of(gateway_server, dev, second["id"])["response"] == "ST901 VOLT:12.9V"
    device.close()


def test_queue_survives_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with start_gateway(data) as server:
        dev = make_device(server)
        device = H02Device(server.h02_port, IDENT)
        device.hello()
        device_id(server, "h02", IDENT)
        sent = api(server, "POST", f"/gw/devices/{dev}/commands-queue",
                   json=[{"name": "interval.set", "properties": {"seconds": 60}}]).json()["result"][0]
        assert sent["status"] == "sent"
        assert b",S71," in device.read_command()
        queued = api(server, "POST", f"/gw/devices/{dev}/commands-queue",
                     json=[{"name": "alarm.arm", "ttl": 60}]).json()["result"][0]
        assert b",SCF," in device.read_command()
        device.close()
        wait_for(lambda: not server.runtime.session_for(dev))
        expiring = api(server, "POST", f"/gw/devices/{dev}/commands-queue",
                       json=[{"name": "reboot", "expire": time.time() + 1.0, "confirm": True}]).json()["result"][0]
        assert expiring["status"] == "queued"
    time.sleep(1.2)  # the reboot's TTL passes while the server is down
    with start_gateway(data) as server:
        rebooted = wait_for(lambda: result_of(server, dev, expiring["id"]))
        assert rebooted["status"] == "expired"
        pending = api(server, "GET", f"/gw/devices/{dev}/commands-queue").json()["result"]
        assert [(c["id"], c["status"]) for c in pending] == [(sent["id"], "queued"), (queued["id"], "queued")]
        device = H02Device(server.h02_port, IDENT)
        device.hello()
        s71 = device.read_command()
        scf = device.read_command()
        assert b",S71," in s71 and b",SCF," in scf
        device.send(f"*HQ,{IDENT},V4,S71,{command_time(s71)},22,60#")
        device.send(f"*HQ,{IDENT},V4,SCF,{command_time(scf)},0,0#")
        assert wait_for(lambda: result_of(server, dev, sent["id"]))["status"] == "processed"
        assert wait_for(lambda: result_of(server, dev, queued["id"]))["attempts"] == 2
        device.close()


def test_ttl_expiry_and_cancel(gateway_server: Any) -> None:
    dev = make_device(gateway_server)
    short = api(gateway_server, "POST", f"/gw/devices/{dev}/commands-queue",
                json=[{"name": "engine.stop", "expire": time.time() + 1.0, "confirm": True}]).json()["result"][0]
    long = api(gateway_server, "POST", f"/gw/devices/{dev}/commands-queue",
               json=[{"name": "engine.resume", "ttl": 3600}]).json()["result"][0]
    done = wait_for(lambda: result_of(gateway_server, dev, short["id"]), timeout=5)
    assert done["status"] == "expired" and done["finished"] >= short["expire"] - 0.01
    got = api(gateway_server, "GET", f"/gw/devices/{dev}/commands-queue/{long['id']}").json()["result"]
    assert got[0]["status"] == "queued"
    deleted = api(gateway_server, "DELETE", f"/gw/devices/{dev}/commands-queue/all").json()["result"]
    assert [c["id"] for c in deleted] == [long["id"]] and deleted[0]["status"] == "canceled"
    assert api(gateway_server, "GET", f"/gw/devices/{dev}/commands-queue").json()["result"] == []
    assert result_of(gateway_server, dev, long["id"])["status"] == "canceled"


def test_reply_that_matches_nothing_is_stored_and_shown(gateway_server: Any) -> None:
    gw = gateway_server.runtime
    sub = gateway_server.call(gw.bus.subscribe, lambda e: e["type"] == "command")
    device = H02Device(gateway_server.h02_port, IDENT)
    device.hello()
    dev = device_id(gateway_server, "h02", IDENT)
    device.send(f"*HQ,{IDENT},V4,S20,DONE,010203,{device.position_block()}#")
    event = gateway_server.run(asyncio.wait_for(sub.get(), 5))
    assert event["data"]["unmatched"] is True and event["device_id"] == dev
    assert event["data"]["response"].startswith("S20,DONE")

    def stored() -> bool:
        messages = gateway_server.run(gw.store.messages([dev], TimeQuery()))
        return any(m.get("message.type") == "V4" for m in messages)

    wait_for(stored)

    def logged() -> bool:
        logs = gateway_server.run(gw.store.logs(TimeQuery(), [dev]))
        return any("unmatched reply" in (r.get("reason") or "") for r in logs)

    wait_for(logged, timeout=5)
    gateway_server.call(gw.bus.unsubscribe, sub)
    device.close()
