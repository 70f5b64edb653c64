"""The simulator's H02 frames decode with the project's codec; its splitter reads server output."""

from __future__ import annotations

import random
from typing import Any

import pytest

from sinogate.simulate import frames_h02 as h02
from sinogate.simulate.route import Fix, Route

NOW = 1_760_000_000.0
ID = "7340100005"


def _codec() -> Any:
    from sinogate import codecs

    return codecs.connection_class("h02")()


def _fix(ts: int = 1_759_990_000, **kw: Any) -> Fix:
    fix = Route(random.Random(7)).advance(ts, 1.0)
    for k, v in kw.items():
        setattr(fix, k, v)
    return fix


def test_coordinate_text() -> None:
    assert h02.lat_text(22.5862950) == "2235.1777,N"
    assert h02.lat_text(-7.0315250) == "0701.8915,S"
    assert h02.lon_text(113.9648550) == "11357.8913,E"
    assert h02.lon_text(-0.0) == "00000.0000,E"
    assert h02.lat_text(10.99999999) == "1100.0000,N"  # rounding never yields 60 minutes


@pytest.mark.parametrize(("lat", "lon"), [(22.543, 114.058), (-33.9249, 18.4241), (4.711, -74.0721), (-37.8, -70.1)])
def test_v1_and_binary_decode(lat: float, lon: float) -> None:
    conn = _codec()
    fix = _fix(lat=lat, lon=lon, speed_kmh=55.6, course=187, ignition=False, power_cut=True)
    frames = conn.feed(h02.v1(ID, fix) + h02.binary(ID, fix) + h02.binary(ID, fix), NOW)
    assert len(frames) == 3
    for f in frames:
        assert f.errors == [] and f.ident == ID
        (m,) = f.messages
        assert m["position.latitude"] == pytest.approx(lat, abs=2e-6)
        assert m["position.longitude"] == pytest.approx(lon, abs=2e-6)
        assert m["position.direction"] == 187
        assert m["timestamp"] == fix.ts
        assert m["engine.ignition.status"] is False
        assert m["position.speed"] == pytest.approx(55.6, abs=1.0)
    assert frames[0].replies and frames[0].replies[0].startswith(f"*HQ,{ID},V4,V1,".encode())


def test_binary_lengths_and_long_trailer() -> None:
    fix = _fix()
    assert len(h02.binary(ID, fix)) == 32
    assert len(h02.binary(ID, fix, long=True)) == 45
    conn = _codec()
    frames = conn.feed(h02.binary(ID, fix, long=True) * 2 + h02.v1(ID, _fix(ts=fix.ts + 1)), NOW)
    assert [len(f.raw) for f in frames[:2]] == [45, 45]
    assert len(frames) == 3 and all(f.errors == [] for f in frames)
    assert frames[0].messages[0]["timestamp"] == fix.ts
    assert frames[2].messages[0]["timestamp"] == fix.ts + 1


def test_sos_alarm_bit() -> None:
    conn = _codec()
    (f,) = conn.feed(h02.v1(ID, _fix(sos=True)), NOW)
    assert f.messages[0].get("sos.alarm") is True


def test_command_answers_decode() -> None:
    conn = _codec()
    fix = _fix()
    data = (
        h02.v4_full(ID, "S20", ["DONE"], "130305", fix, relay_cut=True)
        + h02.v4_short(ID, "S20", "034313", ["1", "1"])
        + h02.sms(ID, "ST901\nID:7340100005\nVOLT:12.9V\nGSM:26")
        + h02.htbt(ID, 100)
        + h02.link(ID, fix)
    )
    frames = conn.feed(data, NOW)
    assert [f.errors for f in frames] == [[]] * 5
    ms = [f.messages[0] for f in frames]
    assert ms[0]["command.code"] == "S20" and ms[0]["command.time"] == "130305"
    assert ms[0]["timestamp"] == fix.ts
    assert ms[1]["command.code"] == "S20" and ms[1]["command.time"] == "034313"
    assert "VOLT:12.9V" in ms[2]["command.response"]
    assert ms[3]["battery.level"] == 100
    assert frames[3].replies == [f"*HQ,{ID},HTBT#".encode()]
    assert ms[4]["message.type"] == "LINK"


def test_splitter_sentences_and_raw_text() -> None:
    sp = h02.H02Splitter()
    got = sp.feed(b"*HQ,7340100005,V4,V1,20251009085320#*HQ,7340100005,S20,0102")
    assert [g.kind for g in got] == ["V4"]
    got = sp.feed(b"03,1,1#RCONF")
    assert got[0].fields == ["HQ", "7340100005", "S20", "010203", "1", "1"]
    assert got[1].fields == [] and got[1].text == "RCONF"
    got = sp.feed(b"8040000 1.2.3.4 5013\r\n")
    assert [g.text for g in got] == ["8040000 1.2.3.4 5013"]
    got = sp.feed(b"C10#*HQ,1,R12,010203#")
    assert [g.text for g in got] == ["C10", "HQ,1,R12,010203"]


def test_encoded_commands_are_understood() -> None:
    conn = _codec()
    conn.feed(h02.v1(ID, _fix()), NOW)
    names = [("engine.stop", {}), ("custom", {"payload": "RCONF"})]
    for name, props in names:
        enc = conn.encode_command(name, props, NOW)
        (inc,) = h02.H02Splitter().feed(enc.data)
        if name == "engine.stop":
            assert inc.kind == "S20" and inc.fields[-2:] == ["1", "1"]
        else:
            assert inc.text.rstrip("#") == "RCONF"
