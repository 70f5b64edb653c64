"""The optimised codecs against the frozen pre-optimisation ones (``tests/codecs/legacy``).

Every frame the repository's vectors hold, and frames hypothesis builds around the hot layouts
(H02 V1 text, H02 binary, JT/T 808 0x0200 with items) with garbage mixed into every field, must
give exactly what the old code gave: the same messages (same keys in the same order, same values,
same types), replies, errors, idents and raw bytes, fed as a stream (whole, glued, cut at random
places) and as datagrams.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sinogate.codecs.base import DeviceSettings, Frame
from sinogate.codecs.h02 import Connection as H02
from sinogate.codecs.jt808 import Connection as JT808
from sinogate.codecs.jt808.frame import encode_frame
from tests.codecs.legacy.h02.connection import Connection as LegacyH02
from tests.codecs.legacy.jt808.connection import Connection as LegacyJT808

try:
    from tests.codecs.vectors import load
except ImportError:
    from vectors import load  # type: ignore[no-redef]

NOW = 1_766_999_999.25
SETTINGS = st.builds(
    DeviceSettings,
    time_offset=st.sampled_from([None, 0.0, 8.0, -3.5, 5.75]),
    h02_ack=st.booleans(),
    h02_binary_length=st.sampled_from([None, None, 45, 47, 37]),
    jt808_strict=st.booleans(),
)
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _norm(frames: list[Frame]) -> list[Any]:
    return [(f.raw, f.ident,
             [[(k, type(v).__name__, repr(v)) for k, v in m.items()] for m in f.messages],
             f.replies, f.errors) for f in frames]


def _same(new_cls: Callable[..., Any], old_cls: Callable[..., Any], data: bytes, s: DeviceSettings,
          cuts: tuple[int, ...] = (), now: float = NOW) -> None:
    """Stream (in pieces at ``cuts``, then flush and close) and datagram give the same frames."""
    new, old = new_cls(settings=lambda _i: s), old_cls(settings=lambda _i: s)
    bounds = [0, *sorted(c for c in cuts if 0 < c < len(data)), len(data)]
    for a, b in pairwise(bounds):
        assert _norm(new.feed(data[a:b], now)) == _norm(old.feed(data[a:b], now))
        assert new.buffered() == old.buffered()
        assert new.ident == old.ident
    assert _norm(new.flush(now)) == _norm(old.flush(now))
    assert _norm(new.close(now)) == _norm(old.close(now))
    new, old = new_cls(settings=lambda _i: s), old_cls(settings=lambda _i: s)
    assert _norm(new.datagram(data, now)) == _norm(old.datagram(data, now))


# --- the repository's vectors ---------------------------------------------------------------------

def _vector_frames(name: str) -> list[bytes]:
    out = []
    for entry in load(name):
        for key in ("hex", "first_frame_hex"):
            if isinstance(entry.get(key), str):
                out.append(bytes.fromhex(entry[key]))
    return out


H02_VECTORS = _vector_frames("h02.json")
JT808_VECTORS = _vector_frames("jt808.json") + _vector_frames("jt808_more.json")


@pytest.mark.parametrize("ack", [False, True])
@pytest.mark.parametrize("offset", [None, 3.0])
def test_h02_vectors_equal_legacy(ack: bool, offset: float | None) -> None:
    s = DeviceSettings(h02_ack=ack, time_offset=offset)
    for data in H02_VECTORS:
        _same(H02, LegacyH02, data, s)
        _same(H02, LegacyH02, data * 3, s, (len(data) // 2, len(data) + 7))
    _same(H02, LegacyH02, b"".join(H02_VECTORS), s)


@pytest.mark.parametrize("strict", [False, True])
@pytest.mark.parametrize("offset", [None, 0.0])
def test_jt808_vectors_equal_legacy(strict: bool, offset: float | None) -> None:
    s = DeviceSettings(jt808_strict=strict, time_offset=offset)
    for data in JT808_VECTORS:
        _same(JT808, LegacyJT808, data, s)
        _same(JT808, LegacyJT808, data * 3, s, (len(data) // 2, len(data) + 3))
    _same(JT808, LegacyJT808, b"".join(JT808_VECTORS), s)


# --- H02 text ------------------------------------------------------------------------------------

_LATIN = st.text(st.characters(min_codepoint=0, max_codepoint=255, exclude_characters=",#*"), max_size=8)


def _digits(n: int) -> st.SearchStrategy[str]:
    return st.text("0123456789", min_size=n, max_size=n)


def _either(common: st.SearchStrategy[str], *odd: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Mostly (9 in 10) the common form, else an odd one or garbage."""
    return st.integers(0, 9).flatmap(lambda i: common if i else st.one_of(*odd, _LATIN))


