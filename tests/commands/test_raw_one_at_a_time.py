"""Raw-text commands one at a time (issue 10, item 8): Sinotrack units read one SMS-style command
per packet, so two queued raw texts must never reach the device in one read (``RCONFRESTART``).
The next one goes out after the previous one's reply, or after its reply timeout. Over a real
socket against the running gateway."""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest

from tests.commands.devices import H02Device, api, command_time, wait_for

pytestmark = pytest.mark.timeout(60)

IDENT = "4210051477"


def _device(server: Any, ident: str = IDENT) -> int:
    return int(server.run(server.runtime.devices.create({"ident": ident, "protocol": "h02", "name": ident}))["id"])


def _queue(server: Any, dev: int, *payloads: str) -> list[dict[str, Any]]:
    resp = api(server, "POST", f"/gw/devices/{dev}/commands-queue",
               json=[{"name": "custom", "properties": {"payload": p}, "confirm": True} for p in payloads])
    assert resp.status_code == 200, resp.text
    return list(resp.json()["result"])


def _nothing_more(device: H02Device, wait: float = 0.6) -> bytes:
    """What the server wrote besides its protocol replies within ``wait`` s (b"" for nothing)."""
    try:
        return device.read_command(timeout=wait)
    except TimeoutError:
        return b""


def _result(server: Any, dev: int, cid: int) -> dict[str, Any] | None:
    got = api(server, "GET", f"/gw/devices/{dev}/commands-result/{cid}").json()["result"]
    return got[0] if got else None


def test_queued_raw_texts_go_out_one_per_reply(gateway_server: Any) -> None:
    dev = _device(gateway_server)
    rconf, restart = _queue(gateway_server, dev, "RCONF", "RESTART")
    device = H02Device(gateway_server.h02_port, IDENT)
    device.hello()
    assert device.read_command() == b"RCONF"  # alone: not RCONFRESTART
    assert _nothing_more(device) == b""  # RESTART waits for the answer
    queue = {c["id"]: c["status"] for c in api(gateway_server, "GET", f"/gw/devices/{dev}/commands-queue/all")
             .json()["result"]}
    assert queue == {rconf["id"]: "sent", restart["id"]: "queued"}
    device.send(f"*HQ,{IDENT},SMS,ST901 IP:1.2.3.4 5013#")
    assert device.read_command() == b"RESTART"
    done = wait_for(lambda: _result(gateway_server, dev, rconf["id"]))
    assert done["status"] == "processed" and done["response"] == "ST901 IP:1.2.3.4 5013"
    device.send(f"*HQ,{IDENT},SMS,RESTART OK#")
    assert wait_for(lambda: _result(gateway_server, dev, restart["id"]))["response"] == "RESTART OK"
    device.close()


def test_wrapped_commands_are_not_held_behind_a_raw_text(gateway_server: Any) -> None:
    dev = _device(gateway_server)
    device = H02Device(gateway_server.h02_port, IDENT)
    device.hello()
    wait_for(lambda: gateway_server.runtime.session_for(dev))
    _queue(gateway_server, dev, "CXZT")
    assert device.read_command() == b"CXZT"
    _queue(gateway_server, dev, "S20,1,1", "RCONF")
    frame = device.read_command()
    assert frame.startswith(b"*HQ,4210051477,S20,") and frame.endswith(b",1,1#")
    assert _nothing_more(device) == b""  # RCONF still waits for the CXZT answer
    device.send(f"*HQ,{IDENT},V4,S20,{command_time(frame)},1,1#")
    assert _nothing_more(device) == b""
    device.send(f"*HQ,{IDENT},SMS,GPS:A-24-23 GSM:26#")
    assert device.read_command() == b"RCONF"
    device.close()


def test_next_raw_text_after_the_reply_timeout(gateway_server: Any) -> None:
    gateway_server.runtime.commands.raw_reply_timeout = 1.0
    dev = _device(gateway_server)
    first, second = _queue(gateway_server, dev, "RCONF", "VERSION")
    device = H02Device(gateway_server.h02_port, IDENT)
    device.hello()
    assert device.read_command() == b"RCONF"
    started = time.time()
    assert device.read_command(timeout=5) == b"VERSION"  # no answer: the wire is free after 1 s
    assert time.time() - started >= 0.8
    queue = {c["id"]: c["status"] for c in api(gateway_server, "GET", f"/gw/devices/{dev}/commands-queue/all")
             .json()["result"]}
    assert queue == {first["id"]: "sent", second["id"]: "sent"}  # RCONF's answer may still come
    device.close()


def test_realtime_raw_text_waits_for_the_wire(gateway_server: Any) -> None:
    gateway_server.runtime.commands.raw_reply_timeout = 5.0
    dev = _device(gateway_server)
    device = H02Device(gateway_server.h02_port, IDENT)
    device.hello()
    wait_for(lambda: gateway_server.runtime.session_for(dev))
    _queue(gateway_server, dev, "RCONF")
    assert device.read_command() == b"RCONF"

    import threading

    answer: dict[str, Any] = {}

    def realtime() -> None:
        answer["resp"] = api(gateway_server, "POST", f"/gw/devices/{dev}/commands",
                             json=[{"name": "custom", "properties": {"payload": "CXZT"}, "timeout": 10}])

    thread = threading.Thread(target=realtime)
    thread.start()
    assert _nothing_more(device, 0.8) == b""  # CXZT waits while RCONF is unanswered
    device.send(f"*HQ,{IDENT},SMS,RCONF ANSWER#")
    assert device.read_command() == b"CXZT"
    device.send(f"*HQ,{IDENT},SMS,CXZT ANSWER#")
    thread.join(15)
    resp = answer["resp"]
    assert resp.status_code == 200, resp.text
    assert resp.json()["result"][0]["response"] == "CXZT ANSWER"
    device.close()


def test_one_tcp_read_never_holds_two_raw_texts(gateway_server: Any) -> None:
    """Five raw texts queued at once: each read of the device socket holds exactly one."""
    dev = _device(gateway_server)
    words = ["RCONF", "CXZT", "VERSION", "RESTART", "STATUS"]
    _queue(gateway_server, dev, *words)
    sock = socket.create_connection(("127.0.0.1", gateway_server.h02_port), timeout=5)
    probe = H02Device.__new__(H02Device)
    probe.ident, probe.sock, probe.buf = IDENT, sock, b""
    probe.hello()
    seen = []
    for word in words:
        text = probe.read_command()
        seen.append(text)
        probe.send(f"*HQ,{IDENT},SMS,{word} done#")
    assert seen == [w.encode() for w in words]
    sock.close()
