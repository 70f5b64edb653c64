"""How many messages/s can one simulator process emit? Measured against a bare asyncio sink.

The sink runs in a separate process (as the real server would) and only counts bytes; it never
answers, so JT808 devices run with ``handshake=False``. For each scenario the simulator is asked
for far more than it can produce (devices × rate), so the achieved rate is the generator's ceiling.
Also prints the pure frame-building cost per message (no sockets).

    .venv/bin/python bench/simulator_floor.py [--duration 5] [--devices 500] [--rate 200]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import socket
import subprocess
import sys
import time

from sinogate.simulate import SimConfig, run
from sinogate.simulate import frames_h02 as h02
from sinogate.simulate import frames_jt808 as jt
from sinogate.simulate.route import Route


def serve(port: int) -> None:
    """Sink: count bytes on two ports; print the total on stdin EOF."""
    total = [0]

    class Sink(asyncio.Protocol):
        def data_received(self, data: bytes) -> None:
            total[0] += len(data)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        await loop.create_server(Sink, "127.0.0.1", port, backlog=4096)
        await loop.create_server(Sink, "127.0.0.1", port + 1, backlog=4096)
        print("ready", flush=True)
        await loop.run_in_executor(None, sys.stdin.readline)
        print(total[0], flush=True)

    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())


def free_port_pair() -> int:
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        with socket.socket() as s2:
            try:
                s2.bind(("127.0.0.1", port + 1))
                return port
            except OSError:
                continue


def build_cost(n: int = 20_000) -> dict[str, float]:
    """Microseconds per frame to build (route step included), no I/O."""
    route = Route(random.Random(1))
    header = jt.Header("138010000001")
    out: dict[str, float] = {}
    for name, fn in (
        ("route step", lambda fix: b""),
        ("h02 V1 text", lambda fix: h02.v1("7340100001", fix)),
        ("h02 $ 32", lambda fix: h02.binary("7340100001", fix)),
        ("h02 $ 45", lambda fix: h02.binary("7340100001", fix, long=True)),
        ("jt808 0x0200", lambda fix: header.frame(0x0200, 1, jt.location_body(fix))),
    ):
        t = time.perf_counter()
        for i in range(n):
            fn(route.advance(1_760_000_000 + i, 1.0))
        out[name] = (time.perf_counter() - t) / n * 1e6
    return out


async def scenario(port: int, protocol: str, devices: int, rate: float, duration: float, **kw: object) -> dict:
    cfg = SimConfig(
        h02_port=port, jt808_port=port + 1, protocol=protocol, devices=devices, rate=rate,  # type: ignore[arg-type]
        duration=duration, handshake=False, drain_timeout=0, heartbeat=0, connect_concurrency=500, **kw,  # type: ignore[arg-type]
    )
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    s = await run(cfg)
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    return {
        "sent": s.sent,
        "secs": s.sending_seconds,
        "msgs_s": s.msgs_per_s,
        "bytes": s.bytes_sent,
        "cpu_s": cpu,
        "errors": s.errors,
        "connected": s.connected,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--devices", type=int, default=500)
    ap.add_argument("--rate", type=float, default=200.0, help="asked per device; set it beyond reach")
    ap.add_argument("--no-uvloop", action="store_true")
    args = ap.parse_args()
    if args.serve:
        serve(args.serve)
        return

    print(f"cpus: {os.cpu_count()}  python {sys.version.split()[0]}")
    print("frame build cost (µs/msg, incl. route step):")
    for name, us in build_cost().items():
        print(f"  {name:14s} {us:6.2f}")

    port = free_port_pair()
    sink = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert sink.stdout is not None and sink.stdin is not None
    assert sink.stdout.readline().strip() == "ready"
    scenarios = [
        ("h02 text V1", "h02", {}),
        ("h02 50% binary", "h02", {"binary_share": 0.5}),
        ("jt808 0x0200", "jt808", {}),
        ("jt808 2019", "jt808", {"jt808_2019_share": 1.0}),
        ("mixed", "mixed", {"binary_share": 0.2}),
    ]
    print(
        f"\nsimulator → bare asyncio sink on loopback, {args.devices} devices × {args.rate:g}/s asked, "
        f"{args.duration:g}s each"
    )
    print(f"  {'scenario':16s} {'msgs/s':>9s} {'MB/s':>7s} {'cpu %':>6s} {'µs cpu/msg':>10s}  errors")
    total_bytes = 0
    runner = asyncio.run
    if not args.no_uvloop:
        try:
            import uvloop

            runner = uvloop.run
        except ImportError:
            pass
    for label, proto, kw in scenarios:
        r = runner(scenario(port, proto, args.devices, args.rate, args.duration, **kw))
        total_bytes += r["bytes"]
        print(
            f"  {label:16s} {r['msgs_s']:9,.0f} {r['bytes'] / r['secs'] / 1e6:7.2f} "
            f"{100 * r['cpu_s'] / r['secs']:6.0f} {r['cpu_s'] / max(1, r['sent']) * 1e6:10.1f}  {r['errors']}"
        )
    sink.stdin.write("\n")
    sink.stdin.flush()
    got = int(sink.stdout.readline())
    sink.wait(timeout=10)
    print(f"\nsink counted {got:,} bytes, simulator wrote {total_bytes:,}")


if __name__ == "__main__":
    main()
