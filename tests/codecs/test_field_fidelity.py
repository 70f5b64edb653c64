"""Field fidelity (issue 10, items 2-6) at the codec: each sample decodes to the stated values, and
each kind is tested beyond its sample (other lengths, every split, other devices)."""

from __future__ import annotations

import struct
from typing import Any

import pytest

from sinogate.codecs.base import DeviceSettings, Frame
from sinogate.codecs.h02 import Connection as H02
from sinogate.codecs.h02.framer import MAX_BINARY
from sinogate.codecs.jt808 import Connection as JT808
from sinogate.codecs.jt808.frame import encode_frame, escape, unescape, xor_checksum
from sinogate.server.devices import validate_settings
from sinogate.store.base import StoreError

NOW = 1_760_000_000.0

# --- item 2: H02 binary frames of other lengths ------------------------------------------------------

S37 = bytes.fromhex("2400000000000752341410205224734946012332841e002118ffff7bff0b00070000001799")
B45 = bytes.fromhex("24410600082621532131081504419390060740418306000000fffffbfdff0015060000002c02dc0c000000001f")
B47 = B45[:44] + bytes.fromhex("04d2") + B45[44:]  # the 45-byte layout with two more bytes before the last
V1 = b"*HQ,4210051415,V1,164549,A,0956.3869,N,08406.7068,W,000.00,000,221215,FFFFFBFF#"


def _h02(frames: list[Frame]) -> tuple[list[dict[str, Any]], list[str]]:
    return [m for f in frames for m in f.messages], [e for f in frames for e in f.errors]


def _s37_values(m: dict[str, Any]) -> None:
    assert m["message.type"] == "$" and m["ident"] == "0000000000"
    assert m["position.latitude"] == pytest.approx(52.412248, abs=1e-6)
    assert m["position.longitude"] == pytest.approx(12.554735, abs=1e-6)
    assert m["position.speed"] == pytest.approx(3.704)  # 2.0 kn
    assert m["position.direction"] == 118
    assert m["timestamp"] == 1602661954.0  # 2020-10-14 07:52:34 UTC
    assert m["position.valid"] is True


def test_sample_37_bytes_alone_decodes_at_once() -> None:
    conn = H02()
    frames = conn.feed(S37, NOW)
    assert [f.raw for f in frames] == [S37] and conn.buffered() == 0
    messages, errors = _h02(frames)
    assert errors == [] and len(messages) == 1
    _s37_values(messages[0])


@pytest.mark.parametrize("frame", [S37, B47], ids=["37", "47"])
def test_lone_frames_of_37_and_47_bytes_at_once_alone_and_glued(frame: bytes) -> None:
    assert [f.raw for f in H02().feed(frame, NOW)] == [frame]
    assert [f.raw for f in H02().feed(frame + V1, NOW)] == [frame, V1]
    assert [f.raw for f in H02().feed(V1 + frame, NOW)] == [V1, frame]
    assert [f.raw for f in H02().feed(frame * 3 + V1 + frame, NOW)] == [frame] * 3 + [V1, frame]
    assert [f.raw for f in H02().feed(frame + b"\r\n" + V1, NOW)] == [frame, V1]


@pytest.mark.parametrize("frame", [S37, B47], ids=["37", "47"])
def test_every_split_gives_the_message_once_and_no_junk(frame: bytes) -> None:
    whole = _h02(H02().feed(frame, NOW))[0]
    for cut in range(1, len(frame)):
        conn = H02()
        frames = conn.feed(frame[:cut], NOW) + conn.feed(frame[cut:], NOW) + conn.flush(NOW)
        messages, errors = _h02(frames)
        assert errors == [] and conn.buffered() == 0, cut
        assert len(messages) == 1 and messages[0]["position.latitude"] == whole[0]["position.latitude"], cut
        assert messages[0]["timestamp"] == whole[0]["timestamp"]
        # once the connection knows the length, a split frame is never cut short
        frames = conn.feed(frame[:cut], NOW) + conn.feed(frame[cut:], NOW)
        assert [f.raw for f in frames] == [frame], cut


def test_sample_37_split_anywhere_then_text() -> None:
    for cut in range(1, len(S37) + 1):
        conn = H02()
        frames = conn.feed(S37[:cut], NOW) + conn.feed(S37[cut:] + V1, NOW)
        messages, errors = _h02(frames)
        assert errors == [] and [m["message.type"] for m in messages] == ["$", "V1"], cut
        _s37_values(messages[0])


