"""JT/T 808 codec behaviour: framing, checksum modes, sub-packages, replies, decoders, commands."""

from __future__ import annotations

import pytest

from sinogate.codecs.base import CodecError, DeviceSettings
from sinogate.codecs.jt808 import COMMANDS, MAX_FRAME, MAX_PARTIAL, Connection, encode_command_frame
from sinogate.codecs.jt808.frame import encode_frame, escape, parse_header, unescape, xor_checksum
from sinogate.model import params

NOW = 1_700_000_000.0
PHONE = bytes.fromhex("013511221122")
# 0x0200 body: alarm SOS, status ACC+fix, 22.5/114.0, alt 10, 60.5 km/h, 90°, 2024-01-02 03:04:05 GMT+8,
# items 0x01 mileage 123.4 km, 0x30 rssi 20, 0x31 sats 9
LOC_BODY = bytes.fromhex("00000001" "00000003" "015752a0" "06cb8080" "000a" "025d" "005a" "240102030405"
                         "0104000004d2" "300114" "310109")


def _unesc(frame: bytes) -> bytes:
    return unescape(frame[1:-1])[0]


def _strict(_ident: str) -> DeviceSettings:
    return DeviceSettings(jt808_strict=True)


def test_location_fields() -> None:
    frames = Connection().feed(encode_frame(0x0200, PHONE, 7, LOC_BODY), NOW)
    (m,) = frames[0].messages
    assert m["ident"] == "13511221122" and m["message.type"] == "0x0200"
    assert m["sos.alarm"] is True and m["overspeeding.event"] is False
    assert m["engine.ignition.status"] is True and m["position.valid"] is True
    assert m["position.latitude"] == pytest.approx(22.5) and m["position.longitude"] == pytest.approx(114.0)
    assert m["position.altitude"] == 10 and m["position.speed"] == pytest.approx(60.5)
    assert m["position.direction"] == 90
    assert m["timestamp"] == pytest.approx(1704135845.0)  # 2024-01-01 19:04:05 UTC
    assert m["vehicle.mileage"] == pytest.approx(123.4)
    assert m["gsm.signal.level"] == 20 and m["position.satellites"] == 9
    assert m["alarm.bitmask"] == 1 and m["status.bitmask"] == 3
    assert sum(1 for k, v in m.items() if isinstance(v, bool)) == 64
    assert "server.timestamp" not in m
    reply = _unesc(frames[0].replies[0])
    assert reply[:2] == b"\x80\x01" and reply[12:17] == bytes.fromhex("0007020000")


def test_every_bit_name_is_registered_and_unique() -> None:
    frames = Connection().feed(encode_frame(0x0200, PHONE, 1, LOC_BODY), NOW)
    names = [k for k, v in frames[0].messages[0].items() if isinstance(v, bool)]
    assert len(set(names)) == 64
    for name in frames[0].messages[0]:
        assert params.get(name) is not None, name


def test_south_west_and_time_offset() -> None:
    body = bytearray(LOC_BODY)
    body[4:8] = (0x0C).to_bytes(4, "big")  # south + west
    conn = Connection(settings=lambda _i: DeviceSettings(time_offset=0))
    m = conn.feed(encode_frame(0x0200, PHONE, 1, bytes(body)), NOW)[0].messages[0]
    assert m["position.latitude"] < 0 and m["position.longitude"] < 0
    assert m["timestamp"] == pytest.approx(1704135845.0 + 8 * 3600)


def test_bad_time_uses_now() -> None:
    body = bytearray(LOC_BODY)
    body[22:28] = bytes(6)
    m = Connection().feed(encode_frame(0x0200, PHONE, 1, bytes(body)), NOW)[0].messages[0]
    assert m["timestamp"] == NOW


def test_checksum_mismatch_lenient_and_strict() -> None:
    good = bytearray(_unesc(encode_frame(0x0200, PHONE, 1, LOC_BODY)))
    good[-1] ^= 0x01
    bad = b"\x7e" + escape(bytes(good)) + b"\x7e"
    lenient = Connection().feed(bad, NOW)[0]
    assert any("checksum" in e for e in lenient.errors)
    assert lenient.messages and lenient.replies
    strict = Connection(settings=_strict).feed(bad, NOW)[0]
    assert any("checksum" in e for e in strict.errors)
    assert strict.messages == [] and strict.replies == []


def test_body_length_mismatch_reported() -> None:
    inner = bytearray(_unesc(encode_frame(0x0002, PHONE, 1, b"")))
    inner[3] = 5  # claims 5 body bytes, has 0
    inner[-1] = xor_checksum(bytes(inner[:-1]))
    frame = Connection().feed(b"\x7e" + escape(bytes(inner)) + b"\x7e", NOW)[0]
    assert any("body length" in e for e in frame.errors)
    # a body shorter than its length field was not decoded: no message, answered "message error"
    assert frame.messages == []
    reply = _unesc(frame.replies[0])
    assert reply[:2] == b"\x80\x01" and reply[12:17] == bytes.fromhex("0001000202")


