"""The running server end to end: real sockets, a real SQLite file, exact replies on the wire."""

from __future__ import annotations

import re
import socket
import struct
import time
from pathlib import Path

import pytest

from sinogate.store.base import TimeQuery
from tests.server.frames import (
    batch_body,
    h02_binary32,
    h02_v1,
    jt808_frame,
    location_body,
    register_body,
)
from tests.server.harness import RunningGateway, read_until, split_jt808

PHONE = "013912345678"
JT_IDENT = "13912345678"


@pytest.fixture
def gw(tmp_path: Path):
    running = RunningGateway(tmp_path)
    yield running
    running.stop()


def device_by_ident(gw: RunningGateway, protocol: str, ident: str) -> dict:
    return gw.wait_for(lambda: gw.runtime.devices.find(protocol, ident))


def stored(gw: RunningGateway, device_id: int) -> list[dict]:
    return gw.call(gw.runtime.store.messages([device_id], TimeQuery()))


def unframe(frame: bytes) -> bytes:
    return frame[1:-1].replace(b"\x7d\x02", b"\x7e").replace(b"\x7d\x01", b"\x7d")


def general_response(frame: bytes) -> tuple[int, int, int, int]:
    """(platform msg id, answered serial, answered id, result) of a 0x8001."""
    raw = unframe(frame)
    msg_id = struct.unpack(">H", raw[0:2])[0]
    serial, answered, result = struct.unpack(">HHB", raw[12:17])
    return msg_id, serial, answered, result


def test_h02_text_and_binary(gw: RunningGateway) -> None:
    now = time.time() - 60
    with gw.connect("h02") as sock:
        sock.sendall(h02_v1("4210051415", now, 22.5, 114.0))
        reply = read_until(sock, b"#")
        assert re.fullmatch(rb"\*HQ,4210051415,V4,V1,20\d{12}#", reply), reply
        sock.sendall(h02_binary32("4210051415", now + 10, 22.6, 114.1))
        device = device_by_ident(gw, "h02", "4210051415")
        messages = gw.wait_for(lambda: len(stored(gw, device["id"])) == 2 and stored(gw, device["id"]))
    text, binary = messages
    assert text["message.type"] == "V1"
    assert text["position.latitude"] == pytest.approx(22.5, abs=1e-5)
    assert text["position.speed"] == pytest.approx(18.52, abs=0.01)
    assert text["engine.ignition.status"] is False
    assert text["device.id"] == device["id"]
    assert text["server.timestamp"] >= text["timestamp"]
    assert binary["message.type"] == "$"
    assert binary["position.longitude"] == pytest.approx(114.1, abs=1e-5)
    assert binary["timestamp"] == pytest.approx(int(now + 10), abs=0.5)
    telemetry = gw.call(gw.runtime.store.telemetry(device["id"]))
    assert telemetry["position.latitude"]["value"] == pytest.approx(22.6, abs=1e-5)