def _frame_of(length: int) -> bytes:
    """A '$' frame of any length: B45's fixed part and a tail that looks like no frame start."""
    tail = bytes((0xFF, 0x00, 0x15, 0x06)) + bytes(0x30 + i % 40 for i in range(max(0, length - 33)))
    return (B45[:29] + tail)[:length]


@pytest.mark.parametrize("length", [32, 33, 36, 37, 40, 42, 44, 45, 46, 47, 48, 49, 55, 64, 90, MAX_BINARY])
def test_any_tail_length_alone_glued_and_split(length: int) -> None:
    frame = _frame_of(length)
    conn = H02()
    frames = conn.feed(frame, NOW) + conn.flush(NOW)  # flush: what the session does after a silence
    assert [f.raw for f in frames] == [frame]
    assert [f.raw for f in H02().feed(frame + V1, NOW)] == [frame, V1]
    assert [f.raw for f in H02().feed(V1 + frame + V1 + frame + V1, NOW)] == [V1, frame, V1, frame, V1]
    for cut in range(1, length):
        conn = H02()
        frames = conn.feed(frame[:cut], NOW) + conn.feed(frame[cut:] + V1, NOW)
        messages, errors = _h02(frames)
        assert errors == [] and [m["message.type"] for m in messages] == ["$", "V1"], (length, cut)


def test_known_lengths_are_never_held_unusual_ones_wait_for_flush_then_are_learned() -> None:
    for length in (32, 37, 42, 45, 46, 47, 48):
        conn = H02()
        assert len(conn.feed(_frame_of(length), NOW)) == 1 and conn.buffered() == 0, length
    conn = H02()
    frame = _frame_of(40)
    assert conn.feed(frame, NOW) == [] and conn.buffered() == 40
    assert [f.raw for f in conn.flush(NOW)] == [frame]
    assert [f.raw for f in conn.feed(frame, NOW)] == [frame]  # learned: at once from now on


def test_a_device_alternating_45_and_47_is_never_held() -> None:
    conn = H02()
    for frame in (B45, B47, B45, B45, B47, B47, B45):
        assert [f.raw for f in conn.feed(frame, NOW)] == [frame]
        assert conn.buffered() == 0


def test_close_decodes_a_held_complete_position() -> None:
    conn = H02()
    assert conn.feed(_frame_of(40), NOW) == []
    messages, errors = _h02(conn.close(NOW))
    assert len(messages) == 1 and errors == []
    conn = H02()
    conn.feed(S37[:20], NOW)  # the fixed part is not complete: reported, not decoded
    messages, errors = _h02(conn.close(NOW))
    assert messages == [] and errors == ["stream ended inside a frame (20 bytes)"]


def test_binary_length_setting_accepts_37_and_47_and_tells_the_framer() -> None:
    for length in (29, 32, 37, 45, 47, 64, 128):
        assert validate_settings({"h02_binary_length": length}) == {"h02_binary_length": length}
    for bad in (7, 28, 129, 500):
        with pytest.raises(StoreError):
            validate_settings({"h02_binary_length": bad})
    cfg = DeviceSettings(h02_binary_length=47)
    conn = H02(settings=lambda _i: cfg)
    assert conn.feed(B47[:45], NOW) == []  # 45 would be possible; the setting says more is coming
    assert [f.raw for f in conn.feed(B47[45:], NOW)] == [B47]


def test_datagrams_of_37_and_47_bytes() -> None:
    for frame in (S37, B47):
        [f] = H02(transport="udp").datagram(frame, NOW)
        assert f.errors == [] and len(f.messages) == 1


def test_47_bytes_reads_the_45_byte_fields() -> None:
    [m] = _h02(H02().feed(B47, NOW))[0]
    [m45] = _h02(H02().feed(B45, NOW))[0]
    for key in ("position.latitude", "position.longitude", "timestamp", "gsm.mcc", "gsm.lac", "gsm.cellid",
                "position.satellites", "gsm.signal.level", "event.seqnum"):
        assert m[key] == m45[key], key


# --- item 5: H02 text battery field --------------------------------------------------------------------