def test_escape_round_trip() -> None:
    data = bytes(range(256)) * 2
    assert unescape(escape(data)) == (data, 0)
    assert escape(bytes.fromhex("307e087d55")) == bytes.fromhex("307d02087d0155")


def test_invalid_escape_reported() -> None:
    inner = _unesc(encode_frame(0x0002, PHONE, 1, b""))
    raw = b"\x7e" + escape(inner[:4]) + b"\x7d\x05" + escape(inner[4:]) + b"\x7e"
    frame = Connection().feed(raw, NOW)[0]
    assert any("escape" in e for e in frame.errors)


def test_garbage_before_frame_and_empty_frames() -> None:
    frame = encode_frame(0x0002, PHONE, 1, b"")
    frames = Connection().feed(b"$$" + frame + b"\x7e" + frame, NOW)
    assert frames[0].raw == b"$$" and frames[0].errors and not frames[0].messages
    assert [f.messages[0]["message.type"] for f in frames[1:]] == ["0x0002", "0x0002"]
    # a stream that joined mid-frame: tail, closing 7e, then "7e7e"-style boundary
    frames = Connection().feed(b"\x01\x02\x7e" + frame, NOW)
    assert [len(f.messages) for f in frames] == [0, 1]


def test_unterminated_frame_is_bounded() -> None:
    conn = Connection()
    frames = conn.feed(b"\x7e" + b"\x01" * (MAX_FRAME + 10), NOW)
    assert frames and frames[0].errors and conn.buffered() == 0
    frames = conn.feed(b"\x7e" + encode_frame(0x0002, PHONE, 1, b""), NOW)
    assert [m["message.type"] for f in frames for m in f.messages] == ["0x0002"]


def test_partial_frame_is_buffered() -> None:
    frame = encode_frame(0x0200, PHONE, 1, LOC_BODY)
    conn = Connection()
    assert conn.feed(frame[:10], NOW) == [] and conn.buffered() == 10
    assert len(conn.feed(frame[10:], NOW)[0].messages) == 1 and conn.buffered() == 0


def test_datagram_whole_frames_only() -> None:
    frame = encode_frame(0x0002, PHONE, 1, b"")
    conn = Connection(transport="udp")
    assert len(conn.datagram(frame + frame, NOW)) == 2
    frames = conn.datagram(frame[:8], NOW)
    assert frames[0].errors and conn.buffered() == 0


def test_sub_packages_reassembled() -> None:
    body = LOC_BODY + bytes.fromhex("e1012d")  # + battery 45 %
    first, second = body[:20], body[20:]
    conn = Connection()
    f1 = conn.feed(encode_frame(0x0200, PHONE, 10, first, total=2, index=1), NOW)[0]
    assert f1.messages == [] and len(f1.replies) == 1
    f2 = conn.feed(encode_frame(0x0200, PHONE, 11, second, total=2, index=2), NOW)[0]
    assert len(f2.replies) == 1
    (m,) = f2.messages
    assert m["battery.level"] == 45 and m["position.latitude"] == pytest.approx(22.5)
    answered = [_unesc(r)[12:14] for r in (*f1.replies, *f2.replies)]
    assert answered == [b"\x00\x0a", b"\x00\x0b"]


def test_sub_packages_bounded() -> None:
    conn = Connection()
    for msg_id in range(0x0A00, 0x0A00 + 3 * MAX_PARTIAL):
        conn.feed(encode_frame(msg_id, PHONE, 1, b"x", total=3, index=1), NOW)
    assert len(conn._reassembly.partials) <= MAX_PARTIAL
    frame = conn.feed(encode_frame(0x0A01, PHONE, 1, b"x", total=0x7FFF, index=1), NOW)[0]
    assert frame.errors and frame.messages == []


def test_header_2019_reply() -> None:
    phone = bytes.fromhex("00000866496077582164")
    frame = encode_frame(0x0002, phone, 3, b"", version=1)
    f = Connection().feed(frame, NOW)[0]
    assert f.ident == "866496077582164"
    reply = _unesc(f.replies[0])
    hdr = parse_header(reply)
    assert hdr is not None and hdr.version == 1 and hdr.phone == phone and hdr.msg_id == 0x8001
    assert reply[17:22] == bytes.fromhex("0003000200")


def test_reply_serial_increments() -> None:
    conn = Connection()
    serials = []
    for i in range(3):
        f = conn.feed(encode_frame(0x0002, PHONE, i, b""), NOW)[0]
        serials.append(parse_header(_unesc(f.replies[0])).serial)  # type: ignore[union-attr]
    assert serials == [0, 1, 2]


