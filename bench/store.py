"""Store ingest rate: the store alone, without sockets, codecs or pipeline.

N devices each write their messages one ``ingest`` call after the other (as a session's turn
does: one H02-like message of ~25 fields plus its raw packet per call, the ingest service's
digest given), all devices concurrently on one event loop (uvloop when installed), so the store's
group commit sees what a busy gateway gives it. Every call returns only once committed.

    .venv/bin/python bench/store.py [--store sqlite|postgresql://postgres@127.0.0.1/test] \\
        [--devices 2000] [--messages 200000] [--per-call 1]

Prints messages/s, commits, ingest-call latency and CPU per message: this process's (the
gateway's event loop plus, for SQLite, its writer thread) and the PostgreSQL server's processes
(read from /proc; CPU time is what a loaded machine distorts least). A PostgreSQL run uses a
schema of its own, dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sinogate.jsonenc import device_digest  # noqa: E402
from sinogate.store.base import PACKET_RECEIVED, IngestBatch, PacketRecord, Store  # noqa: E402


def postgres_cpu() -> float:
    """CPU seconds used so far by every process named postgres (the server)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        name, rest = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()
        if name == "postgres":
            total += (int(rest[11]) + int(rest[12])) / tick
    return total


def message(ident: str, device_id: int, ts: float, i: int) -> tuple[dict[str, Any], int]:
    content: dict[str, Any] = {
        "ident": ident, "message.type": "V1", "timestamp": ts, "position.latitude": 22.58 + i * 1e-5,
        "position.longitude": 113.98 + i * 1e-5, "position.valid": True, "position.speed": float(i % 90),
        "position.direction": float(i % 360), "position.satellites": 9, "engine.ignition.status": True,
        "device.status.raw": "FFFFFBFF", "battery.low.status": False, "alarm.sos.status": False,
        "alarm.power.cut.status": False, "alarm.overspeed.status": False, "vehicle.door.status": False,
        "gsm.mcc": 460, "gsm.mnc": 0, "gsm.lac": 9520, "gsm.cellid": 3671 + i % 7,
    }
    digest = device_digest(content)
    return {**content, "server.timestamp": ts + 0.5, "peer": "127.0.0.1:40000", "channel.id": 1,
            "protocol.id": 1, "protocol.name": "h02", "transport": "tcp", "device.id": device_id,
            "device.name": ident, "device.type.id": 0}, digest


async def run(store: Store, devices: int, messages: int, per_call: int) -> dict[str, Any]:
    await store.open()
    try:
        ids = [int((await store.create_device({"ident": str(4_200_000_000 + n), "protocol": "h02"}))["id"])
               for n in range(devices)]
        calls = max(1, messages // (devices * per_call))
        t0 = time.time() - calls * per_call * 10 - 60
        latencies: list[float] = []

        async def device(n: int) -> None:
            ident, device_id = str(4_200_000_000 + n), ids[n]
            for c in range(calls):
                pairs = [message(ident, device_id, t0 + (c * per_call + k) * 10, c * per_call + k)
                         for k in range(per_call)]
                batch = IngestBatch(
                    messages=[m for m, _ in pairs], digests=[d for _, d in pairs],
                    packets=[PacketRecord(time.time(), PACKET_RECEIVED, n, "h02", "127.0.0.1:40000", ident,
                                          device_id, b"*HQ," + ident.encode() + b",V1,...#")],
                )
                start = time.perf_counter()
                await store.ingest(batch)
                latencies.append(time.perf_counter() - start)

        commits0 = getattr(store, "commits", 0)
        start, cpu0, pg0 = time.perf_counter(), time.process_time(), postgres_cpu()
        await asyncio.gather(*(device(n) for n in range(devices)))
        wall = time.perf_counter() - start
        cpu, pg = time.process_time() - cpu0, postgres_cpu() - pg0
        total = devices * calls * per_call
        latencies.sort()
        return {
            "messages": total, "seconds": wall, "per_s": total / wall,
            "commits": getattr(store, "commits", 0) - commits0,
            "p50_ms": 1000 * statistics.median(latencies), "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)],
            "cpu_us": 1e6 * cpu / total, "pg_us": 1e6 * pg / total,
        }
    finally:
        await store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", default="sqlite", help="sqlite (a temp file) or a postgresql:// URL")
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--per-call", type=int, default=1, help="messages per ingest call")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    with tempfile.TemporaryDirectory(prefix="sinogate-bench-store-") as tmp:
        schema = None
        if args.store == "sqlite":
            from sinogate.store.sqlite import SQLiteStore

            store: Store = SQLiteStore(Path(tmp) / "bench.sqlite")
            label = "SQLite (synchronous=NORMAL)"
        else:
            from sinogate.store.postgres import PostgresStore

            schema = f"bench_store_{uuid.uuid4().hex[:12]}"
            store = PostgresStore(f"{args.store}{'&' if '?' in args.store else '?'}schema={schema}")
            label = "PostgreSQL"
        try:
            out = asyncio.run(run(store, args.devices, args.messages, args.per_call))
        finally:
            if schema is not None:
                _drop(args.store, schema)
    print(f"{label}: {out['messages']:,} messages from {args.devices:,} devices ({args.per_call} per call) in "
          f"{out['seconds']:.1f} s = {out['per_s']:,.0f} msg/s; {out['commits']:,} commits; "
          f"ingest call p50 {out['p50_ms']:.1f} ms, p99 {out['p99_ms']:.1f} ms; CPU per message: this process "
          f"{out['cpu_us']:.0f} µs, PostgreSQL server {out['pg_us']:.0f} µs")
    return 0


def _drop(url: str, schema: str) -> None:
    import asyncpg

    from sinogate.store.postgres import split_url

    async def drop() -> None:
        conn = await asyncpg.connect(split_url(url)[0])
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()

    asyncio.run(drop())


if __name__ == "__main__":
    sys.exit(main())