def _v1(rest: str, typ: str = "V1") -> dict[str, Any]:
    text = f"*HQ,4210209006,{typ},054048,A,2828.2297,N,07733.4332,E,000.5,047,{rest}#"
    [m] = _h02(H02().feed(text.encode(), NOW))[0]
    return m


def test_sample_battery_field_between_course_and_date() -> None:
    m = _v1("4,080918,EEE7FBDF,4261193,0")
    assert m["battery.level"] == 60  # 4 → (4-1)*20, the binary battery byte's mapping
    assert m["timestamp"] == 1536385248.0  # the date is still the date: 2018-09-08 05:40:48
    assert m["vehicle.state.bitmask"] == 0xEEE7FBDF
    assert m["position.direction"] == 47.0


@pytest.mark.parametrize(("field", "level"), [("1", 0), ("3", 20), ("5", 80), ("6", 100), ("7", 7), ("55", 55),
                                              ("100", 100), ("0", None), ("200", None)])
def test_battery_values_map_like_the_binary_byte(field: str, level: int | None) -> None:
    m = _v1(f"{field},080918,FFFFFBFF")
    assert m.get("battery.level") == level
    assert m["timestamp"] == 1536385248.0


@pytest.mark.parametrize("typ", ["V1", "V5", "V6"])
def test_battery_in_other_position_types_and_empty_date(typ: str) -> None:
    assert _v1("80,080918,FFFFFBFF", typ)["battery.level"] == 80
    m = _v1("80,,FFFFFBFF", typ)
    assert m["battery.level"] == 80 and m["timestamp"] == NOW and m["vehicle.state.bitmask"] == 0xFFFFFBFF


def test_no_battery_field_is_never_confused_with_the_date() -> None:
    m = _v1("080918,FFFFFBFF,460,00,9520,3671")
    assert "battery.level" not in m and m["timestamp"] == 1536385248.0 and m["gsm.mcc"] == 460
    m = _v1(",FFFFFBFF")
    assert "battery.level" not in m and m["vehicle.state.bitmask"] == 0xFFFFFBFF


def test_battery_in_a_v4_reply() -> None:
    text = b"*HQ,4210209006,V4,S20,DONE,130305,050316,A,2212.8745,N,11346.6574,E,14.28,028,90,220902,F7FFFBFF#"
    [m] = _h02(H02().feed(text, NOW))[0]
    assert m["battery.level"] == 90 and m["command.code"] == "S20" and m["timestamp"] == 1032670996.0  # DDMMYY 220902


# --- item 6: one connection, one device (codec side) ---------------------------------------------------

def test_frame_without_type_is_no_message_and_no_ident() -> None:
    conn = H02()
    [f] = conn.feed(b"*HQ,garbage,,,#", NOW)
    assert f.messages == [] and f.ident is None and f.errors and conn.ident is None
    conn.feed(V1, NOW)
    [f] = conn.feed(b"*HQ,garbage,,,#", NOW)
    assert f.messages == [] and f.ident is None and conn.ident == "4210051415"


def test_another_ident_is_reported_but_never_rebinds_the_connection() -> None:
    conn = H02()
    conn.feed(V1, NOW)
    other = V1.replace(b"4210051415", b"4210051499")
    [f] = conn.feed(other, NOW)
    assert f.ident == "4210051499" and conn.ident == "4210051415"
    [f] = conn.feed(b"*HQ,,V1,173212,A,2225.78879,S,02829.19021,E,0.00,0,290418,FFFFFBFF#", NOW)
    assert f.ident == "4210051415" and f.messages[0]["ident"] == "4210051415"  # empty id: the connection's
    [f] = conn.feed(S37, NOW)
    assert f.ident == "0000000000" and conn.ident == "4210051415"
    conn.follow("4210051499")
    [f] = conn.feed(b"*HQ,,V1,173212,A,2225.78879,S,02829.19021,E,0.00,0,290418,FFFFFBFF#", NOW)
    assert f.ident == "4210051499"


def test_jt808_another_terminal_never_rebinds() -> None:
    conn = JT808()
    conn.feed(encode_frame(0x0002, bytes.fromhex("013912345678"), 1, b""), NOW)
    [f] = conn.feed(encode_frame(0x0002, bytes.fromhex("013900000001"), 1, b""), NOW)
    assert f.ident == "13900000001" and conn.ident == "13912345678"
    assert conn.encode_command("custom", {"payload": "hello"}, NOW).data[5:11] == bytes.fromhex("013912345678")
    conn.follow("13900000001")
    assert conn.ident == "13900000001"
    assert conn.encode_command("custom", {"payload": "hello"}, NOW).data[5:11] == bytes.fromhex("013900000001")


