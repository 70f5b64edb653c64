"""H02 codec against the shared vectors: every entry of h02.json, and the h02 section of commands.json."""

from __future__ import annotations

from typing import Any

import pytest

from sinogate.codecs.base import DeviceSettings
from sinogate.codecs.h02 import Connection
from sinogate.model import params

try:  # tests/ as a package, or tests/codecs on sys.path (pytest rootdir-relative import)
    from tests.codecs.vectors import check_expect, load
except ImportError:
    from vectors import check_expect, load  # type: ignore[no-redef]

NOW = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC
NOW_010203 = 1_699_920_000.0 + 3723  # 2023-11-14 01:02:03 UTC

VECTORS: list[dict[str, Any]] = load("h02.json")
COMMANDS: dict[str, Any] = load("commands.json")["h02"]


def _settings_for(entry: dict[str, Any]) -> DeviceSettings:
    ack = "R12" in entry.get("reply_prefix", "")
    return DeviceSettings(h02_ack=ack)


@pytest.mark.parametrize("entry", VECTORS, ids=[v["id"] for v in VECTORS])
def test_vector(entry: dict[str, Any]) -> None:
    settings = _settings_for(entry)
    conn = Connection(settings=lambda _ident: settings)
    frames = conn.feed(bytes.fromhex(entry["hex"]), NOW)
    assert frames, "no frame"
    messages = [m for f in frames for m in f.messages]
    replies = [r.decode("ascii") for f in frames for r in f.replies]

    if "first_frame_hex" in entry:
        assert frames[0].raw.hex() == entry["first_frame_hex"]
    if entry.get("expect_no_position"):
        assert not any("position.latitude" in m for m in messages)
    expect = entry.get("expect")
    if expect:
        with_pos = [m for m in messages if "position.latitude" in m]
        candidates = with_pos if "position.latitude" in expect else messages
        assert candidates, f"no matching message; errors: {[e for f in frames for e in f.errors]}"
        check_expect(expect, candidates[0])
    if "reply_prefix" in entry:
        prefix = entry["reply_prefix"]
        assert any(r.startswith(prefix) for r in replies), replies
        for r in replies:
            if r.startswith(prefix) and r != prefix:
                stamp = r[len(prefix) : -1]
                assert stamp.isdigit() and len(stamp) in (6, 14), r
    for m in messages:
        for key in m:
            assert params.get(key) is not None, f"{key} is not a registered parameter"
        assert "server.timestamp" not in m


def test_v1_reply_carries_now_in_utc() -> None:
    conn = Connection()
    frame = conn.feed(b"*HQ,4210051415,V1,164549,A,0956.3869,N,08406.7068,W,000.00,000,221215,FFFFFBFF#", NOW)[0]
    assert frame.replies == [b"*HQ,4210051415,V4,V1,20231114221320#"]


_NAMES = {
    "alarmArm": ("alarm.arm", lambda p: {}),
    "alarmDisarm": ("alarm.disarm", lambda p: {}),
    "engineStop": ("engine.stop", lambda p: {}),
    "engineResume": ("engine.resume", lambda p: {}),
    "positionPeriodic": ("interval.set", lambda p: {"seconds": p["frequency"]}),
}


def _known(ident: str) -> Connection:
    conn = Connection()
    conn.feed(f"*HQ,{ident},V1,,V,,N,,E,0.00,0,,FFFFFBFF#".encode(), NOW)
    assert conn.ident == ident
    return conn


@pytest.mark.parametrize("vec", COMMANDS["encoder"], ids=[v["test"] for v in COMMANDS["encoder"]])
def test_encoder_vector(vec: dict[str, Any]) -> None:
    name, props = _NAMES[vec["command_type"]]
    cmd = _known(vec["device_unique_id"]).encode_command(name, props(vec["params"]), NOW_010203)
    assert cmd.data == bytes.fromhex(vec["expected_hex"])
    assert cmd.data.decode() == vec["expected_ascii"]
    assert cmd.expects == ("v4",)
    assert cmd.match == {"code": vec["expected_ascii"].split(",")[2], "time": "010203"}


def test_encoder_alternative_interval() -> None:
    (vec,) = COMMANDS["not_in_tests_but_in_encoder_source"]
    conn = _known("123456789012345")
    cmd = conn.encode_command("interval.set", {"seconds": vec["params"]["frequency"], "alternative": True},
                              NOW_010203)
    assert cmd.data == bytes.fromhex(vec["expected_hex"])
    assert cmd.match == {"code": "D1", "time": "010203"}


_REPLY_INPUTS = {  # example reply -> (frame that triggers it, ack setting)
    "*HQ,4210051415,V4,V1,20151222164550#": (
        b"*HQ,4210051415,V1,164549,A,0956.3869,N,08406.7068,W,000.00,000,221215,FFFFFBFF,712,01,0,0,6#", False),
    "*HQ,4208150188,V4,NBR,20161228210250#": (
        b"*HQ,4208150188,NBR,210249,260,6,0,1,1014,50675,37,281216,FFFFFBFF,2#", False),
    "*HQ,135790246811220,HTBT#": (b"*HQ,135790246811220,HTBT,100#", False),
    "*HQ,4106011660,R12,124544#": (
        bytes.fromhex("2441060116601245431311165035313006004318210e000000fffffbffff0024"), True),
}


def _utc(stamp: str) -> float:
    from calendar import timegm
    from time import strptime

    return float(timegm(strptime(stamp, "%Y%m%d%H%M%S")))


@pytest.mark.parametrize("reply", COMMANDS["server_replies_from_decoder_source"], ids=lambda r: r["trigger"][:24])
def test_server_reply_examples(reply: dict[str, Any]) -> None:
    example = reply["example"]
    data, ack = _REPLY_INPUTS[example]
    stamp = example.rstrip("#").rsplit(",", 1)[1]
    # R12 carries HHmmss only; the echo carries no time
    hms = stamp if stamp.isdigit() else "000000"
    now = _utc(stamp) if len(stamp) == 14 else _utc("20161113" + hms)
    settings = DeviceSettings(h02_ack=ack)
    frames = Connection(settings=lambda _i: settings).feed(data, now)
    assert [r for f in frames for r in f.replies] == [example.encode()]
