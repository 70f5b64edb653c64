"""The floor for bench/ingest.py: a bare asyncio reader that only counts frames.

It listens where the gateway would (H02 and JT/T 808 ports) and per read only counts frame
delimiters, in C: H02 text frames end with ``#``, JT/T 808 frames are enclosed in ``0x7e`` (which
never occurs inside one: it is escaped), so frames = ``#`` count, or ``0x7e`` count / 2. JT/T 808
terminals only report after register/auth, so for the first frames of a JT808 connection it
answers 0x0100 / 0x0102 with the real codec (a few frames per connection, then the codec is
dropped). Nothing is decoded, stored or acknowledged.

    python bench/_floor.py H02_PORT JT808_PORT STATS_JSON

Runs until SIGTERM/SIGINT, then writes {"frames", "bytes", "first", "last", "connections",
"cpu_s"} to STATS_JSON (``cpu_s``: the reader's CPU time, to tell whether the reader or the
load generator set the pace).
"""

from __future__ import annotations

import asyncio
import json
import resource
import signal
import sys
import time
from typing import Any

from sinogate.codecs import ProtocolConnection, connection_class

STATS: dict[str, Any] = {"frames": 0, "bytes": 0, "first": 0.0, "last": 0.0, "connections": 0, "cpu_s": 0.0}
DELIMITERS = {"h02": 0, "jt808": 0}


class Counter(asyncio.Protocol):
    """H02: one ``#`` ends each text frame."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        STATS["connections"] += 1

    def data_received(self, data: bytes) -> None:
        now = time.time()
        if not STATS["first"]:
            STATS["first"] = now
        STATS["last"] = now
        STATS["bytes"] += len(data)
        DELIMITERS["h02"] += data.count(b"#")


class Jt808Counter(Counter):
    """Counts bytes; answers the handshake so the terminal starts reporting."""

    def __init__(self) -> None:
        self.codec: ProtocolConnection | None = connection_class("jt808")(transport="tcp")
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        now = time.time()
        if not STATS["first"]:
            STATS["first"] = now
        STATS["last"] = now
        STATS["bytes"] += len(data)
        DELIMITERS["jt808"] += data.count(b"\x7e")  # two per frame
        codec = self.codec
        if codec is None or self.transport is None:
            return
        for frame in codec.feed(data, time.time()):
            types = {str(m.get("message.type", "")) for m in frame.messages}
            if types & {"0x0100", "0x0102"}:
                for reply in frame.replies:
                    self.transport.write(reply)
            if "0x0102" in types or any(t in types for t in ("0x0200", "0x0704")):
                self.codec = None  # handshake over: from here on, bytes are only counted
                break


async def main(h02_port: int, jt808_port: int, out: str) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    servers = [
        await loop.create_server(Counter, "127.0.0.1", h02_port, backlog=4096),
        await loop.create_server(Jt808Counter, "127.0.0.1", jt808_port, backlog=4096),
    ]
    print("ready", flush=True)
    await stop.wait()
    for s in servers:
        s.close()
    STATS["frames"] = DELIMITERS["h02"] + DELIMITERS["jt808"] // 2
    usage = resource.getrusage(resource.RUSAGE_SELF)
    STATS["cpu_s"] = usage.ru_utime + usage.ru_stime
    with open(out, "w") as fh:
        json.dump(STATS, fh)


if __name__ == "__main__":
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    args = (int(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
    try:
        import uvloop

        uvloop.run(main(*args))
    except ImportError:
        asyncio.run(main(*args))
