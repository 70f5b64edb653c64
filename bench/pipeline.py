"""Phase-1 pipeline cost per message, on one core, without sockets or a store; and the whole
ingest path's CPU cost per message without sockets.

    .venv/bin/python bench/pipeline.py [--messages 50000] [--ingest-devices 400] [--per-read 10] [--rounds 10]
                                   [--no-ingest]

Runs real decoded H02 V1 messages of one moving device through: the minimal chain (enrich, time
check, filters), the default chain (every handler), and the default chain plus 5 expression
plugins, and prints CPU µs per message (best of 3 runs) and messages/s for each.

Then the ingest path as a gateway runs it, minus the sockets: the runtime's services on a SQLite
file, half H02 and half JT/T 808 devices (``sinogate simulate``'s frames, JT808 registered and
authenticated first), each read carrying 10 positions, every device's read in turn
(``Session.process``: decode, ingest service, pipeline, group commit, phase 2). Prints CPU µs per
message of the event-loop thread and of the SQLite writer thread (``/proc`` per-thread times, the
measure least distorted by other processes on the machine), and the collector's share.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from sinogate.config import Config
from sinogate.pipeline.base import Context
from sinogate.runtime import build_pipeline
from sinogate.store.memory import MemoryStore

PLUGINS = [
    {"type": "expression", "name": "speed.mph", "expression": "round(position.speed * 0.621371, 1)"},
    {"type": "expression", "name": "battery.low", "expression": "$battery.level != null && battery.level < 20"},
    {"type": "expression", "name": "fast", "expression": "position.speed > 90"},
    {"type": "expression", "name": "heading.sector", "expression": "round(position.direction / 45)"},
    {"type": "expression", "name": "speed.delta", "expression": "position.speed - previous('position.speed')"},
]


REPEATS = 3


def messages(n: int, t0: float) -> list[dict[str, Any]]:
    from sinogate.codecs.h02 import Connection

    out = []
    for i in range(n):
        lat, lon = 22.5 + i * 0.0002, 114.0 + i * 0.0001
        t = time.gmtime(t0 + i * 10)
        frame = (f"*HQ,4210051415,V1,{t.tm_hour:02d}{t.tm_min:02d}{t.tm_sec:02d},A,"
                 f"{int(lat):02d}{(lat % 1) * 60:07.4f},N,{int(lon):03d}{(lon % 1) * 60:07.4f},E,"
                 f"{30 + i % 40:06.2f},{i % 360:03d},{t.tm_mday:02d}{t.tm_mon:02d}{t.tm_year % 100:02d},"
                 f"{'FFFFFBFF' if i % 50 else 'FFFDFBFF'}#").encode()
        conn = Connection()
        [frame_out] = conn.feed(frame, t0 + i * 10)
        out.extend(frame_out.messages)
    return out


def measure(name: str, config: Config, plugins: list[dict[str, Any]], sample: list[dict[str, Any]]) -> None:
    from sinogate.analytics.plugins import PluginRunner, PluginSet

    store = MemoryStore()
    asyncio.run(store.open())
    plugin_set = PluginSet(store)
    for p in plugins:
        asyncio.run(plugin_set.create(p))
    from sinogate.analytics.calcs import CalcRegistry
    from sinogate.analytics.geofences import GeofenceService

    calcs = CalcRegistry(store, config.handlers)
    asyncio.run(calcs.load())
    services = {"plugins": plugin_set, "plugin_runner": PluginRunner(None, None),
                "geofences": GeofenceService(store), "calcs": calcs}  # no fences: the common start
    device = {"id": 1, "name": "d", "ident": "4210051415", "protocol": "h02", "settings": {}}
    best = float("inf")
    for _ in range(REPEATS):  # CPU time, best of a few: what other processes do distorts it least
        pipeline = build_pipeline(config, services)
        states: dict[str, Any] = {}
        batch = [dict(m) for m in sample]
        start = time.process_time()
        for m in batch:
            ctx = Context("h02", "tcp", "127.0.0.1:1", m["timestamp"] + 1, device, 1, 1, states)
            pipeline.run([m], ctx)
        best = min(best, time.process_time() - start)
    print(f"{name:<38} {len(pipeline.handlers):>2} handlers  {best / len(batch) * 1e6:7.2f} µs/msg (CPU)"
          f"  {len(batch) / best:>10,.0f} msg/s")


def _thread_cpu() -> dict[str, float]:
    """CPU seconds of each thread of this process, by thread name (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for thread in threading.enumerate():
        try:
            with open(f"/proc/self/task/{thread.native_id}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[thread.name] = (int(fields[11]) + int(fields[12])) / tick
    return out


async def measure_ingest(devices: int, per_read: int, rounds: int) -> None:
    from sinogate.runtime import Runtime
    from sinogate.server.session import Session
    from sinogate.simulate import frames_jt808 as jt
    from sinogate.simulate.config import SimConfig
    from sinogate.simulate.device import SimDevice, Stats
    from sinogate.simulate.device_h02 import H02Device
    from sinogate.simulate.device_jt808 import Jt808Device

    class Quiet(Session):
        def send(self, data: bytes) -> None:
            pass

        def close(self, reason: str) -> None:
            self.closed = True

    with tempfile.TemporaryDirectory(prefix="sinogate-bench-") as tmp:
        rt = Runtime(Config(data_dir=Path(tmp)))
        await rt.store.open()
        for part in (rt.devices, rt.states, rt.geofences, rt.plugins, rt.calcs, rt.support):
            await part.load()
        channels = {c.protocol: c for c in rt.channels}
        sim, stats, wall = SimConfig(rate=25, duration=20), Stats(), int(time.time())
        pairs: list[tuple[SimDevice, Session]] = []
        for i in range(devices):
            if i % 2 == 0:
                pairs.append((H02Device(i, str(4100000000 + i), sim, stats, wall),
                              Quiet(rt.session_services, channels["h02"], f"127.0.0.1:{i}")))
                continue
            dev = Jt808Device(i, str(13800000000 + i), sim, stats, wall)
            session: Session = Quiet(rt.session_services, channels["jt808"], f"127.0.0.1:{i}")
            await session.process(dev.frame(0x0100, jt.register_body(dev.ident, dev.v2019))[1], time.time())
            await session.process(dev.frame(0x0102, jt.auth_body(dev.ident.encode(), dev.v2019, imei=dev.imei))[1],
                                  time.time())
            pairs.append((dev, session))

        def read(dev: SimDevice) -> bytes:
            return dev.encode_positions([dev.next_fix() for _ in range(per_read)], backlog=False)

        for device, conn in pairs:  # warm-up: every device known, states created
            await conn.process(read(device), time.time())
        reads = [[read(device) for device, _ in pairs] for _ in range(rounds)]
        gc.collect()  # as Runtime.serve_forever does
        gc.freeze()
        gc.set_threshold(100_000, 50, 100)
        collected = [0.0, 0.0]

        def timed(phase: str, info: dict[str, Any]) -> None:
            if phase == "start":
                collected[1] = time.thread_time()
            else:
                collected[0] += time.thread_time() - collected[1]

        gc.callbacks.append(timed)
        before, start = _thread_cpu(), time.perf_counter()
        for r in range(rounds):
            await asyncio.gather(*(session.process(reads[r][i], time.time()) for i, (_, session) in enumerate(pairs)))
        wall_s, after = time.perf_counter() - start, _thread_cpu()
        gc.callbacks.remove(timed)
        n = rounds * per_read * devices
        loop_us = 1e6 * (after["MainThread"] - before["MainThread"]) / n
        writer_us = 1e6 * (after.get("sqlite-writer", 0) - before.get("sqlite-writer", 0)) / n
        other_us = 1e6 * sum(v - before.get(k, 0) for k, v in after.items()
                             if k not in ("MainThread", "sqlite-writer")) / n
        print(f"ingest path ({devices} devices, {per_read} per read): event loop {loop_us:.1f} µs/msg (CPU, of which "
              f"collector {1e6 * collected[0] / n:.1f}), SQLite writer {writer_us:.1f}, other threads {other_us:.1f}; "
              f"{n:,} messages in {wall_s:.1f} s wall, {getattr(rt.store, 'commits', 0):,} commits")
        await rt.store.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--ingest-devices", type=int, default=400)
    parser.add_argument("--no-ingest", action="store_true", help="only the pipeline")
    parser.add_argument("--per-read", type=int, default=10, help="positions per read on the ingest path")
    parser.add_argument("--rounds", type=int, default=10, help="reads per device on the ingest path")
    args = parser.parse_args()
    import sinogate.pipeline.calcs
    from sinogate import _native

    print("pipeline:", "compiled (mypyc)" if _native.compiled(sinogate.pipeline.calcs) else "pure Python")
    sample = messages(args.messages, 1_760_000_000.0)
    optional = ["odometer", "edges", "presence", "geofencing", "overspeed", "calcs"]
    from sinogate.pipeline.chain import HANDLERS

    names = {h.name for h in HANDLERS}
    minimal = Config(handlers_disabled=[n for n in optional if n in names])
    measure("minimal (enrich, time, filters)", minimal, [], sample)
    measure("default chain", Config(), [], sample)
    measure("default chain + 5 expression plugins", Config(), PLUGINS, sample)
    if not args.no_ingest:
        asyncio.run(measure_ingest(args.ingest_devices, args.per_read, args.rounds))


if __name__ == "__main__":
    main()
