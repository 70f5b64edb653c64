"""JT/T 808 sub-package reassembly stays bounded per connection and in total (issue 11): bytes,
age, count, oldest evicted first, part bodies no longer than their 10-bit length field."""

from __future__ import annotations

import time

from sinogate.codecs.jt808 import Connection
from sinogate.codecs.jt808.frame import encode_frame, escape, unescape, xor_checksum
from sinogate.codecs.limits import CodecLimits, ReassemblyLimits, ReassemblyPool

NOW = 1_700_000_000.0
PHONES = [bytes.fromhex(f"0135112211{i:02d}") for i in range(100)]
PART = b"\x55" * 1000


def _part(phone: bytes, msg_id: int, index: int, total: int = 128, body: bytes = PART) -> bytes:
    return encode_frame(msg_id, phone, index, body, total=total, index=index)


def _with_length(frame: bytes, length: int, extra: bytes = b"") -> bytes:
    """``frame`` with ``extra`` appended to its body and its header's length field set to ``length``
    (checksum made right again)."""
    inner = bytearray(unescape(frame[1:-1])[0][:-1] + extra)
    props = int.from_bytes(inner[2:4], "big")
    inner[2:4] = ((props & ~0x03FF) | length).to_bytes(2, "big")
    return b"\x7e" + escape(bytes(inner) + bytes([xor_checksum(bytes(inner))])) + b"\x7e"


def test_per_connection_bytes_are_capped_oldest_first() -> None:
    pool = ReassemblyPool(ReassemblyLimits(per_connection=20_000, total=10**9))
    conn = Connection(limits=CodecLimits(pool))
    for msg_id in (0x0A01, 0x0A02):
        for index in range(1, 16):  # 15 KB each, never complete
            conn.feed(_part(PHONES[0], msg_id, index), NOW)
    assert conn._reassembly.bytes <= 20_000 and pool.bytes == conn._reassembly.bytes
    assert list(conn._reassembly.partials) == [0x0A02]  # the older message went first
    assert pool.evicted >= 1


def test_total_is_capped_across_connections_evicting_the_oldest() -> None:
    pool = ReassemblyPool(ReassemblyLimits(per_connection=10**9, total=100_000))
    conns = [Connection(limits=CodecLimits(pool)) for _ in range(10)]
    for i, conn in enumerate(conns):  # 10 connections × 30 KB
        for index in range(1, 31):
            errors = conn.feed(_part(PHONES[i], 0x0A00, index), NOW + i)[0].errors
            assert all("longer than" not in e for e in errors)
    assert pool.bytes <= 100_000
    held = [bool(c._reassembly.partials) for c in conns]
    assert held[-1] and not held[0]  # the first connections' messages were evicted, the last one kept
    assert pool.evicted >= 6
    for conn in conns:
        conn.close(NOW + 20)
    assert pool.bytes == 0 and len(pool) == 0


def test_old_incomplete_messages_expire() -> None:
    pool = ReassemblyPool(ReassemblyLimits(max_age=60.0))
    stale, fresh = Connection(limits=CodecLimits(pool)), Connection(limits=CodecLimits(pool))
    stale.feed(_part(PHONES[1], 0x0A00, 1), NOW)
    fresh.feed(_part(PHONES[2], 0x0A00, 1), NOW + 100)  # any later part expires what is older than 60 s
    assert not stale._reassembly.partials and fresh._reassembly.partials
    assert pool.expired == 1 and pool.bytes == len(PART)


def test_part_bodies_are_bounded_by_the_length_field() -> None:
    conn = Connection()
    frame = _with_length(_part(PHONES[3], 0x0A00, 1, body=b"\x01" * 1000), 100, b"\x02" * 2000)
    (out,) = conn.feed(frame, NOW)
    assert any("longer than its length field 100" in e for e in out.errors)
    assert conn._reassembly.bytes == 100


def test_complete_messages_still_reassemble_under_the_limits() -> None:
    pool = ReassemblyPool(ReassemblyLimits(per_connection=8192, total=16384))
    conn = Connection(limits=CodecLimits(pool))
    body = bytes.fromhex("00000001" "00000003" "015752a0" "06cb8080" "000a" "025d" "005a" "240102030405")
    conn.feed(encode_frame(0x0200, PHONES[4], 1, body[:10], total=2, index=1), NOW)
    (frame,) = conn.feed(encode_frame(0x0200, PHONES[4], 2, body[10:], total=2, index=2), NOW)
    assert len(frame.messages) == 1 and pool.bytes == 0


def test_a_flood_of_incomplete_messages_stays_within_the_total_quickly() -> None:
    """The abuse trial: 400 connections × 4 messages × 128 parts × ~1 KB each (was 1.5 MB pinned per
    connection); with the defaults every connection holds ≤ 256 KiB and all together ≤ 32 MiB."""
    pool = ReassemblyPool()
    started = time.monotonic()
    conns = [Connection(limits=CodecLimits(pool)) for _ in range(400)]
    frames = [_part(PHONES[0], 0x0A00 + m, index) for m in range(4) for index in range(1, 128)]
    for conn in conns:
        conn.feed(b"".join(frames), NOW)
        assert conn._reassembly.bytes <= 256 * 1024
    assert pool.bytes <= 32 * 1024 * 1024
    assert time.monotonic() - started < 60
