"""The simulator's JT/T 808 frames decode with the project's codec, and its parser reads the codec's
platform frames (replies and commands)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from sinogate.simulate import frames_jt808 as jt
from sinogate.simulate.route import Fix, Route
from tests.codecs.vectors import load

NOW = 1_760_000_000.0
PHONE = "138010000007"


def _codec() -> Any:
    from sinogate import codecs

    return codecs.connection_class("jt808")()


def _fix(ts: int = 1_759_990_000, **kw: Any) -> Fix:
    fix = Route(random.Random(5)).advance(ts, 1.0)
    for k, v in kw.items():
        setattr(fix, k, v)
    return fix


def test_checksum_and_escape_match_reference_vector() -> None:
    vec = next(v for v in load("jt808_more.json") if v["id"] == "jt808-more-000")
    wire = bytes.fromhex(vec["hex"])
    raw = jt.unescape(wire[1:-1])
    body = raw[12:-1]
    assert jt.Header("123456789012").frame(0x0200, 126, body) == wire
    assert jt.xor_checksum(raw[:-1]) == raw[-1]


def test_xor_fold_equals_loop() -> None:
    rng = random.Random(1)
    for n in range(0, 70):
        data = bytes(rng.randrange(256) for _ in range(n))
        x = 0
        for b in data:
            x ^= b
        assert jt.xor_checksum(data) == x


@pytest.mark.parametrize("v2019", [False, True])
def test_uplink_frames_decode_with_codec(v2019: bool) -> None:
    conn = _codec()
    h = jt.Header(PHONE, v2019)
    fix = _fix(lat=-33.9249, lon=-70.5, sos=True, ignition=False, speed_kmh=42.5, course=271)
    fix2 = _fix(ts=fix.ts + 1, power_cut=True)
    data = b"".join(
        [
            h.frame(0x0100, 0, jt.register_body(PHONE, v2019)),
            h.frame(0x0102, 1, jt.auth_body(b"AUTH", v2019, imei="861234567890123")),
            h.frame(0x0200, 2, jt.location_body(fix, relay_cut=True)),
            h.frame(0x0704, 3, jt.batch_body([jt.location_body(fix), jt.location_body(fix2)], blind=True)),
            h.frame(0x0002, 4, b""),
            h.frame(0x0001, 5, jt.general_response_body(9, 0x8105, 0)),
            h.frame(0x6006, 6, jt.text_report_body("VOLT:12.9V\nGSM:26")),
            h.frame(0x0104, 7, jt.params_answer_body(9, {0x0029: (10).to_bytes(4, "big")})),
        ]
    )
    frames = conn.feed(data, NOW)
    assert [f.errors for f in frames] == [[]] * 8
    assert all(f.ident == PHONE for f in frames)
    msgs = [m for f in frames for m in f.messages]
    types = [m.get("message.type") for m in msgs]
    assert types == ["0x0100", "0x0102", "0x0200", "0x0704", "0x0704", "0x0002", "0x0001", "0x6006", "0x0104"]
    loc = msgs[2]
    assert loc["position.latitude"] == pytest.approx(-33.9249, abs=1e-6)
    assert loc["position.longitude"] == pytest.approx(-70.5, abs=1e-6)
    assert loc["position.speed"] == pytest.approx(42.5, abs=0.1)
    assert loc["position.direction"] == 271
    assert loc["timestamp"] == fix.ts  # GMT+8 BCD time, decoded with the default offset
    assert loc["sos.alarm"] is True
    assert loc["engine.ignition.status"] is False
    assert loc["position.satellites"] == fix.satellites
    assert loc["gsm.signal.level"] == fix.rssi
    assert loc["vehicle.mileage"] == pytest.approx(fix.odometer_m / 1000, abs=0.1)
    assert loc.get("fuel.cut.status") is True
    assert msgs[3]["timestamp"] == fix.ts and msgs[4]["timestamp"] == fix2.ts
    assert msgs[4].get("power.cut.alarm") is True
    assert msgs[3].get("position.blackbox") is True
    assert "VOLT:12.9V" in msgs[7]["command.response"]
    # every uplink but 0x0001 is answered, and our splitter reads those answers
    sp = jt.Jt808Splitter()
    replies = [sp.feed(r) for f in frames for r in f.replies]
    downs = [d for batch in replies for d in batch]
    assert downs[0].msg_id == 0x8100 and downs[0].fields["result"] == 0 and downs[0].fields["serial"] == 0
    acks = [(d.fields["serial"], d.fields["msg_id"]) for d in downs[1:]]
    assert acks == [(1, 0x0102), (2, 0x0200), (3, 0x0704), (4, 0x0002), (6, 0x6006), (7, 0x0104)]
    assert all(d.checksum_ok and d.v2019 == v2019 for d in downs)


@pytest.mark.parametrize("v2019", [False, True])
def test_parse_codec_commands(v2019: bool) -> None:
    conn = _codec()
    h = jt.Header(PHONE, v2019)
    conn.feed(h.frame(0x0102, 0, jt.auth_body(b"x", v2019, imei="861234567890123")), NOW)
    cases: list[tuple[str, dict[str, Any], int]] = [
        ("engine.stop", {}, 0x8105),
        ("interval.set", {"seconds": 15}, 0x8103),
        ("params.query", {}, 0x8104),
        ("custom", {"payload": "RCONF"}, 0x8300),
    ]
    for name, props, mid in cases:
        enc = conn.encode_command(name, props, NOW)
        (down,) = jt.Jt808Splitter().feed(enc.data)
        assert down.msg_id == mid and down.checksum_ok
        if mid == 0x8105:
            assert down.fields["command"] == 0xF0
        elif mid == 0x8103:
            assert down.fields["params"] == {0x0029: (15).to_bytes(4, "big")}
        elif mid == 0x8300:
            assert down.fields["text"] == "RCONF"


def test_splitter_handles_fragments_and_escapes() -> None:
    h = jt.Header(PHONE)
    body = jt.general_response_body(0x7E7D, 0x0200, 0)  # forces escapes in the body
    frame = jt.Header(PHONE).frame(0x8001, 0x7D7E, body)
    assert b"\x7d\x02" in frame and b"\x7d\x01" in frame
    sp = jt.Jt808Splitter()
    wire = frame + h.frame(0x8001, 1, jt.general_response_body(1, 0x0200, 0))
    got = []
    for i in range(len(wire)):
        got += sp.feed(wire[i : i + 1])
    assert [(d.serial, d.fields["serial"]) for d in got] == [(0x7D7E, 0x7E7D), (1, 1)]