_COORD = _either(st.builds(lambda d, m: f"{d:02d}{m:07.4f}", st.integers(0, 89), st.floats(0, 59.9999)), st.one_of(
    st.builds(lambda d, m: f"{d:02d}{m:07.4f}", st.integers(0, 99), st.floats(0, 59.9999)),
    st.builds(lambda d, m: f"{d:03d}{m:07.4f}", st.integers(0, 189), st.floats(0, 59.9999)),
    st.builds(lambda d, m: f"{d}{m:06d}", st.integers(0, 180), st.integers(0, 599999)),
    st.builds(lambda d, m: f"-{d}-{m:.4f}", st.integers(0, 180), st.floats(0, 59.9999)),
    st.sampled_from(["", " 2235.1777", "2235.1777 ", "1.5", "12.5", "22 35.1", "2235.17.7", "²²35.1777", "nan",
                     "9000.0001", "18000.0000", "0000.0000", "-22-35.5", "-2235.1"]),
))
_NUM = _either(st.builds(lambda v: f"{v:06.2f}", st.floats(0, 999)), st.one_of(
    st.builds(str, st.integers(0, 400)),
    st.sampled_from(["", " 1.5", "1.5 ", "-1", "1e3", "nan", "inf", "1_0", "99999.9", "100000", "0x1", "³"]),
))
_STATUS = _either(st.builds(lambda v: f"{v:08X}", st.integers(0, 0xFFFFFFFF)), st.one_of(
    st.builds(lambda v: f"{v:08x}", st.integers(0, 0xFFFFFFFF)),
    st.sampled_from(["FFFFFBF", "FFFFFBFFF", "+FFFFFBF", "FF_FFBFF", "-0000001", " FFFFBFF", "GGGGGGGG", "ªFFFFFFF"]),
))
_EXTRA = st.one_of(
    st.builds(str, st.integers(0, 99999)),
    st.builds(lambda v: f"{v:X}", st.integers(0, 0xFFFF)),
    st.sampled_from(["460", "00", "9520", "3671", "1CC", "0", "", " 460", "12.5", "89860012345678901234",
                     "8944501311217563382F", "898600123456789012??", "89abc12345678901234", "X", "1.0"]),
)


@st.composite
def h02_text(draw: st.DrawFn) -> bytes:
    fields = [
        draw(st.sampled_from(["HQ", "HQ", "TH", "*HQ", " HQ"])),
        draw(st.one_of(_digits(10), _digits(15), st.sampled_from(["", " 4210051415", "4210051415 "]))),
        draw(st.sampled_from(["V1", "V1", "V1", "V2", "V5", "V6", "V8", "V19", "VI1", " V1", "V1 ", "v1"])),
        draw(_either(_digits(6), st.sampled_from(["", "12345", "1234567", "²34567", "24601X"]))),
        draw(_either(st.sampled_from(["A", "V"]), st.sampled_from(["B", "", "AA", "a"]))),
        draw(_COORD),
        draw(_either(st.sampled_from(["N", "S"]), st.sampled_from(["n", "s", "0", "", "E", "NN"]))),
        draw(_COORD),
        draw(_either(st.sampled_from(["E", "W"]), st.sampled_from(["e", "w", "0", "", "N"]))),
        draw(_NUM),
        draw(_NUM),
    ]
    if draw(st.integers(0, 5)) == 0:  # battery before the date
        fields.append(draw(st.sampled_from(["4", "100", "0", "7", "1000", "²"])))
    fields.append(draw(_either(st.builds(lambda d, m, y: f"{d:02d}{m:02d}{y:02d}", st.integers(0, 39),
                                         st.integers(0, 19), st.integers(0, 99)),
                               st.sampled_from(["", "12345", "1234567", "²21225", "¹21225"]))))
    if draw(st.integers(0, 6)):
        fields.append(draw(_STATUS))
    fields += draw(st.one_of(
        st.just(["460", "00", "9520", "3671"]),
        st.lists(_EXTRA, max_size=7),
        st.builds(lambda a, b: [a, "0", "12.5", "35", b, "1AF"], st.builds(str, st.integers(0, 99999)),
                  st.sampled_from(["1C2", "ZZ", ""])),
    ))
    if draw(st.integers(0, 15)) == 0:  # a field somewhere replaced by garbage
        i = draw(st.integers(0, len(fields) - 1))
        fields[i] = draw(_LATIN)
    tail = draw(st.sampled_from(["#", "#", "#\r\n", "#\n"]))
    return ("*" + ",".join(fields) + tail).encode("latin-1")


