"""JT/T 808 codec against the shared vectors: jt808.json, jt808_more.json, commands.json (jt808)."""

from __future__ import annotations

from typing import Any

import pytest

from sinogate.codecs.jt808 import Connection, encode_command_frame
from sinogate.codecs.jt808.frame import encode_frame, escape, parse_header, phone_from_ident, unescape

try:  # tests/ as a package, or tests/codecs on sys.path (pytest rootdir-relative import)
    from tests.codecs.vectors import check_expect, load
except ImportError:
    from vectors import check_expect, load  # type: ignore[no-redef]

NOW = 1_700_000_000.0

VECTORS: list[dict[str, Any]] = load("jt808.json")
MORE: list[dict[str, Any]] = load("jt808_more.json")
COMMAND_VECTORS: list[dict[str, Any]] = load("commands.json")["jt808"]["vectors"]


def _decode(hex_frame: str) -> tuple[list[dict[str, Any]], list[bytes], list[str], list[Any]]:
    conn = Connection()
    frames = conn.feed(bytes.fromhex(hex_frame), NOW)
    messages = [m for f in frames for m in f.messages]
    replies = [r for f in frames for r in f.replies]
    errors = [e for f in frames for e in f.errors]
    return messages, replies, errors, frames




def _unescaped_frame(raw: bytes) -> bytes:
    if raw[:1] == b"\x7e" and raw[-1:] == b"\x7e":
        return b"\x7e" + unescape(raw[1:-1])[0] + b"\x7e"
    return raw


@pytest.mark.parametrize("vec", VECTORS, ids=[v["id"] for v in VECTORS])
def test_decoder_vector(vec: dict[str, Any]) -> None:
    messages, replies, _errors, frames = _decode(vec["hex"])
    expect = vec.get("expect")
    if expect:
        positioned = [m for m in messages if "position.latitude" in m]
        target = positioned[0] if "position.latitude" in expect and positioned else (
            positioned[0] if positioned and "position.speed" in expect else messages[0])
        check_expect(expect, target)
    if vec.get("expect_no_position"):
        assert not any("position.latitude" in m for m in messages)
    if vec.get("reply_msg_id"):
        assert vec["reply_msg_id"] in [r[1:3].hex() for r in replies]
    if vec.get("first_frame_hex"):
        assert _unescaped_frame(frames[0].raw).hex() == vec["first_frame_hex"]
    for m in messages:
        assert "server.timestamp" not in m
        assert isinstance(m["timestamp"], float)


def _more_case(vec: dict[str, Any]) -> Any:
    return pytest.param(vec, id=vec["id"])


@pytest.mark.parametrize("vec", [_more_case(v) for v in MORE])
def test_more_framing(vec: dict[str, Any]) -> None:
    raw = bytes.fromhex(vec["hex"])
    _messages, _replies, errors, frames = _decode(vec["hex"])
    assert len(frames) == 1
    inner = unescape(raw[1:-1])[0]
    hdr = parse_header(inner)
    assert hdr is not None
    checksum_errors = [e for e in errors if e.startswith("checksum")]
    length_errors = [e for e in errors if e.startswith("body length")]
    assert (not checksum_errors) == vec["checksum_ok"]
    assert hdr.body_length == vec["body_len_field"]
    assert len(inner) - hdr.length - 1 == vec["body_len_actual"]
    assert (not length_errors) == (vec["body_len_field"] == vec["body_len_actual"])
    assert (hdr.version is not None) == vec["version_flag"]
    if "unescaped_hex" in vec:
        assert _unescaped_frame(raw).hex() == vec["unescaped_hex"]
    # every frame re-encodes to the same bytes from its parts (encoder = decoder inverse)
    body = inner[hdr.length:-1]
    assert encode_frame(hdr.msg_id, hdr.phone, hdr.serial, body, hdr.version).hex() == vec["hex"]


def _more(id_: str) -> dict[str, Any]:
    return next(v for v in MORE if v["id"] == id_)


def _first(id_: str) -> tuple[dict[str, Any], list[bytes]]:
    messages, replies, errors, _ = _decode(_more(id_)["hex"])
    assert not errors
    return messages[0], replies


def test_more_000_location_escaped() -> None:
    m, replies = _first("jt808-more-000")
    assert m["ident"] == "123456789012"
    assert m["sos.alarm"] is True and m["position.valid"] is True
    assert m["position.latitude"] == pytest.approx(12.222222)
    assert m["position.longitude"] == pytest.approx(132.444444)
    assert m["position.altitude"] == 40
    assert m["position.speed"] == pytest.approx(6.0)
    assert m["position.direction"] == 0
    assert m["timestamp"] == pytest.approx(1539569410.0)  # 2018-10-15 10:10:10 GMT+8
    assert m["vehicle.mileage"] == pytest.approx(10.0)
    assert m["fuel.volume"] == pytest.approx(12.5)
    # the 0x8001 reply echoes serial 126 (0x007e, escaped on the wire)
    inner = unescape(replies[0][1:-1])[0]
    assert inner[12:17] == bytes.fromhex("007e020000")


def test_more_002_batch_second_item() -> None:
    messages, _, _, _ = _decode(_more("jt808-more-002")["hex"])
    assert len(messages) == 2
    second = messages[1]
    assert second["overspeeding.event"] is True and second["sos.alarm"] is False
    assert second["engine.ignition.status"] is True and second["position.valid"] is False
    assert second["position.latitude"] == pytest.approx(13.333333)
    assert second["position.longitude"] == pytest.approx(132.555555)
    assert second["position.altitude"] == 41
    assert second["position.speed"] == pytest.approx(5.4)
    assert second["position.direction"] == 120
    assert second["vehicle.mileage"] == pytest.approx(9.6)
    assert second["fuel.volume"] == pytest.approx(6.6)
    assert second["position.blackbox"] is False


