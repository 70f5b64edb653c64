"""Command round trip: API call → device → reply → result, over loopback.

A Gateway (temp data dir, HTTP API on) runs in a thread on its own event loop (uvloop when
installed, as ``sinogate serve`` does); a simulated H02 device in another thread answers every
command with a short V4 ack; the main thread sends real-time commands one after another through
``POST /gw/devices/{id}/commands`` (keep-alive HTTP) and times each call until its result.

    .venv/bin/python bench/commands.py [--count 1000] [--protocol h02]

Goal: p50 ≤ 10 ms, p99 ≤ 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

IDENT = "4210051415"
TOKEN = "bench-token-0123456789abcdef0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_gateway(data_dir: Path) -> tuple[Any, asyncio.AbstractEventLoop, threading.Event]:
    from sinogate.config import Config
    from sinogate.runtime import Runtime

    config = Config(data_dir=data_dir, host="127.0.0.1", http_host="127.0.0.1", h02_port=free_port(),
                    jt808_port=0, http_port=free_port(), udp=False, token=TOKEN, log_level="WARNING")
    ready: Future[tuple[Any, asyncio.AbstractEventLoop]] = Future()
    stop = threading.Event()

    async def main() -> None:
        gateway = Runtime(config)
        await gateway.start()
        ready.set_result((gateway, asyncio.get_running_loop()))
        while not stop.is_set():
            await asyncio.sleep(0.05)
        await gateway.stop()

    def run() -> None:
        try:
            import uvloop

            uvloop.run(main())
        except ImportError:
            asyncio.run(main())

    threading.Thread(target=run, daemon=True).start()
    gateway, loop = ready.result(30)
    return gateway, loop, stop


def device(port: int, stop: threading.Event) -> None:
    """An H02 device: one position to attach, then a short V4 ack for every wrapped command."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    t = time.strftime("%H%M%S", time.gmtime())
    d = time.strftime("%d%m%y", time.gmtime())
    sock.sendall(f"*HQ,{IDENT},V1,{t},A,2235.1777,N,11357.8913,E,0.00,0,{d},FFFFFBFF#".encode())
    buf = b""
    sock.settimeout(0.5)
    while not stop.is_set():
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        if not chunk:
            return
        buf += chunk
        while b"#" in buf:
            frame, _, buf = buf.partition(b"#")
            fields = frame.decode().lstrip("*").split(",")
            if len(fields) < 4 or fields[2] in ("V4", "HTBT", "R12"):
                continue  # the server's own replies (V4,V1 ...)
            code, when, args = fields[2], fields[3], fields[4:]
            sock.sendall(f"*HQ,{IDENT},V4,{code},{when},{','.join(args)}#".encode())
    sock.close()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=50)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        gateway, _loop, stop = start_gateway(Path(tmp) / "data")
        stop_device = threading.Event()
        threading.Thread(target=device, args=(gateway.ports["h02"], stop_device), daemon=True).start()
        base = f"http://127.0.0.1:{gateway.ports['http']}"
        headers = {"Authorization": f"FlespiToken {TOKEN}"}
        deadline = time.time() + 10
        while not gateway.sessions and time.time() < deadline:
            time.sleep(0.01)
        device_id = next(iter(gateway.sessions))
        body = [{"name": "engine.stop", "properties": {}, "timeout": 10, "confirm": True}]
        times: list[float] = []
        failures = 0
        with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
            for i in range(args.warmup + args.count):
                t0 = time.perf_counter()
                resp = client.post(f"/gw/devices/{device_id}/commands", json=body)
                dt = (time.perf_counter() - t0) * 1000
                ok = resp.status_code == 200 and resp.json()["result"][0]["status"] == "processed"
                if not ok:
                    failures += 1
                if i >= args.warmup:
                    times.append(dt)
        stop_device.set()
        stop.set()
        time.sleep(0.3)

    p50, p99 = percentile(times, 50), percentile(times, 99)
    print(f"command round trip (API → device → V4 reply → result), {len(times)} commands over loopback:")
    print(f"  p50 {p50:.2f} ms   p90 {percentile(times, 90):.2f} ms   p99 {p99:.2f} ms   "
          f"max {max(times):.2f} ms   mean {statistics.fmean(times):.2f} ms   failures {failures}")
    print(f"  goal p50 ≤ 10 ms: {'met' if p50 <= 10 else 'MISSED'}; "
          f"goal p99 ≤ 50 ms: {'met' if p99 <= 50 else 'MISSED'}")
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
