"""Field fidelity (issue 10) on the live server: real sockets, the real runtime and its HTTP API, and
the same results as ``sinogate decode`` for the same bytes."""

from __future__ import annotations

import socket
import struct
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from sinogate.cli.decode import decode_line
from sinogate.config import ListenerConfig
from tests.commands.devices import wait_for
from tests.conftest import free_port
from tests.server.frames import jt808_frame, location_body

pytestmark = pytest.mark.timeout(90)

S37 = bytes.fromhex("2400000000000752341410205224734946012332841e002118ffff7bff0b00070000001799")
B45 = bytes.fromhex("24410600082621532131081504419390060740418306000000fffffbfdff0015060000002c02dc0c000000001f")
B47 = B45[:44] + bytes.fromhex("04d2") + B45[44:]
B40 = B45[:29] + bytes.fromhex("ff001506") + bytes(range(0x30, 0x37))  # a tail length nobody listed
SAMPLE_0210 = bytes.fromhex("7e021000070353000046980396642502200115077d027e")
PHONE = "013912345678"


class Api:
    def __init__(self, server: Any) -> None:
        self.server = server
        self.client = httpx.Client(base_url=server.http_url, headers=server.headers, timeout=10)

    def get(self, path: str, **params: Any) -> list[dict[str, Any]]:
        resp = self.client.get(path, params=params)
        assert resp.status_code == 200, resp.text
        return list(resp.json()["result"])

    def device(self, ident: str, protocol: str = "h02", **settings: Any) -> int:
        resp = self.client.post("/gw/devices", json=[{"name": ident, "protocol": protocol,
                                                       "configuration": {"ident": ident}, "settings": settings}])
        assert resp.status_code == 200, resp.text
        return int(resp.json()["result"][0]["id"])

    def messages(self, device_id: int) -> list[dict[str, Any]]:
        return self.get(f"/gw/devices/{device_id}/messages")

    def wait(self, predicate: Any, timeout: float = 5.0) -> Any:
        return wait_for(predicate, timeout)


@pytest.fixture
def api(gateway_server: Any) -> Api:
    return Api(gateway_server)


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def _read(sock: socket.socket, timeout: float = 3.0) -> bytes:
    sock.settimeout(timeout)
    try:
        return sock.recv(65536)
    except TimeoutError:
        return b""