# --- item 3: JT/T 808, never acknowledge what was not decoded -------------------------------------------

PHONE = bytes.fromhex("013912345678")
PHONE19 = bytes.fromhex("00000000000868628000")


def location_body(lat: int = 22586295, lon: int = 113964855, stamp: str = "251221164549",
                  extra: bytes = b"") -> bytes:
    body = struct.pack(">IIIIHHH", 0, 0x000C0003, lat, lon, 35, 405, 97) + bytes.fromhex(stamp)
    return body + b"\x01\x04" + struct.pack(">I", 123456) + b"\x30\x01\x17" + extra


# a body that holds a 0x7e byte (item 0xE4: charging, battery 0x7e): the device must escape it
STRAY_BODY = location_body(extra=b"\xe4\x02\x00\x7e")


def _with_stray(frame: bytes) -> bytes:
    """The frame as a buggy device sends it: the body's 0x7e left unescaped."""
    inner = unescape(frame[1:-1])[0]
    at = inner.index(b"\xe4\x02\x00\x7e") + 3
    return b"\x7e" + escape(inner[:at]) + b"\x7e" + escape(inner[at + 1:]) + b"\x7e"


def _acks(frames: list[Frame]) -> list[tuple[int, int, int]]:
    """(answered serial, answered id, result) of every 0x8001 among the replies."""
    out = []
    for f in frames:
        for r in f.replies:
            inner = unescape(r[1:-1])[0]
            off = 17 if inner[2] & 0x40 else 12
            if inner[:2] == b"\x80\x01":
                serial, msg_id, result = struct.unpack(">HHB", inner[off:off + 5])
                out.append((serial, msg_id, result))
    return out


@pytest.mark.parametrize("version", [None, 1], ids=["2013", "2019"])
def test_stray_0x7e_is_rejoined_and_acknowledged(version: int | None) -> None:
    phone = PHONE19 if version else PHONE
    good = encode_frame(0x0200, phone, 9, STRAY_BODY, version)
    stray = _with_stray(good)
    assert stray.count(b"\x7e") == 3
    frames = JT808().feed(stray, NOW)
    assert len(frames) == 1 and frames[0].raw == stray
    [m] = frames[0].messages
    assert m["position.latitude"] == pytest.approx(22.586295)
    assert m["battery.charging.status"] is True and m["battery.level"] == 0x7E  # the byte that was 0x7e
    assert _acks(frames) == [(9, 0x0200, 0)]
    assert any("re-joined" in e for e in frames[0].errors)


def test_stray_0x7e_every_split_and_glued() -> None:
    stray = _with_stray(encode_frame(0x0200, PHONE, 9, STRAY_BODY))
    after = encode_frame(0x0002, PHONE, 10, b"")
    stream = stray + after
    for cut in range(1, len(stream)):
        conn = JT808()
        frames = conn.feed(stream[:cut], NOW) + conn.feed(stream[cut:], NOW)
        assert [len(f.messages) for f in frames] == [1, 1], cut
        assert _acks(frames) == [(9, 0x0200, 0), (10, 0x0002, 0)], cut
        assert conn.buffered() == 0


def test_stray_0x7e_in_a_datagram() -> None:
    stray = _with_stray(encode_frame(0x0200, PHONE, 9, STRAY_BODY))
    frames = JT808(transport="udp").datagram(stray, NOW)
    assert [len(f.messages) for f in frames] == [1] and _acks(frames) == [(9, 0x0200, 0)]


def test_cut_frame_at_the_end_of_the_stream_is_never_acknowledged_as_success() -> None:
    stray = _with_stray(encode_frame(0x0200, PHONE, 9, STRAY_BODY))
    first = stray[: stray.index(b"\x7e", 1) + 1]  # the device stopped after the stray 0x7e
    conn = JT808()
    assert conn.feed(first, NOW) == []  # waits for the rest
    frames = conn.feed(encode_frame(0x0200, PHONE, 10, location_body()), NOW)  # the terminal sends another
    assert [len(f.messages) for f in frames] == [0, 1]
    assert _acks(frames) == [(9, 0x0200, 2), (10, 0x0200, 0)]
    assert any("cut short" in e for e in frames[0].errors)
    conn = JT808()
    conn.feed(first, NOW)
    [f] = conn.close(NOW)
    assert f.messages == [] and _acks([f]) == [(9, 0x0200, 2)]


