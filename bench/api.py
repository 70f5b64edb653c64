"""API benchmark: one device-day of messages through ``/messages`` and a 100,000-point KML export.

Starts a real Gateway (SQLite file in a temp dir, HTTP on a free port), fills the store directly,
then times real HTTP requests. Goals: /messages for 8,640 messages <= 50 ms (median), KML export
of 100,000 points <= 2 s.

    .venv/bin/python bench/api.py [--runs 15] [--points 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import socket
import statistics
import tempfile
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import httpx

from sinogate.config import Config
from sinogate.runtime import Runtime
from sinogate.store.base import IngestBatch

TOKEN = "bench-token"
DAY = 8640  # one message every 10 s


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def message(device: dict[str, Any], ts: float, i: int) -> dict[str, Any]:
    """A realistic JT/T 808 location report after enrichment (~25 parameters)."""
    angle = i / 500
    return {
        "ident": device["ident"], "timestamp": ts, "server.timestamp": ts + 0.4, "peer": "10.0.0.7:40212",
        "channel.id": 2, "protocol.id": 2, "protocol.name": "jt808", "transport": "tcp",
        "device.id": device["id"], "device.name": device["name"], "device.type.id": 0,
        "position.latitude": round(22.5 + 0.05 * math.sin(angle), 6),
        "position.longitude": round(114.0 + 0.05 * math.cos(angle), 6),
        "position.altitude": 40 + i % 7, "position.speed": (i * 7) % 90, "position.direction": (i * 13) % 360,
        "position.valid": True, "position.satellites": 9 + i % 4,
        "engine.ignition.status": i % 300 < 250, "movement.status": True, "alarm.code": 0,
        "gsm.signal.level": 25, "gsm.mcc": "460", "gsm.mnc": "00", "vehicle.mileage": 12000 + i * 0.05,
        "external.powersource.voltage": 12.6, "battery.voltage": 4.1, "event.seqnum": i % 65536,
    }


class Runner:
    def __init__(self, data_dir: Path) -> None:
        self.config = Config(data_dir=data_dir, host="127.0.0.1", http_host="127.0.0.1", h02_port=free_port(),
                             jt808_port=free_port(), http_port=free_port(), token=TOKEN, log_level="WARNING")
        self.ready: Future[tuple[Runtime, asyncio.AbstractEventLoop]] = Future()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        gw = Runtime(self.config)
        await gw.start()
        self.stop = asyncio.Event()
        self.ready.set_result((gw, asyncio.get_running_loop()))
        await self.stop.wait()
        await gw.stop()

    def __enter__(self) -> Runner:
        self.thread.start()
        self.gateway, self.loop = self.ready.result(30)
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(60)

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(600)


async def fill(gw: Runtime, ident: str, n: int, start: float) -> dict[str, Any]:
    device = await gw.devices.create({"ident": ident, "protocol": "jt808", "name": f"bench-{ident}"})
    batch: list[dict[str, Any]] = []
    for i in range(n):
        batch.append(message(device, start + i * 10, i))
        if len(batch) == 5000:
            await gw.store.ingest(IngestBatch(messages=batch))
            batch = []
    if batch:
        await gw.store.ingest(IngestBatch(messages=batch))
    return device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--points", type=int, default=100_000)
    args = parser.parse_args()
    start = 1_700_000_000.0
    with tempfile.TemporaryDirectory() as tmp, Runner(Path(tmp)) as r:
        t = time.perf_counter()
        day = r.run(fill(r.gateway, "013800000001", DAY, start))
        big = r.run(fill(r.gateway, "013800000002", args.points, start))
        print(f"filled {DAY + args.points} messages in {time.perf_counter() - t:.1f} s")
        base = f"http://127.0.0.1:{r.gateway.ports['http']}"
        headers = {"Authorization": f"FlespiToken {TOKEN}"}
        with httpx.Client(base_url=base, headers=headers, timeout=60) as c:
            path = f"/gw/devices/{day['id']}/messages"
            params = {"data": f'{{"from": {start}, "to": {start + 86400}}}'}
            c.get(path, params=params)  # warm the page cache and the connection
            times, size = [], 0
            for _ in range(args.runs):
                t = time.perf_counter()
                resp = c.get(path, params=params)
                times.append(time.perf_counter() - t)
                size = len(resp.content)
            count = len(resp.json()["result"])
            med = statistics.median(times) * 1000
            print(f"/messages, one device-day: {count} messages, {size / 1e6:.1f} MB, median {med:.1f} ms "
                  f"(min {min(times) * 1000:.1f}, max {max(times) * 1000:.1f}; goal <= 50 ms) "
                  f"{'OK' if med <= 50 else 'OVER'}")
            filtered = {"data": '{"filter": "position.speed > 60 && engine.ignition.status == true"}'}
            t = time.perf_counter()
            n = len(c.get(path, params=filtered).json()["result"])
            print(f"/messages with a filter: {n} of {count} in {(time.perf_counter() - t) * 1000:.1f} ms")
            ktimes = []
            for _ in range(3):
                t = time.perf_counter()
                total = 0
                with c.stream("GET", f"/gw/devices/{big['id']}/track", params={"format": "kml"}) as resp:
                    for chunk in resp.iter_bytes():
                        total += len(chunk)
                ktimes.append(time.perf_counter() - t)
            kmed = statistics.median(ktimes)
            print(f"KML export, {args.points} points: {total / 1e6:.1f} MB, median {kmed:.2f} s "
                  f"(goal <= 2 s) {'OK' if kmed <= 2 else 'OVER'}")


if __name__ == "__main__":
    main()
