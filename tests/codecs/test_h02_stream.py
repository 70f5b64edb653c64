"""H02 TCP framing: chunking, junk, the 2 KiB bound, binary length choice, X frames, robustness."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sinogate.codecs.base import DeviceSettings, Frame
from sinogate.codecs.h02 import Connection
from sinogate.codecs.h02.framer import MAX_TEXT

try:
    from tests.codecs.vectors import load
except ImportError:
    from vectors import load  # type: ignore[no-redef]

NOW = 1_700_000_000.0
VECTORS: list[dict[str, Any]] = load("h02.json")

TEXT_FRAMES = [bytes.fromhex(v["hex"]) for v in VECTORS if bytes.fromhex(v["hex"])[:1] == b"*"]
BIN_BY_LEN: dict[int, list[bytes]] = {}
for _v in VECTORS:
    _raw = bytes.fromhex(_v["hex"])
    if _raw[:1] == b"$":
        BIN_BY_LEN.setdefault(len(_raw), []).append(_raw)

V1 = b"*HQ,4210051415,V1,164549,A,0956.3869,N,08406.7068,W,000.00,000,221215,FFFFFBFF#"
B32 = bytes.fromhex("2441060116601245431311165035313006004318210e000000fffffbffff0024")
B45 = bytes.fromhex("24410600082621532131081504419390060740418306000000fffffbfdff0015060000002c02dc0c000000001f")
B46 = bytes.fromhex("2421305109380127171003170520046500100286297e003085ffffdfffff03440069129344006400001151415a20")
XF = bytes.fromhex("5800009814991024031101175540227006012321670c000095fffffbffff0033")


def _feed_chunks(conn: Connection, data: bytes, cuts: list[int]) -> list[Frame]:
    frames: list[Frame] = []
    last = 0
    for cut in [*sorted(set(cuts)), len(data)]:
        frames.extend(conn.feed(data[last:cut], NOW))
        last = cut
    return frames


def _messages(frames: list[Frame]) -> list[dict[str, Any]]:
    return [m for f in frames for m in f.messages]


# --- text framing ------------------------------------------------------------------------------


def test_crlf_after_text_is_dropped_silently() -> None:
    frames = Connection().feed(V1 + b"\r\n" + V1 + b"\n", NOW)
    assert [f.raw for f in frames] == [V1, V1]
    assert not any(f.errors for f in frames)


def test_byte_by_byte_equals_whole() -> None:
    stream = V1 + B32 + V1 + XF + V1
    whole = Connection().feed(stream, NOW)
    conn = Connection()
    split = [f for i in range(len(stream)) for f in conn.feed(stream[i : i + 1], NOW)]
    assert [f.raw for f in split] == [f.raw for f in whole]
    assert _messages(split) == _messages(whole)
    assert conn.buffered() == 0


def test_text_without_terminator_is_dropped_after_2k() -> None:
    conn = Connection()
    junk_text = b"*HQ,4210051415,V1," + b"A" * 3000
    frames = conn.feed(junk_text, NOW)
    assert any("without '#'" in e for f in frames for e in f.errors)
    assert conn.buffered() < MAX_TEXT
    frames = conn.feed(V1, NOW)
    assert len(_messages(frames)) == 1


def test_text_without_terminator_in_small_chunks_is_bounded() -> None:
    conn = Connection()
    conn.feed(b"*HQ,4210051415,V1,", NOW)
    errors = []
    for _ in range(100):
        frames = conn.feed(b"x" * 100, NOW)
        errors += [e for f in frames for e in f.errors]
        assert conn.buffered() < MAX_TEXT
    assert any("without '#'" in e for e in errors)
    assert len(_messages(conn.feed(V1, NOW))) == 1


def test_waits_for_the_hash() -> None:
    conn = Connection()
    assert conn.feed(V1[:40], NOW) == []
    assert conn.buffered() == 40
    frames = conn.feed(V1[40:], NOW)
    assert len(_messages(frames)) == 1 and conn.buffered() == 0


# --- junk -----------------------------------------------------------------------------------


def test_junk_is_skipped_and_reported_once() -> None:
    frames = Connection().feed(b"hello world" + V1, NOW)
    assert len(frames) == 2
    assert frames[0].raw == b"hello world" and frames[0].errors and not frames[0].messages
    assert len(frames[1].messages) == 1


def test_junk_run_across_chunks_is_reported_once() -> None:
    conn = Connection()
    frames = conn.feed(b"hel", NOW) + conn.feed(b"lo ", NOW) + conn.feed(b"world" + V1, NOW)
    junk = [f for f in frames if not f.messages]
    assert [f.raw for f in junk] == [b"hello world"]
    assert len(_messages(frames)) == 1


def test_fake_markers_in_junk_do_not_swallow_frames() -> None:
    # '$' and 'X' not followed by a plausible binary header, '*' not followed by "XX,"
    frames = Connection().feed(b"$$$XX**Z!" + V1 + b"X" + B32, NOW)
    msgs = _messages(frames)
    assert [m["message.type"] for m in msgs] == ["V1", "$"]


# --- binary length choice ----------------------------------------------------------------------


@pytest.mark.parametrize("frame", [B32, B45, B46], ids=["32", "45", "46"])
def test_binary_alone(frame: bytes) -> None:
    frames = Connection().feed(frame, NOW)
    assert [f.raw for f in frames] == [frame]
    assert len(_messages(frames)) == 1


@pytest.mark.parametrize("frame", [B32, B45, B46], ids=["32", "45", "46"])
def test_binary_followed_by_text(frame: bytes) -> None:
    # Traccar picks 32 for a 45-byte frame with anything behind it; we look at what follows.
    frames = Connection().feed(frame + V1, NOW)
    assert [f.raw for f in frames] == [frame, V1]
    assert not any(f.errors for f in frames)


@pytest.mark.parametrize("frame", [B32, B45], ids=["32", "45"])
def test_binary_repeated_and_then_text(frame: bytes) -> None:
    frames = Connection().feed(frame * 3 + V1 + frame, NOW)
    assert [len(f.raw) for f in frames] == [len(frame)] * 3 + [len(V1), len(frame)]


@pytest.mark.parametrize("frame", [B32, B45], ids=["32", "45"])
def test_binary_followed_by_crlf(frame: bytes) -> None:
    conn = Connection()
    frames = conn.feed(frame + b"\r\n", NOW) + conn.feed(frame + b"\r\n" + V1, NOW)
    assert [f.raw for f in frames] == [frame, frame, V1]
    assert not any(f.errors for f in frames) and conn.buffered() == 0


def test_binary_45_in_pieces_waits() -> None:
    conn = Connection()
    assert conn.feed(B45[:20], NOW) == []
    assert conn.feed(B45[20:40], NOW) == []
    frames = conn.feed(B45[40:] + V1, NOW)
    assert [f.raw for f in frames] == [B45, V1]


def test_binary_length_setting() -> None:
    cfg = DeviceSettings(h02_binary_length=45)
    conn = Connection(settings=lambda _i: cfg)
    # cut exactly after byte 32: without the setting this is indistinguishable from a 32-byte frame
    assert conn.feed(B45[:32], NOW) == []
    frames = conn.feed(B45[32:], NOW)
    assert [f.raw for f in frames] == [B45]


def test_x_frame_skipped_with_error() -> None:
    frames = Connection().feed(XF + V1, NOW)
    assert frames[0].raw == XF and frames[0].errors and not frames[0].messages
    assert len(frames[1].messages) == 1


def test_binary_32_then_45_relocks() -> None:
    frames = Connection().feed(B32 + V1 + B45 + V1, NOW)
    assert [len(f.raw) for f in frames] == [32, len(V1), 45, len(V1)]


# --- hypothesis: splitting never changes the result; garbage never raises -----------------------


def _split_property(frames_in: list[bytes], cuts: list[int], cfg: DeviceSettings) -> None:
    stream = b"".join(frames_in)
    whole = Connection(settings=lambda _i: cfg).feed(stream, NOW)
    # every text and '$' frame is one message: equal results must not be equally empty
    assert len(_messages(whole)) == sum(1 for f in frames_in if f[:1] in (b"*", b"$"))
    conn = Connection(settings=lambda _i: cfg)
    split = _feed_chunks(conn, stream, [c % (len(stream) + 1) for c in cuts])
    assert _messages(split) == _messages(whole)
    assert [f.raw for f in split if f.messages] == [f.raw for f in whole if f.messages]
    assert conn.buffered() == 0


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.sampled_from(TEXT_FRAMES + BIN_BY_LEN[32] + [XF, b"\r\n"]), min_size=1, max_size=12),
    st.lists(st.integers(min_value=0, max_value=10_000), max_size=12),
)
def test_any_split_gives_same_messages_text_and_32(frames_in: list[bytes], cuts: list[int]) -> None:
    _split_property(frames_in, cuts, DeviceSettings())


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.sampled_from(TEXT_FRAMES + BIN_BY_LEN[45] + [b"\r\n"]), min_size=1, max_size=10),
    st.lists(st.integers(min_value=0, max_value=10_000), max_size=12),
)
def test_any_split_gives_same_messages_45_with_setting(frames_in: list[bytes], cuts: list[int]) -> None:
    # With h02_binary_length set the framer never guesses; without it, a first 45-byte frame cut
    # exactly after byte 32 with nothing behind it is read as 32 bytes (see the sinogate.codecs.h02.framer docstring).
    _split_property(frames_in, cuts, DeviceSettings(h02_binary_length=45))


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.sampled_from(TEXT_FRAMES + BIN_BY_LEN[45]), min_size=1, max_size=8),
    st.lists(st.integers(min_value=0, max_value=10_000), max_size=8),
)
def test_split_45_default_when_frames_arrive_whole(frames_in: list[bytes], cuts: list[int]) -> None:
    # default settings, cuts only at frame boundaries (the common TCP case): 45 is recognised
    bounds = [0]
    for f in frames_in:
        bounds.append(bounds[-1] + len(f))
    _split_property(frames_in, [bounds[c % len(bounds)] for c in cuts], DeviceSettings())


def _never_raises(data: bytes, cuts: list[int]) -> None:
    for cfg in (DeviceSettings(), DeviceSettings(h02_ack=True, time_offset=3, h02_binary_length=46)):
        conn = Connection(settings=lambda _i, c=cfg: c)  # type: ignore[misc]
        frames = _feed_chunks(conn, data, [c % (len(data) + 1) for c in cuts])
        assert conn.buffered() < MAX_TEXT
        for f in frames:
            assert isinstance(f.raw, bytes)
        Connection(settings=lambda _i, c=cfg: c).datagram(data, NOW)  # type: ignore[misc]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600), st.lists(st.integers(min_value=0, max_value=600), max_size=6))
def test_random_bytes_never_raise(data: bytes, cuts: list[int]) -> None:
    _never_raises(data, cuts)


_ALL = [bytes.fromhex(v["hex"]) for v in VECTORS]


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(_ALL)))
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        op = draw(st.sampled_from(["set", "insert", "delete", "field"]))
        i = draw(st.integers(min_value=0, max_value=max(0, len(data) - 1)))
        if op == "set" and data:
            data[i] = draw(st.integers(min_value=0, max_value=255))
        elif op == "insert":
            data[i:i] = draw(st.sampled_from([b",", b"#", b"*", b"$", b"-", b".", b" ", b"", b"\x00", b"nan"]))
        elif op == "delete" and data:
            del data[i]
        elif op == "field":
            fields = bytes(data).split(b",")
            k = draw(st.integers(min_value=0, max_value=len(fields) - 1))
            fields[k] = draw(st.sampled_from([b"", b"-", b"1e999", b"nan", b"ZZZZZZZZ", b"99999999", b" ", b"-1-"]))
            data = bytearray(b",".join(fields))
    return bytes(data)


@settings(max_examples=200, deadline=None)
@given(_mutated(), st.lists(st.integers(min_value=0, max_value=200), max_size=4))
def test_mutated_vectors_never_raise(data: bytes, cuts: list[int]) -> None:
    _never_raises(data, cuts)
    for f in Connection().feed(data, NOW):
        for m in f.messages:
            assert isinstance(m["ident"], str) and isinstance(m["timestamp"], float)
            lat = m.get("position.latitude")
            if lat is not None:
                assert -90.0 <= lat <= 90.0 and -180.0 <= m["position.longitude"] <= 180.0


def test_binary_frame_followed_only_by_line_ends_is_not_held_back() -> None:
    # A device that ends a binary report with two CR/LF and then stays silent must get its
    # message (and its ack) now, not when its next report arrives.
    conn = Connection()
    frames = conn.feed(B32 + b"\r\n\r\n", NOW)
    assert [f.raw for f in frames] == [B32] and len(frames[0].messages) == 1
    assert conn.buffered() == 0