def test_more_003_registration_2013() -> None:
    m, replies = _first("jt808-more-003")
    assert m["province.id"] == 40 and m["city.id"] == 50
    assert m["manufacturer.code"] == "12340"
    assert m["device.model"] == "smallchi123000000000"
    assert m["manufacturer.device.code"] == "CHI1230"
    assert m["vehicle.plate.color"] == 1
    assert m["vehicle.plate.number"] == "粤A12345"
    assert replies[0][1:3] == b"\x81\x00"


def test_more_004_registration_2019() -> None:
    m, replies = _first("jt808-more-004")
    assert m["ident"] == "123456789"
    assert m["protocol.version"] == 1
    assert m["province.id"] == 40 and m["city.id"] == 50
    assert m["vehicle.plate.color"] == 1
    assert m["vehicle.plate.number"] == "粤A12345"
    reply = unescape(replies[0][1:-1])[0]
    assert reply[:2] == b"\x81\x00" and reply[2] & 0x40  # 2019 header in the reply
    assert reply[4] == 1 and reply[5:15] == bytes.fromhex("00000000000123456789")
    assert reply[17:20] == bytes.fromhex("000a00")  # answered serial 10, result 0


def test_more_008_auth() -> None:
    m, replies = _first("jt808-more-008")
    assert m["message.type"] == "0x0102" and m["auth.code"] == "456121111"
    assert unescape(replies[0][1:-1])[0][12:17] == bytes.fromhex("3039010200")


def test_more_014_general_response() -> None:
    m, replies = _first("jt808-more-014")
    assert m["command.serial"] == 0
    assert m["command.code"] == "0x8105"
    assert m["command.result.code"] == 0
    assert m["command.response"] == "ok"
    assert replies == []


def test_more_018_location_answer() -> None:
    m, _ = _first("jt808-more-018")
    assert m["message.type"] == "0x0201"
    assert m["command.serial"] == 0
    assert m["position.latitude"] == pytest.approx(16.7812)
    assert m["position.longitude"] == pytest.approx(96.195632)


def test_more_015_016_auth_reply_exact_bytes() -> None:
    """Heartbeat (reply serial 0) then auth: our reply to the auth is exactly the logged 0x8001."""
    conn = Connection()
    conn.feed(bytes.fromhex(_more("jt808-more-019")["hex"]), NOW)
    frames = conn.feed(bytes.fromhex(_more("jt808-more-015")["hex"]), NOW)
    assert frames[0].messages[0]["auth.code"] == "authentication"
    assert frames[0].replies[0].hex() == _more("jt808-more-016")["hex"]


def test_platform_frames_from_command_encoders() -> None:
    phone = bytes.fromhex("024530313349")
    assert encode_command_frame("interval.set", {"seconds": 10}, phone, 0).data.hex() == \
        _more("jt808-more-020")["hex"]
    assert encode_command_frame("reboot", {}, phone, 0).data.hex() == _more("jt808-more-013")["hex"]
    sc = bytes.fromhex("012345678900")
    assert encode_command_frame("terminal.control", {"command": 5}, sc, 1).data.hex() == \
        _more("jt808-more-012")["hex"]
    sc2 = bytes.fromhex("000123456789")
    assert encode_command_frame("params.set", {"params": {"0x0001": 10}}, sc2, 10).data.hex() == \
        _more("jt808-more-011")["hex"]
    # 0x8300 with SmallChi's flag 0x05 and 0x8100/0x8001 through the frame encoder
    assert encode_frame(0x8300, sc, 1, b"\x05smallchi 518").hex() == _more("jt808-more-009")["hex"]
    sc19 = bytes.fromhex("00000000012345678900")
    assert encode_frame(0x8300, sc19, 1, b"\x05\x01smallchi 518", version=1).hex() == \
        _more("jt808-more-010")["hex"]
    assert encode_frame(0x8100, sc, 10, bytes.fromhex("006400") + b"123456").hex() == \
        _more("jt808-more-005")["hex"]
    assert encode_frame(0x8001, sc, 10, bytes.fromhex("0064020000")).hex() == _more("jt808-more-007")["hex"]


IMEI_PHONE = phone_from_ident("123456789012345")


@pytest.mark.parametrize("vec", COMMAND_VECTORS, ids=[f"{v['test']}-{i}" for i, v in enumerate(COMMAND_VECTORS)])
def test_command_vector(vec: dict[str, Any]) -> None:
    if vec["test"] == "frame_encoder":
        data = bytes.fromhex(vec["input_hex"])
        assert (b"\x7e" + escape(data[1:-1]) + b"\x7e").hex() == vec["expect_hex"]
        return
    command = vec["command"]
    name = {"engineStop": "engine.stop", "engineResume": "engine.resume", "custom": "custom"}[command["type"]]
    props = {"payload": command["data"]} if "data" in command else {}
    phone, serial = IMEI_PHONE, 0
    if vec["test"] == "protocol_encoder_disabled_legacy":
        phone, serial = bytes.fromhex("080201000027"), 0x1F
    encoded = encode_command_frame(name, props, phone, serial, None, vec["model"])
    assert encoded.data.hex() == vec["expect_hex"]


def test_imei_phone_bytes() -> None:
    assert IMEI_PHONE.hex() == "0b3a73ce2ff2"