@FAST
@given(frames=st.lists(h02_text(), min_size=1, max_size=4), s=SETTINGS,
       cuts=st.lists(st.integers(0, 400), max_size=3))
def test_h02_text_equals_legacy(frames: list[bytes], s: DeviceSettings, cuts: list[int]) -> None:
    for frame in frames:
        _same(H02, LegacyH02, frame, s)
    _same(H02, LegacyH02, b"".join(frames), s, tuple(cuts))


# --- H02 binary ----------------------------------------------------------------------------------

def _bcd(v: int) -> int:
    return (v // 10) << 4 | v % 10


@st.composite
def h02_binary(draw: st.DrawFn) -> bytes:
    length = draw(st.sampled_from([45, 45, 45, 32, 37, 42, 46, 47, 48, 33, 60]))
    long = length == 42 or draw(st.integers(0, 9)) == 0
    ident = bytes(_bcd(draw(st.integers(0, 99))) for _ in range(8 if long else 5))
    if draw(st.integers(0, 5)):
        when = bytes(_bcd(v) for v in (draw(st.integers(0, 23)), draw(st.integers(0, 59)), draw(st.integers(0, 59)),
                                       draw(st.integers(1, 31)), draw(st.integers(1, 12)), draw(st.integers(0, 99))))
    else:
        when = draw(st.binary(min_size=6, max_size=6))
    if draw(st.integers(0, 4)):
        lat = bytes(_bcd(draw(st.integers(0, 99))) for _ in range(4))
        lon = bytes(_bcd(draw(st.integers(0, 99))) for _ in range(4)) + bytes(
            (_bcd(draw(st.integers(0, 9))) << 4 & 0xF0 | draw(st.integers(0, 15)),))
        sc = bytes(_bcd(draw(st.integers(0, 99))) for _ in range(3))
    else:
        lat, lon, sc = draw(st.binary(min_size=4, max_size=4)), draw(st.binary(min_size=5, max_size=5)), \
            draw(st.binary(min_size=3, max_size=3))
    battery = bytes((draw(st.sampled_from([0, 4, 6, 100, 0xF3, 0xFF, 7])),))
    status = draw(st.binary(min_size=4, max_size=4))
    head = b"$" + ident + when + lat + battery + lon + sc + status
    rest = length - len(head)
    if rest <= 0:
        return head[:length]
    tail = bytearray(draw(st.binary(min_size=rest, max_size=rest)))
    if tail and draw(st.booleans()):
        tail[0] = 0xFF
    if length == 45 and draw(st.booleans()):  # a real cell block: MCC 200-799
        tail[8:10] = draw(st.integers(200, 799)).to_bytes(2, "big")
    if length == 46 and draw(st.booleans()):
        tail[3:8] = bytes(_bcd(draw(st.integers(0, 99))) for _ in range(5))
    return head + bytes(tail)


@FAST
@given(frames=st.lists(h02_binary(), min_size=1, max_size=4), s=SETTINGS,
       cuts=st.lists(st.integers(0, 200), max_size=3), sep=st.sampled_from([b"", b"", b"\r\n", b"\n"]))
def test_h02_binary_equals_legacy(frames: list[bytes], s: DeviceSettings, cuts: list[int], sep: bytes) -> None:
    for frame in frames:
        _same(H02, LegacyH02, frame, s)
    _same(H02, LegacyH02, sep.join(frames), s, tuple(cuts))


# --- JT/T 808 0x0200 -----------------------------------------------------------------------------

_ITEM_IDS = [0x01, 0x02, 0x03, 0x04, 0x06, 0x25, 0x2A, 0x2B, 0x30, 0x31, 0x33, 0x56, 0x61, 0x69, 0x82, 0xD3,
             0xD4, 0xE9, 0xE1, 0xE3, 0xE4, 0xEB, 0xF1, 0xF2, 0xFE, 0x11, 0x12, 0x13, 0x14, 0x7E, 0x7D, 0xFF]
_ITEM = st.one_of(
    st.tuples(st.sampled_from([0x01, 0x25, 0x2B, 0xF1]), st.binary(min_size=4, max_size=4)),
    st.tuples(st.sampled_from([0x30, 0x31, 0x06, 0xD4, 0xE1, 0xFE, 0x56]), st.binary(min_size=1, max_size=1)),
    st.tuples(st.sampled_from([0x02, 0x03, 0x04, 0x06, 0x2A, 0x61, 0x69, 0x82, 0xE1, 0xE4, 0xFE]),
              st.binary(min_size=2, max_size=2)),
    st.tuples(st.sampled_from(_ITEM_IDS), st.binary(max_size=20)),
    st.tuples(st.just(0x33), st.builds(lambda d: b"*M00,45," + d, st.binary(min_size=7, max_size=12))),
    st.tuples(st.just(0xEB), st.sampled_from([b"\x01\xcc\x00\x25\x30\x0e\x57\x2f", b"GMT+8",
                                              b"\x00\x06\x00\x2d\x00\x00\x30\x39",
                                              b"\x00\x0c\x00\xb2" + b"\x89" * 10])),
)


@st.composite
def jt808_location(draw: st.DrawFn) -> bytes:
    alarm = draw(st.sampled_from([0, 0, 1, 0x80000000, 0x100])) if draw(st.booleans()) else \
        draw(st.integers(0, 2**32 - 1))
    status = draw(st.sampled_from([0x000C0003, 0x3, 0x2, 0x0C, 0])) if draw(st.booleans()) else \
        draw(st.integers(0, 2**32 - 1))
    lat = draw(st.integers(0, 91_000_000)) if draw(st.integers(0, 9)) else draw(st.integers(0, 2**32 - 1))
    lon = draw(st.integers(0, 181_000_000)) if draw(st.integers(0, 9)) else draw(st.integers(0, 2**32 - 1))
    body = struct.pack(">IIIIhHH", alarm, status, lat, lon, draw(st.integers(-32768, 32767)),
                       draw(st.integers(0, 65535)), draw(st.integers(0, 65535)))
    if draw(st.integers(0, 6)):
        body += bytes(_bcd(v) for v in (draw(st.integers(0, 99)), draw(st.integers(0, 13)), draw(st.integers(0, 32)),
                                        draw(st.integers(0, 24)), draw(st.integers(0, 60)), draw(st.integers(0, 60))))
    else:
        body += draw(st.binary(min_size=6, max_size=6))
    kind = draw(st.integers(0, 9))
    if kind == 0:
        body += draw(st.binary(min_size=18, max_size=18))  # the vendor block, or 18 bytes of items
    elif kind == 1:
        body += draw(st.binary(max_size=30))
    else:
        for item, value in draw(st.lists(_ITEM, max_size=8)):
            body += bytes((item, len(value))) + value
        if draw(st.integers(0, 5)) == 0:
            body += draw(st.binary(max_size=3))  # an item running past the end
    if draw(st.integers(0, 12)) == 0:
        body = body[: draw(st.integers(0, len(body)))]
    phone = draw(st.sampled_from([bytes.fromhex("013912345678"), bytes.fromhex("000000000001"),
                                  bytes.fromhex("0B3A73CE2FF2")]))
    version = draw(st.sampled_from([None, None, 1]))
    msg_id = draw(st.sampled_from([0x0200, 0x0200, 0x0200, 0x0201, 0x0002]))
    frame = bytearray(encode_frame(msg_id, phone if version is None else phone.rjust(10, b"\0"),
                                   draw(st.integers(0, 65535)), body[:1023], version))
    damage = draw(st.integers(0, 9))
    if damage == 0:  # wrong checksum
        frame[-2] ^= 0x5A if frame[-2] not in (0x7D, 0x7E) and frame[-2] ^ 0x5A not in (0x7D, 0x7E) else 0
    elif damage == 1 and len(frame) > 20:  # a stray 0x7e inside
        frame.insert(draw(st.integers(14, len(frame) - 2)), 0x7E)
    return bytes(frame)


@FAST
@given(frames=st.lists(jt808_location(), min_size=1, max_size=4), s=SETTINGS,
       cuts=st.lists(st.integers(0, 300), max_size=3))
def test_jt808_location_equals_legacy(frames: list[bytes], s: DeviceSettings, cuts: list[int]) -> None:
    for frame in frames:
        _same(JT808, LegacyJT808, frame, s)
    _same(JT808, LegacyJT808, b"".join(frames), s, tuple(cuts))