def test_jt808_register_auth_locations_batch(gw: RunningGateway) -> None:
    now = time.time() - 3600
    with gw.connect("jt808") as sock:
        sock.sendall(jt808_frame(0x0100, PHONE, 1, register_body()))
        (reg_reply,) = split_jt808(read_until(sock, b"\x7e", 2))
        raw = unframe(reg_reply)
        assert raw[0:2] == b"\x81\x00"
        assert raw[4:10] == bytes.fromhex(PHONE)
        assert struct.unpack(">HB", raw[12:15]) == (1, 0)  # answers serial 1 with success
        auth_code = raw[15:-1]
        assert auth_code

        sock.sendall(jt808_frame(0x0102, PHONE, 2, auth_code))
        (auth_reply,) = split_jt808(read_until(sock, b"\x7e", 2))
        assert general_response(auth_reply) == (0x8001, 2, 0x0102, 0)

        for i in range(3):
            sock.sendall(jt808_frame(0x0200, PHONE, 10 + i, location_body(now + i * 30, 31.2 + i / 100, 121.5,
                                                                          speed_kmh=40.5, mileage_km=1234.5)))
        replies = split_jt808(read_until(sock, b"\x7e", 6))
        assert [general_response(r) for r in replies] == [(0x8001, 10 + i, 0x0200, 0) for i in range(3)]

        older = [location_body(now - 600 + i * 10, 30.0, 120.0) for i in range(2)]
        sock.sendall(jt808_frame(0x0704, PHONE, 20, batch_body(older, blind=True)))
        (batch_reply,) = split_jt808(read_until(sock, b"\x7e", 2))
        assert general_response(batch_reply) == (0x8001, 20, 0x0704, 0)

    device = device_by_ident(gw, "jt808", JT_IDENT)
    messages = stored(gw, device["id"])
    positions = [m for m in messages if "position.latitude" in m]
    assert len(positions) == 5
    blackbox = [m for m in positions if m.get("position.blackbox")]
    assert len(blackbox) == 2
    live = sorted((m for m in positions if not m.get("position.blackbox")), key=lambda m: m["timestamp"])
    assert live[-1]["position.latitude"] == pytest.approx(31.22, abs=1e-5)
    assert live[0]["position.speed"] == pytest.approx(40.5)
    assert live[0]["vehicle.mileage"] == pytest.approx(1234.5)
    assert live[0]["timestamp"] == pytest.approx(int(now), abs=0.5)
    registration = next(m for m in messages if m["message.type"] == "0x0100")
    assert registration["province.id"] == 44 and registration["city.id"] == 300
    # The blind-area batch arrived last but is older: it must not become the latest position.
    telemetry = gw.call(gw.runtime.store.telemetry(device["id"]))
    assert telemetry["position.latitude"]["value"] == pytest.approx(31.22, abs=1e-5)


def test_same_message_twice_is_stored_once(gw: RunningGateway) -> None:
    body = location_body(time.time() - 100, 10.0, 20.0)
    with gw.connect("jt808") as sock:
        sock.sendall(jt808_frame(0x0200, PHONE, 1, body))
        read_until(sock, b"\x7e", 2)
        sock.sendall(jt808_frame(0x0200, PHONE, 2, body))  # resend after a lost ack: new serial, same data
        read_until(sock, b"\x7e", 2)
    device = device_by_ident(gw, "jt808", JT_IDENT)
    assert len(stored(gw, device["id"])) == 1


def test_raw_packets_and_connection_log(gw: RunningGateway) -> None:
    frame = jt808_frame(0x0002, PHONE, 5, b"")
    with gw.connect("jt808") as sock:
        sock.sendall(frame)
        reply = read_until(sock, b"\x7e", 2)
    device = device_by_ident(gw, "jt808", JT_IDENT)

    def packets() -> list[dict]:
        return gw.call(gw.runtime.store.packets(TimeQuery(), device_ids=[device["id"]]))

    records = gw.wait_for(lambda: len(packets()) >= 4 and packets())
    assert [p["type"] for p in records] == [0, 2, 3, 1]
    assert records[1]["data"] == frame
    assert records[2]["data"] == reply
    assert len({p["conn"] for p in records}) == 1
    logs = gw.wait_for(lambda: gw.call(gw.runtime.store.logs(TimeQuery(), device_ids=[device["id"]])))
    events = [lg["event"] for lg in logs]
    assert events[0] == "connect"
    gw.wait_for(lambda: any(lg["event"] == "disconnect" for lg in
                            gw.call(gw.runtime.store.logs(TimeQuery(), device_ids=[device["id"]]))))
    closing = next(lg for lg in gw.call(gw.runtime.store.logs(TimeQuery(), device_ids=[device["id"]]))
                   if lg["event"] == "disconnect")
    assert closing["recv"] == len(frame) and closing["send"] == len(reply) and closing["msgs"] == 1


def test_restart_keeps_everything(tmp_path: Path) -> None:
    gw = RunningGateway(tmp_path)
    try:
        with gw.connect("h02") as sock:
            sock.sendall(h02_v1("4210051415", time.time() - 30, 1.5, 2.5))
            read_until(sock, b"#")
        device = device_by_ident(gw, "h02", "4210051415")
    finally:
        gw.stop()
    again = RunningGateway(tmp_path)
    try:
        assert again.runtime.devices.find("h02", "4210051415")["id"] == device["id"]
        assert again.runtime.devices.get(device["id"])["connected"] is False
        (message,) = stored(again, device["id"])
        assert message["position.longitude"] == pytest.approx(2.5, abs=1e-5)
        telemetry = again.call(again.runtime.store.telemetry(device["id"]))
        assert telemetry["position.latitude"]["value"] == pytest.approx(1.5, abs=1e-5)
    finally:
        again.stop()


