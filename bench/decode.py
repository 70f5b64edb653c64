"""Codec throughput: messages per second through framer + decoder on one core.

For each frame kind the same bytes are also run through framing only (the floor: what it costs
just to find frame boundaries in a Python loop), so the decoder's own cost is visible.

    python bench/decode.py [--seconds 2]

The codecs' decoding modules run compiled when ``make install`` could build them with mypyc
(``setup.py``); ``SINOGATE_PURE_PYTHON=1`` measures the pure-Python modules. The first line says
which ran.
"""

from __future__ import annotations

import argparse
import struct
import time
from collections.abc import Callable

from sinogate.codecs import compiled, connection_class
from sinogate.codecs.h02.framer import Framer
from sinogate.codecs.jt808.frame import encode_frame, unescape, xor_checksum

H02_V1 = b"*HQ,4210051415,V1,164549,A,2235.1777,N,11357.8913,E,012.50,097,221225,FFFFFBFF,460,00,9520,3671#"
H02_BINARY = bytes.fromhex(
    "2441090013450831250401145047888000008554650e000000fffff9ffff001006000000000106020299109c01"
)


def jt808_location() -> bytes:
    body = struct.pack(">IIIIHHH", 0, 0x000C0003, 22586295, 113964855, 35, 405, 97)
    body += bytes.fromhex("251221164549")
    body += b"\x01\x04" + struct.pack(">I", 123456) + b"\x30\x01\x17\x31\x01\x0a" + b"\x2a\x02\x00\x00"
    return encode_frame(0x0200, bytes.fromhex("013912345678"), 1, body)


def measure(name: str, frame: bytes, protocol: str, seconds: float) -> tuple[float, float]:
    copies = max(1, 65536 // len(frame))
    chunk = frame * copies
    now = time.time()

    def decode_run() -> int:
        conn = connection_class(protocol)()
        count = 0
        for frame_obj in conn.feed(chunk, now):
            count += len(frame_obj.messages)
        return count

    def framing_run() -> int:
        # The floor: the same bytes cut into frames (and, for JT/T 808, un-escaped and
        # checksummed) by the codec's own framing code, with no decoding at all.
        if protocol == "h02":
            return len(Framer().push(chunk))
        count = 0
        for part in chunk.split(b"\x7e"):
            if part:
                body, _ = unescape(part)
                xor_checksum(body[:-1])
                count += 1
        return count

    decode_rate = _rate(decode_run, seconds)
    floor_rate = _rate(framing_run, seconds)
    print(f"{name:<22} {decode_rate:>10,.0f} msg/s   framing only {floor_rate:>10,.0f} frames/s"
          f"   decode/floor {decode_rate / floor_rate:.2f}")
    return decode_rate, floor_rate


def _rate(fn: Callable[[], int], seconds: float) -> float:
    fn()  # warm up
    # CPU time of this process: what one core does, even when other work shares the machine.
    total = 0
    start = time.process_time()
    while time.process_time() - start < seconds:
        total += fn()
    return total / (time.process_time() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    mode = "compiled (mypyc)" if compiled() else "pure Python"
    print(f"decode benchmark, one core (CPU time), {args.seconds:g} s per case; codecs: {mode}")
    v1, _ = measure("H02 V1 text", H02_V1, "h02", args.seconds)
    binary, _ = measure("H02 binary (45 bytes)", H02_BINARY, "h02", args.seconds)
    jt, _ = measure("JT808 0x0200 + items", jt808_location(), "jt808", args.seconds)
    goal = 250_000
    for label, rate in (("H02 V1", v1), ("JT808 0x0200", jt), ("H02 binary", binary)):
        print(f"goal {goal:,} msg/s for {label}: {'met' if rate >= goal else 'NOT met'} ({rate:,.0f})")


if __name__ == "__main__":
    main()