@pytest.mark.parametrize("missing", [1, 5, 20, 37])
@pytest.mark.parametrize("right_checksum", [True, False])
def test_body_shorter_than_its_length_field(missing: int, right_checksum: bool) -> None:
    body = location_body()
    full = unescape(encode_frame(0x0200, PHONE, 3, body)[1:-1])[0]
    inner = bytearray(full[: len(full) - 1 - missing])  # the header still says the full length
    inner.append(xor_checksum(bytes(inner)) ^ (0 if right_checksum else 0x55))
    cut = b"\x7e" + escape(bytes(inner)) + b"\x7e"
    after = encode_frame(0x0002, PHONE, 4, b"")
    frames = JT808().feed(cut + after, NOW)
    assert [len(f.messages) for f in frames] == [0, 1]
    assert _acks(frames) == [(3, 0x0200, 2), (4, 0x0002, 0)]
    assert any("body length field" in e for e in frames[0].errors)
    conn = JT808()  # alone: answered at once (right checksum) or when the stream ends
    frames = conn.feed(cut, NOW) + conn.close(NOW)
    assert [f.messages for f in frames] == [[]] and _acks(frames) == [(3, 0x0200, 2)]


def test_wrong_checksum_with_a_sound_body_stays_lenient() -> None:
    inner = bytearray(unescape(encode_frame(0x0200, PHONE, 4, location_body())[1:-1])[0])
    inner[-1] ^= 0x01
    frames = JT808().feed(b"\x7e" + escape(bytes(inner)) + b"\x7e", NOW)
    assert len(frames[0].messages) == 1 and _acks(frames) == [(4, 0x0200, 0)]
    assert any("checksum" in e for e in frames[0].errors)


@pytest.mark.parametrize("body", [location_body(stamp="25ff21164549"), location_body(lat=95_000_000),
                                  location_body(lon=200_000_000), location_body()[:20]],
                         ids=["bad-time", "bad-lat", "bad-lon", "too-short"])
def test_wrong_checksum_with_an_untrustworthy_body_is_not_acknowledged(body: bytes) -> None:
    inner = bytearray(unescape(encode_frame(0x0200, PHONE, 5, body)[1:-1])[0])
    inner[-1] ^= 0x01
    frames = JT808().feed(b"\x7e" + escape(bytes(inner)) + b"\x7e", NOW)
    assert frames[0].messages == [] and _acks(frames) == [(5, 0x0200, 2)]


def test_short_location_with_right_checksum_is_no_empty_message() -> None:
    frames = JT808().feed(encode_frame(0x0200, PHONE, 6, b"\x00" * 12), NOW)
    assert frames[0].messages == [] and _acks(frames) == [(6, 0x0200, 2)]


def test_strict_mode_stays_silent() -> None:
    stray = _with_stray(encode_frame(0x0200, PHONE, 9, STRAY_BODY))
    first = stray[: stray.index(b"\x7e", 1) + 1]
    conn = JT808(settings=lambda _i: DeviceSettings(jt808_strict=True))
    frames = conn.feed(first + encode_frame(0x0002, PHONE, 10, b""), NOW)
    assert frames[0].messages == [] and frames[0].replies == []


# --- item 4: JT/T 808 layouts -----------------------------------------------------------------------------

SAMPLE_0210 = bytes.fromhex("7e021000070353000046980396642502200115077d027e")
SAMPLE_0107 = bytes.fromhex(
    "7e0107407f01000008686280000000170096000f00000000000000000000000000000000000000000000000000000000000000000000"
    "000000000000003000000000000000000000000000000000000000000000000000000000008986080000000000002622454332303041"
    "455548415230314132364d31365f363936303939323035323131303606362e322e383403ff907e")


def test_sample_0210_short_form() -> None:
    frames = JT808().feed(SAMPLE_0210, NOW)
    [m] = frames[0].messages
    assert m["battery.level"] == 100
    assert m["timestamp"] == 1739985307.0  # 2025-02-20 01:15:07 GMT+8 = 2025-02-19 17:15:07 UTC
    assert "position.latitude" not in m and frames[0].errors == []
    assert _acks(frames) == [(0x0396, 0x0210, 0)]