def by_arrival(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(messages, key=lambda m: m["server.timestamp"])


def _same(stored: dict[str, Any], decoded: dict[str, Any]) -> None:
    """Every field ``sinogate decode`` gives is stored with the same value (the server adds its own)."""
    assert {k: stored.get(k) for k in decoded} == decoded


def _decoded(data: bytes, protocol: str, offset: float | None = None) -> dict[str, Any]:
    [message] = decode_line(data.hex(), protocol, time.time(), offset)["messages"]
    return message


# --- item 2 ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("frame", "ident"), [(S37, "0000000000"), (B47, "4106000826")], ids=["37", "47"])
def test_lone_37_and_47_byte_frames_are_acknowledged_and_stored_at_once(api: Api, gateway_server: Any,
                                                                        frame: bytes, ident: str) -> None:
    dev = api.device(ident, h02_ack=True)
    with _connect(gateway_server.h02_port) as sock:
        sent = time.time()
        sock.sendall(frame)
        reply = _read(sock, 3.0)
        assert reply.startswith(f"*HQ,{ident},R12,".encode()) and reply.endswith(b"#"), reply
        assert time.time() - sent < 0.8  # not one report interval (nor the flush delay) later
        [stored] = api.wait(lambda: api.messages(dev))
        assert time.time() - sent < 0.9
    _same(stored, _decoded(frame, "h02"))  # the same as `sinogate decode`
    if frame is S37:
        assert stored["position.latitude"] == pytest.approx(52.412248, abs=1e-6)
        assert stored["position.longitude"] == pytest.approx(12.554735, abs=1e-6)
        assert stored["position.speed"] == pytest.approx(3.704) and stored["position.direction"] == 118
        assert stored["timestamp"] == 1602661954.0 and stored["position.valid"] is True


def test_split_frames_and_a_device_alternating_45_and_47(api: Api, gateway_server: Any) -> None:
    dev = api.device("4106000826", h02_ack=True)
    with _connect(gateway_server.h02_port) as sock:
        for frame in (B45, B47, B45):
            sock.sendall(frame)
            assert b",R12," in _read(sock)
        for cut in (5, 29, 37, 44):  # once the connection knows its lengths, splits are waited for
            sock.sendall(B47[:cut])
            time.sleep(0.1)
            sock.sendall(B47[cut:])
            assert b",R12," in _read(sock)
        # B45 and B47 carry the same fields (the two extra bytes are not decoded): one message, deduplicated
        api.wait(lambda: len(api.messages(dev)) == 1)
    packets = api.get(f"/gw/devices/{dev}/packets")
    logs = api.get(f"/gw/devices/{dev}/logs")
    assert not [r for r in logs if r["event"] == "frame.error"], logs
    assert packets


def test_unusual_length_is_stored_after_a_short_silence_and_the_last_frame_at_disconnect(api: Api,
                                                                                       gateway_server: Any) -> None:
    dev = api.device("4106000826", h02_ack=True)
    with _connect(gateway_server.h02_port) as sock:
        sent = time.time()
        sock.sendall(B40)
        reply = _read(sock, 4.0)
        assert b",R12," in reply and time.time() - sent < 2.5  # the flush after ~1 s of silence
        api.wait(lambda: len(api.messages(dev)) == 1)
        sock.sendall(B40)  # learned: at once now
        assert b",R12," in _read(sock, 0.6)
    other = api.device("4106000999")
    with _connect(gateway_server.h02_port) as sock:
        sock.sendall(B45.replace(bytes.fromhex("4106000826"), bytes.fromhex("4106000999")))
        api.wait(lambda: len(api.messages(other)) == 1)
        sock.sendall(B40.replace(bytes.fromhex("4106000826"), bytes.fromhex("4106000999"))[:38])
    # the device hung up right after a frame of a length the connection had not seen
    stored = api.wait(lambda: len(api.messages(other)) == 2 and api.messages(other))
    assert stored[1]["position.latitude"] == stored[0]["position.latitude"]


# --- item 3 ---------------------------------------------------------------------------------------------

def _general(frame: bytes) -> tuple[int, int, int]:
    raw = frame[1:-1].replace(b"\x7d\x02", b"\x7e").replace(b"\x7d\x01", b"\x7d")
    assert raw[:2] == b"\x80\x01"
    return struct.unpack(">HHB", raw[12:17])


def _stray(serial: int, ts: float) -> bytes:
    """A 0x0200 whose body holds a 0x7e the device forgot to escape (item 0xE4 = 00 7e)."""
    frame = jt808_frame(0x0200, PHONE, serial, location_body(ts, 22.5, 114.0) + b"\xe4\x02\x00\x7e")
    return frame.replace(b"\xe4\x02\x00\x7d\x02", b"\xe4\x02\x00\x7e")


def test_jt808_cut_frame_is_answered_result_2_and_kept_in_packets_with_the_error(api: Api,
                                                                                 gateway_server: Any) -> None:
    dev = api.device("13912345678", "jt808")
    now = time.time() - 30
    stray = _stray(5, now)
    cut_short = stray[: stray.index(b"\x7e", 1) + 1]  # the stream breaks at the stray 0x7e
    with _connect(gateway_server.jt808_port) as sock:
        sock.sendall(cut_short)
        time.sleep(0.3)
        assert _read(sock, 0.3) == b""  # waits for the rest: nothing acknowledged yet
        good = jt808_frame(0x0200, PHONE, 6, location_body(now + 10, 22.6, 114.1))
        sock.sendall(good)  # the terminal goes on with a new frame: the cut one was not a frame
        replies = b""
        while replies.count(b"\x7e") < 4:
            replies += _read(sock)
        first, second = (b"\x7e" + r + b"\x7e" for r in replies.strip(b"\x7e").split(b"\x7e\x7e"))
        assert _general(first) == (5, 0x0200, 2) and _general(second) == (6, 0x0200, 0)
        stored = api.wait(lambda: api.messages(dev))
        assert [m["position.latitude"] for m in stored] == [pytest.approx(22.6)]  # no empty 0x0200
        sock.sendall(stray)  # the terminal sends it again, whole: re-joined and stored
        assert _general(_read(sock)) == (5, 0x0200, 0)
        stored = api.wait(lambda: len(api.messages(dev)) == 2 and api.messages(dev))
    assert stored[0]["position.latitude"] == pytest.approx(22.5) and stored[0]["battery.level"] == 0x7E
    packets = api.get(f"/gw/devices/{dev}/packets")
    import base64
    received = b"".join(base64.b64decode(p["data"]) for p in packets if p["type"] == 2)
    assert cut_short in received
    errors = [r for r in api.get(f"/gw/devices/{dev}/logs") if r["event"] == "frame.error"]
    assert len(errors) == 1 and "cut short" in errors[0]["reason"] and cut_short[:20].hex() in errors[0]["reason"]
    _same(stored[0], _decoded(stray, "jt808"))


# --- item 4 and 5 ---------------------------------------------------------------------------------------

def test_jt808_battery_short_form_and_text_sentence(api: Api, gateway_server: Any) -> None:
    dev = api.device("35300004698", "jt808")
    with _connect(gateway_server.jt808_port) as sock:
        sock.sendall(SAMPLE_0210)
        assert _general(_read(sock)) == (0x0396, 0x0210, 0)
        sock.sendall(b"(35300004698,1,001,ELOCK,3,529439)")
        stored = api.wait(lambda: len(api.messages(dev)) == 2 and api.messages(dev))
    battery = next(m for m in stored if m["message.type"] == "0x0210")
    assert battery["battery.level"] == 100 and battery["timestamp"] == 1739985307.0
    _same(battery, _decoded(SAMPLE_0210, "jt808"))
    text = next(m for m in stored if m["message.type"] == "text")
    assert text["command.response"] == "35300004698,1,001,ELOCK,3,529439" and text["ident"] == "35300004698"


def test_h02_battery_field(api: Api, gateway_server: Any) -> None:
    dev = api.device("4210209006")
    frame = b"*HQ,4210209006,V1,054048,A,2828.2297,N,07733.4332,E,000.5,047,4,080918,EEE7FBDF,4261193,0#"
    with _connect(gateway_server.h02_port) as sock:
        sock.sendall(frame)
        assert _read(sock).startswith(b"*HQ,4210209006,V4,V1,")
        [stored] = api.wait(lambda: api.messages(dev))
    assert stored["battery.level"] == 60 and stored["timestamp"] == 1536385248.0
    assert api.get(f"/gw/devices/{dev}/telemetry/battery.level")[0]["telemetry"]["battery.level"]["value"] == 60


# --- item 6 ---------------------------------------------------------------------------------------------

def _v1(ident: str, ts: float, lat: float = 22.5) -> bytes:
    t = datetime.fromtimestamp(ts, UTC)
    return (f"*HQ,{ident},V1,{t:%H%M%S},A,{int(lat):02d}{(lat % 1) * 60:07.4f},N,11400.0000,E,0.00,0,"
            f"{t:%d%m%y},FFFFFBFF#").encode()


def test_one_connection_one_device(api: Api, gateway_server: Any) -> None:
    dev = api.device("4210051415")
    other = api.device("4210051499")
    now = time.time() - 60
    with _connect(gateway_server.h02_port) as sock:
        sock.sendall(_v1("4210051415", now))
        assert b",V4,V1," in _read(sock)
        sock.sendall(b"*HQ,garbage,,,#")
        sock.sendall(_v1("4210051499", now + 1, 23.5))  # another device on this connection: refused
        assert _read(sock, 0.8) == b""  # not acknowledged
        sock.sendall(_v1("", now + 2, 24.5))  # no ident: the connection's device
        assert _read(sock, 0.8) == b""  # (H02 answers no frame without an id)
        stored = api.wait(lambda: len(api.messages(dev)) == 2 and api.messages(dev))
        connections = api.get(f"/gw/devices/{dev}/connections")
        assert connections[0]["refused"] == 1
    assert [m["ident"] for m in stored] == ["4210051415", "4210051415"]
    assert [m["position.latitude"] for m in stored] == [pytest.approx(22.5), pytest.approx(24.5)]
    assert api.messages(other) == []
    assert not [d for d in api.get("/gw/devices/all") if d.get("configuration", {}).get("ident") == "garbage"]
    latest = api.get(f"/gw/devices/{dev}/messages", data='{"reverse": true, "count": 1}')[0]
    assert latest["ident"] == "4210051415"
    logs = api.get(f"/gw/devices/{dev}/logs")
    refused = [r for r in logs if r["event"] == "ident.refused"]
    assert len(refused) == 1 and "4210051499" in refused[0]["reason"]
    assert any(r["event"] == "frame.error" and "without a message type" in r["reason"] for r in logs)


def test_a_channel_that_follows_ident_switches(tmp_path: Path, gateway_factory: Any) -> None:
    port = free_port()
    # (a connection registers one new device unless its channel allows more: issue 11)
    listener = ListenerConfig(protocol="h02", port=port, follow_ident=True, register_per_connection=2)
    with gateway_factory(tmp_path / "data", listeners=[listener]) as server:
        api = Api(server)
        channels = api.get("/gw/channels")
        assert channels[0]["configuration"]["follow_ident"] is True
        now = time.time() - 60
        with _connect(port) as sock:
            sock.sendall(_v1("7100000001", now))
            assert b"7100000001,V4,V1," in _read(sock)
            sock.sendall(_v1("7100000002", now + 1, 23.5))
            assert b"7100000002,V4,V1," in _read(sock)
            sock.sendall(_v1("", now + 2, 24.5))  # now the connection's device is the second one
            second = api.wait(lambda: server.runtime.devices.find("h02", "7100000002"))
            stored = api.wait(lambda: len(api.messages(second["id"])) == 2 and api.messages(second["id"]))
        assert [m["ident"] for m in stored] == ["7100000002", "7100000002"]
        first = server.runtime.devices.find("h02", "7100000001")
        assert [m["ident"] for m in api.messages(first["id"])] == ["7100000001"]


# --- item 7 ---------------------------------------------------------------------------------------------

def test_device_clock_in_local_time_is_detected_and_corrected(api: Api, gateway_server: Any) -> None:
    dev = api.device("4210051420")
    with _connect(gateway_server.h02_port) as sock:
        for i in range(3):  # a unit set to GMT+8 (SMS 8960000E08): real-time reports 8 h "ahead"
            sock.sendall(_v1("4210051420", time.time() + 8 * 3600 - 2, 22.5 + i / 100))
            assert b",V4,V1," in _read(sock)
            time.sleep(0.15)
        stored = api.wait(lambda: len(api.messages(dev)) == 3 and by_arrival(api.messages(dev)))
        assert [m.get("timestamp.flagged", False) for m in stored[:2]] == [True, True]  # not explained yet
        third = stored[2]
        assert third["timestamp.corrected"] is True and third["clock.offset"] == 8.0
        assert abs(third["timestamp"] - time.time()) < 30
        assert third["timestamp.original"] - third["timestamp"] == 8 * 3600
        sock.sendall(_v1("4210051420", time.time() + 8 * 3600 - 1, 23.0))
        later = api.wait(lambda: len(api.messages(dev)) == 4 and by_arrival(api.messages(dev))[-1])
    assert later["timestamp.corrected"] is True
    telemetry = api.get(f"/gw/devices/{dev}/telemetry/all")[0]["telemetry"]
    assert abs(telemetry["timestamp"]["value"] - time.time()) < 30  # "latest" is not 8 h ahead
    assert telemetry["position.latitude"]["value"] == pytest.approx(23.0)
    events = api.get(f"/gw/devices/{dev}/events")
    assert [(e["type"], e["clock.offset"]) for e in events] == [("clock.offset", 8.0)]
    [clock] = api.get(f"/gw/devices/{dev}/clock")
    assert clock["time_offset"] == "auto" and clock["clock.offset"] == 8.0 and clock["clock.correction"] == -28800


def test_fixed_time_offset_is_applied_like_decode(api: Api, gateway_server: Any) -> None:
    dev = api.device("4210051421", time_offset=8)
    local = time.time() + 8 * 3600 - 5
    frame = _v1("4210051421", local)
    with _connect(gateway_server.h02_port) as sock:
        sock.sendall(frame)
        assert b",V4,V1," in _read(sock)
        [stored] = api.wait(lambda: api.messages(dev))
    assert "timestamp.corrected" not in stored and "timestamp.flagged" not in stored
    assert stored["timestamp"] == _decoded(frame, "h02", 8.0)["timestamp"]
    assert stored["timestamp"] == pytest.approx(int(local) - 8 * 3600)
    [clock] = api.get(f"/gw/devices/{dev}/clock")
    assert clock["time_offset"] == 8 and clock["clock.offset"] is None


def test_jt808_unit_sending_utc_is_detected(api: Api, gateway_server: Any) -> None:
    dev = api.device("13912345679", "jt808")
    with _connect(gateway_server.jt808_port) as sock:
        for serial in range(3):
            now = time.time() - 3
            body = location_body(now - 8 * 3600, 22.5 + serial / 100, 114.0)  # UTC read as GMT+8: 8 h behind
            sock.sendall(jt808_frame(0x0200, "013912345679", serial, body))
            assert _general(_read(sock))[2] == 0
            time.sleep(0.15)
        stored = api.wait(lambda: len(api.messages(dev)) == 3 and by_arrival(api.messages(dev)))
    assert "timestamp.corrected" not in stored[0] and stored[2]["timestamp.corrected"] is True
    assert stored[2]["clock.offset"] == 0.0 and abs(stored[2]["timestamp"] - time.time()) < 30
    assert (datetime.fromtimestamp(stored[2]["timestamp.original"], UTC) + timedelta(hours=8)
            == datetime.fromtimestamp(stored[2]["timestamp"], UTC))