def test_registration_reply_auth_code() -> None:
    body = bytes.fromhex("002c012c") + b"70111" + b"MODEL".ljust(20, b"\x00") + b"ID12345" + b"\x01" + \
        "粤B12345".encode("gbk")
    f = Connection().feed(encode_frame(0x0100, PHONE, 9, body), NOW)[0]
    m = f.messages[0]
    assert m["province.id"] == 44 and m["city.id"] == 300 and m["manufacturer.code"] == "70111"
    assert m["device.model"] == "MODEL" and m["manufacturer.device.code"] == "ID12345"
    assert m["vehicle.plate.number"] == "粤B12345" and m["vehicle.plate.color"] == 1
    reply = _unesc(f.replies[0])
    assert reply[:2] == b"\x81\x00" and reply[12:-1] == b"\x00\x09\x00" + b"013511221122"


def test_auth_2019_layout() -> None:
    phone = bytes(4) + PHONE
    body = b"\x04abcd" + b"866496077582164" + b"V1.2.3".ljust(20, b"\x00")
    m = Connection().feed(encode_frame(0x0102, phone, 1, body, version=1), NOW)[0].messages[0]
    assert m["auth.code"] == "abcd" and m["device.imei"] == "866496077582164"
    assert m["device.software.version"] == "V1.2.3"


def test_params_answer() -> None:
    body = bytes.fromhex("0005" "02" "00000029" "04" "0000000a") + bytes.fromhex("00000013" "07") + b"1.2.3.4"
    f = Connection().feed(encode_frame(0x0104, PHONE, 1, body), NOW)[0]
    m = f.messages[0]
    assert m["command.serial"] == 5 and m["command.code"] == "0x8104"
    assert m["command.response"] == "0x0029=10;0x0013=1.2.3.4"
    assert m["config.report.interval"] == 10 and m["config.server.host"] == "1.2.3.4"
    assert _unesc(f.replies[0])[:2] == b"\x80\x01"


@pytest.mark.parametrize(("msg_id", "body", "text", "replied"), [
    (0x6006, b"\x01" + "版本 OK".encode("gbk"), "版本 OK", True),
    (0x0900, b"\x41RELAY ON", "RELAY ON", True),
    (0x0701, b"\x00\x00\x00\x07STATUS!", "STATUS!", False),
    (0x1300, b"\x00\x02" + "Set OK!".encode("utf-16-be"), "Set OK!", False),
])
def test_text_answers(msg_id: int, body: bytes, text: str, replied: bool) -> None:
    f = Connection().feed(encode_frame(msg_id, PHONE, 1, body), NOW)[0]
    assert f.messages[0]["command.response"] == text
    assert bool(f.replies) == replied


def test_general_response_no_reply() -> None:
    f = Connection().feed(encode_frame(0x0001, PHONE, 1, bytes.fromhex("0007830003")), NOW)[0]
    m = f.messages[0]
    assert (m["command.serial"], m["command.code"], m["command.result.code"]) == (7, "0x8300", 3)
    assert m["command.response"] == "not supported" and f.replies == []


def test_unknown_message() -> None:
    f = Connection().feed(encode_frame(0x0F0F, PHONE, 4, b"\x01\x02"), NOW)[0]
    assert f.messages[0]["message.type"] == "0x0F0F" and f.messages[0]["timestamp"] == NOW
    assert _unesc(f.replies[0])[12:17] == bytes.fromhex("00040f0f00")


def test_batch_blackbox() -> None:
    body = b"\x00\x02\x01" + len(LOC_BODY).to_bytes(2, "big") + LOC_BODY + \
        len(LOC_BODY).to_bytes(2, "big") + LOC_BODY
    f = Connection().feed(encode_frame(0x0704, PHONE, 1, body), NOW)[0]
    assert len(f.messages) == 2 and all(m["position.blackbox"] is True for m in f.messages)
    assert len(f.replies) == 1


# --- commands -----------------------------------------------------------------------------------

def _identified(settings=None) -> Connection:  # type: ignore[no-untyped-def]
    conn = Connection(settings=settings) if settings else Connection()
    conn.feed(encode_frame(0x0002, PHONE, 1, b""), NOW)
    return conn


def test_command_requires_identified_device() -> None:
    with pytest.raises(CodecError, match="not identified"):
        Connection().encode_command("reboot", {}, NOW)


