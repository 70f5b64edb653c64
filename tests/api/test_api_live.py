"""A real tracker connection: channels, connections, logs, packets, idents; the SSE stream."""

from __future__ import annotations

import base64
import json
import socket
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from conftest import Api


def h02_v1(ident: str, ts: float, lat: float = 50.45, lon: float = 30.52) -> bytes:
    t = datetime.fromtimestamp(ts, UTC)
    lat_s = f"{int(lat):02d}{(lat % 1) * 60:07.4f}"
    lon_s = f"{int(lon):03d}{(lon % 1) * 60:07.4f}"
    return f"*HQ,{ident},V1,{t:%H%M%S},A,{lat_s},N,{lon_s},E,10.00,90,{t:%d%m%y},FFFFFBFF#".encode()


def wait_for(fn: Any, timeout: float = 10.0) -> Any:
    deadline = time.time() + timeout
    while True:
        value = fn()
        if value or time.time() > deadline:
            return value
        time.sleep(0.05)


def sse_events(lines: Any, wanted: str, limit: int = 50) -> dict[str, Any]:
    event = None
    for _ in range(limit):
        line = next(lines)
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: ") and event == wanted:
            return json.loads(line[6:])  # type: ignore[no-any-return]
    raise AssertionError(f"no {wanted} event")


def test_tracker_connection(api: Api) -> None:
    s = api.server
    ident = "7770001234"
    with socket.create_connection(("127.0.0.1", s.h02_port), timeout=10) as sock:
        sock.sendall(h02_v1(ident, time.time() - 5))
        dev = wait_for(lambda: api.ok("GET", f"/gw/devices/configuration.ident={ident}"))
        assert dev, "device was not auto-registered"
        dev_id = dev[0]["id"]
        assert wait_for(lambda: api.ok("GET", f"/gw/devices/{dev_id}/messages"))
        assert wait_for(lambda: api.ok("GET", f"/gw/devices/{dev_id}")[0]["connected"])
        conns = api.ok("GET", f"/gw/devices/{dev_id}/connections")
        assert len(conns) == 1 and conns[0]["ident"] == ident and conns[0]["transport"] == "tcp"
        chan = api.ok("GET", "/gw/channels/1")[0]
        assert chan["protocol_name"] == "h02" and chan["port"] == s.h02_port and chan["connections_count"] >= 1
        assert [c["id"] for c in api.ok("GET", "/gw/channels")] == [1, 2]
        assert any(c["ident"] == ident for c in api.ok("GET", "/gw/channels/1/connections"))
        cid = conns[0]["id"]
        assert api.ok("GET", f"/gw/channels/all/connections/{cid}")[0]["id"] == cid
        packets = wait_for(lambda: [p for p in api.ok("GET", f"/gw/devices/{dev_id}/packets") if p["type"] == 2])
        assert base64.b64decode(packets[0]["data"]).startswith(b"*HQ," + ident.encode())
        by_ident = api.ok("GET", f"/gw/channels/1/idents/{ident}/packets", {"count": 10})
        assert {p["type"] for p in by_ident} >= {0, 2}
        idents = api.ok("GET", "/gw/channels/1/idents")
        assert any(i["ident"] == ident and i["unknown"] is False for i in idents)
        chan_msgs = api.ok("GET", "/gw/channels/1/messages", {"filter": f"ident=='{ident}'"})
        assert chan_msgs and chan_msgs[0]["ident"] == ident
        closed = api.ok("DELETE", f"/gw/devices/{dev_id}/connections")
        assert [c["id"] for c in closed] == [cid]
        sock.settimeout(5)
        while sock.recv(4096):  # the server closes the socket: recv ends with b"" (a timeout fails)
            pass
    assert wait_for(lambda: any(r["event"] == "disconnect" for r in api.ok("GET", f"/gw/devices/{dev_id}/logs")))
    logs = api.ok("GET", "/gw/channels/1/logs", {"filter": "event=='disconnect'"})
    assert any(r["ident"] == ident for r in logs)
    assert api.get("/gw/channels/3").status_code == 404
    assert api.get("/gw/channels/x").status_code == 400


def test_unknown_ident_is_marked(tmp_path: Path, gateway_factory: Any) -> None:
    with gateway_factory(tmp_path / "d", auto_register=False) as s, \
            socket.create_connection(("127.0.0.1", s.h02_port), timeout=10) as sock:
        sock.sendall(h02_v1("8880001234", time.time()))

        def seen() -> list[dict[str, Any]]:
            r = httpx.get(s.url("/gw/channels/1/idents"), headers=s.headers)
            return r.json()["result"]  # type: ignore[no-any-return]

        idents = wait_for(seen)
        assert idents[0]["ident"] == "8880001234" and idents[0]["unknown"] is True
        assert httpx.get(s.url("/gw/devices"), headers=s.headers).json()["result"] == []


def test_stream_receives_injected_message(api: Api) -> None:
    dev = api.create_device("999000000000001", name="streamed")
    other = api.create_device("999000000000002")
    url = f"/gw/devices/{dev['id']}/stream"
    with api.client.stream("GET", url, headers=api.headers(), timeout=10) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = r.iter_lines()
        assert ": connected" in [next(lines) for _ in range(2)]
        api.ok("POST", f"/gw/devices/{other['id']}/messages", json=[{"skip": True}])
        api.ok("POST", f"/gw/devices/{dev['id']}/messages", json=[{"timestamp": 1700000000, "hello": "sse"}])
        event = sse_events(lines, "message")
        assert event["device_id"] == dev["id"] and event["data"]["hello"] == "sse"
    # ?token= for EventSource, pattern selectors follow devices, bad types -> 400
    with api.client.stream("GET", "/gw/devices/name=late*/stream", params={"token": api.token, "types": "message"},
                           timeout=10) as r:
        lines = r.iter_lines()
        assert ": connected" in [next(lines) for _ in range(2)]
        late = api.create_device("999000000000003", name="late-one")
        api.ok("POST", f"/gw/devices/{late['id']}/messages", json=[{"n": 1}])
        assert sse_events(lines, "message")["device_id"] == late["id"]
    assert api.get(url, params={"types": "bogus"}).status_code == 400
    assert api.client.get(url).status_code == 401