def test_unknown_idents_are_kept_when_auto_registration_is_off(tmp_path: Path) -> None:
    gw = RunningGateway(tmp_path, auto_register=False)
    try:
        frame = h02_v1("7340001234", time.time() - 30, 5.0, 6.0)
        with gw.connect("h02") as sock:
            sock.sendall(frame)
            assert read_until(sock, b"#").startswith(b"*HQ,7340001234,V4,V1,")
        assert gw.runtime.devices.find("h02", "7340001234") is None
        idents = gw.wait_for(lambda: gw.call(gw.runtime.store.idents("h02")))
        assert idents[0]["ident"] == "7340001234" and idents[0]["device_id"] is None
        assert bytes.fromhex(idents[0]["sample"]) == frame
        assert idents[0]["peer"].startswith("127.0.0.1:")
        messages = gw.call(gw.runtime.store.messages(None, TimeQuery(), protocol="h02"))
        assert messages[0]["ident"] == "7340001234" and "device.id" not in messages[0]
        packets = gw.wait_for(lambda: gw.call(gw.runtime.store.packets(TimeQuery(), protocol="h02",
                                                                       ident="7340001234")))
        assert packets[0]["type"] == 0 and packets[1]["data"] == frame
        # Claiming the ident later files what was stored under the new device.
        device = gw.call(gw.runtime.devices.create({"ident": "7340001234", "protocol": "h02", "name": "van"}))
        assert len(stored(gw, device["id"])) == 1
    finally:
        gw.stop()


def test_garbage_connection_is_closed_and_others_keep_working(gw: RunningGateway) -> None:
    junk = socket.create_connection(("127.0.0.1", gw.config.h02_port), timeout=5)
    junk.sendall(bytes(range(1, 35)) * 400)  # bytes 1-34: no '*', '$' or 'X' anywhere
    with gw.connect("h02") as sock:
        sock.sendall(h02_v1("4210051415", time.time() - 5, 3.0, 4.0))
        assert read_until(sock, b"#").startswith(b"*HQ,4210051415,V4,V1,")
    junk.settimeout(5)
    try:
        closed = junk.recv(1024) == b""  # a timeout here means the server kept the connection open
    except (ConnectionResetError, BrokenPipeError):
        closed = True
    assert closed, "the server did not close a connection that sent only garbage"
    junk.close()


def test_future_time_is_flagged_and_not_latest(gw: RunningGateway) -> None:
    now = time.time()
    with gw.connect("jt808") as sock:
        sock.sendall(jt808_frame(0x0200, PHONE, 1, location_body(now - 60, 10.0, 20.0)))
        read_until(sock, b"\x7e", 2)
        sock.sendall(jt808_frame(0x0200, PHONE, 2, location_body(now + 3 * 86400, 11.0, 21.0)))
        read_until(sock, b"\x7e", 2)
    device = device_by_ident(gw, "jt808", JT_IDENT)
    messages = stored(gw, device["id"])
    assert [m.get("timestamp.flagged", False) for m in messages] == [False, True]
    telemetry = gw.call(gw.runtime.store.telemetry(device["id"]))
    assert telemetry["position.latitude"]["value"] == pytest.approx(10.0)


def test_udp_datagrams(gw: RunningGateway) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.sendto(jt808_frame(0x0200, PHONE, 7, location_body(time.time() - 10, 1.0, 2.0)),
                    ("127.0.0.1", gw.config.jt808_port))
        reply, _ = sock.recvfrom(1024)
    assert general_response(reply) == (0x8001, 7, 0x0200, 0)
    device = device_by_ident(gw, "jt808", JT_IDENT)
    (message,) = stored(gw, device["id"])
    assert message["transport"] == "udp"
    types = gw.wait_for(lambda: {p["type"] for p in gw.call(gw.runtime.store.packets(
        TimeQuery(), device_ids=[device["id"]]))} >= {128 + 2, 128 + 3})
    assert types