def test_command_serials_and_match() -> None:
    conn = _identified()  # the heartbeat reply used platform serial 0
    cmd = conn.encode_command("engine.stop", {}, NOW)
    assert cmd.match == {"serial": 1, "msg_id": 0x8105} and cmd.expects == ("general",)
    assert _unesc(cmd.data)[12:13] == b"\xf0"
    cmd2 = conn.encode_command("params.query", {}, NOW)
    assert cmd2.match == {"serial": 2, "msg_id": 0x8104} and cmd2.expects == ("params",)
    cmd3 = conn.encode_command("custom", {"text": "WHERE#"}, NOW)
    assert cmd3.match["msg_id"] == 0x8300 and cmd3.expects == ("general", "text")
    assert _unesc(cmd3.data)[12:-1] == b"\x01WHERE#"


def test_command_bodies() -> None:
    conn = _identified()
    body = lambda name, props: _unesc(conn.encode_command(name, props, NOW).data)[12:-1]  # noqa: E731
    assert body("engine.resume", {}) == b"\xf1"
    assert body("reboot", {}) == b"\x04"
    assert body("terminal.control", {"command": 2, "parameter": "1;apn"}) == b"\x021;apn"
    assert body("interval.set", {"seconds": 30}) == bytes.fromhex("0100000029040000001e")
    assert body("server.set", {"host": "a.b", "port": 5013}) == \
        bytes.fromhex("02000000130361") + b".b" + bytes.fromhex("000000180400001395")
    assert body("params.set", {"params": {"0x0055": 90, 0x0084: 2, "0x0083": "AB1"}}) == \
        bytes.fromhex("03" "00000055" "04" "0000005a" "00000084" "01" "02" "00000083" "03") + b"AB1"
    assert body("params.query", {"ids": ["0x0029", 19]}) == bytes.fromhex("02" "00000029" "00000013")
    cmd = conn.encode_command("params.query", {"ids": [0x29]}, NOW)
    assert cmd.match["msg_id"] == 0x8106 and cmd.expects == ("params",)


def test_command_model_variants() -> None:
    seeworld = _identified(lambda _i: DeviceSettings(model="SeeWorld W15L"))
    assert _unesc(seeworld.encode_command("engine.stop", {}, NOW).data)[12:13] == b"\x64"
    assert _unesc(seeworld.encode_command("engine.resume", {}, NOW).data)[12:13] == b"\x65"
    jimi = _identified(lambda _i: DeviceSettings(model="JC371"))
    assert _unesc(jimi.encode_command("custom", {"payload": "TEST"}, NOW).data)[:2] == b"\x89\x00"


def test_command_2019_text() -> None:
    conn = Connection()
    conn.feed(encode_frame(0x0002, bytes(4) + PHONE, 1, b"", version=1), NOW)
    data = _unesc(conn.encode_command("custom", {"payload": "STATUS#"}, NOW).data)
    assert data[2] & 0x40 and data[4] == 1 and data[17:-1] == b"\x01\x01STATUS#"


def test_custom_hex_verbatim() -> None:
    conn = _identified()
    raw = "7e81050001012345678900000105087e"
    cmd = conn.encode_command("custom", {"payload": raw}, NOW)
    assert cmd.data.hex() == raw and cmd.match == {"serial": 1, "msg_id": 0x8105}
    assert conn.encode_command("custom", {"payload": "0102", "hex": True}, NOW).data == b"\x01\x02"


@pytest.mark.parametrize(("name", "props"), [
    ("nope", {}),
    ("custom", {}),
    ("custom", {"payload": 5}),
    ("custom", {"payload": "zz", "hex": True}),
    ("interval.set", {}),
    ("interval.set", {"seconds": 0}),
    ("interval.set", {"seconds": "10"}),
    ("params.set", {"params": {}}),
    ("params.set", {"params": {"0x0029": "ten"}}),
    ("params.set", {"params": {"0x0013": 5}}),
    ("params.set", {"params": {"bogus": 5}}),
    ("params.set", {"params": {"0x0084": 300}}),
    ("params.query", {"ids": "0x0029"}),
    ("terminal.control", {"command": 256}),
    ("terminal.control", {"command": 1, "parameter": 5}),
    ("server.set", {"host": "", "port": 1}),
    ("server.set", {"host": "x", "port": 70000}),
])
def test_command_errors(name: str, props: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(CodecError):
        _identified().encode_command(name, props, NOW)


def test_commands_schema() -> None:
    for name, schema in COMMANDS.items():
        assert schema["description"], name
        assert schema["type"] == "object"
    assert set(COMMANDS) >= {"custom", "engine.stop", "engine.resume", "interval.set", "params.set",
                             "params.query", "terminal.control", "reboot", "server.set"}


def test_encode_command_frame_module_level() -> None:
    cmd = encode_command_frame("engine.stop", {}, bytes.fromhex("0b3a73ce2ff2"), 0)
    assert cmd.data.hex() == "7e810500010b3a73ce2ff20000f0247e"
    assert cmd.match == {"serial": 0, "msg_id": 0x8105}