@pytest.mark.parametrize(("battery", "stamp", "version", "expected"), [
    (0, "250101000000", None, 1735660800.0), (57, "240229235959", None, 1709222399.0),
    (33, "250220011507", 1, 1739985307.0)])
def test_0210_short_form_other_values(battery: int, stamp: str, version: int | None, expected: float) -> None:
    body = bytes((battery,)) + bytes.fromhex(stamp)
    frames = JT808().feed(encode_frame(0x0210, PHONE19 if version else PHONE, 7, body, version), NOW)
    [m] = frames[0].messages
    assert m["battery.level"] == battery and m["timestamp"] == expected
    assert JT808(settings=lambda _i: DeviceSettings(time_offset=0)).feed(
        encode_frame(0x0210, PHONE, 7, body), NOW)[0].messages[0]["timestamp"] == expected + 8 * 3600


def test_0210_location_items_still_decoded() -> None:
    item = location_body()
    frames = JT808().feed(encode_frame(0x0210, PHONE, 8, bytes((len(item),)) + item), NOW)
    [m] = frames[0].messages
    assert m["position.latitude"] == pytest.approx(22.586295)


def test_sample_0107_2019_layout() -> None:
    [m] = JT808().feed(SAMPLE_0107, NOW)[0].messages
    assert m["gsm.sim.iccid"] == "89860800000000000026"
    assert m["device.hardware.version"] == "EC200AEUHAR01A26M16_69609920521106"
    assert m["device.firmware.version"] == "6.2.84"
    assert m["protocol.version"] == 1


def _attributes(maker: bytes, model: bytes, tid: bytes, hw: bytes, fw: bytes) -> bytes:
    return (b"\x00\x0f" + maker + model + tid + bytes.fromhex("89860412345678901234") + bytes((len(hw),)) + hw
            + bytes((len(fw),)) + fw + b"\x03\x01")


def test_0107_2013_layout_with_versions() -> None:
    body = _attributes(b"SINOT", b"ST-901L".ljust(20, b"\x00"), b"A1B2C3D", b"HW1.0", b"FW2.3.4")
    [m] = JT808().feed(encode_frame(0x0107, PHONE, 2, body), NOW)[0].messages
    assert (m["manufacturer.code"], m["device.model"], m["manufacturer.device.code"]) == ("SINOT", "ST-901L", "A1B2C3D")
    assert m["gsm.sim.iccid"] == "89860412345678901234"
    assert (m["device.hardware.version"], m["device.firmware.version"]) == ("HW1.0", "FW2.3.4")


def test_0107_2019_body_with_a_2013_header_is_told_by_its_length() -> None:
    body = _attributes(b"MAKER000001", b"MODEL".ljust(30, b"\x00"), b"ID123".ljust(30, b"\x00"), b"H", b"F")
    for version in (None, 1):
        [m] = JT808().feed(encode_frame(0x0107, PHONE19 if version else PHONE, 2, body, version), NOW)[0].messages
        assert m["manufacturer.code"] == "MAKER000001" and m["device.model"] == "MODEL"
        assert m["manufacturer.device.code"] == "ID123" and m["gsm.sim.iccid"] == "89860412345678901234"


ELOCK = b"(740190311185,1,001,ELOCK,3,529439)"


def test_plain_text_sentence_is_a_text_reply() -> None:
    [f] = JT808().feed(ELOCK, NOW)
    [m] = f.messages
    assert m["message.type"] == "text" and m["command.response"] == "740190311185,1,001,ELOCK,3,529439"
    assert m["ident"] == "740190311185" and f.errors == [] and m["timestamp"] == NOW


def test_plain_text_sentence_belongs_to_the_connections_terminal_and_survives_splits() -> None:
    hello = encode_frame(0x0002, PHONE, 1, b"")
    stream = hello + ELOCK + encode_frame(0x0002, PHONE, 2, b"")
    for cut in range(1, len(stream)):
        conn = JT808()
        frames = conn.feed(stream[:cut], NOW) + conn.feed(stream[cut:], NOW)
        texts = [m for f in frames for m in f.messages if m["message.type"] == "text"]
        assert len(texts) == 1 and texts[0]["ident"] == "13912345678", cut
        assert not [e for f in frames for e in f.errors], cut
