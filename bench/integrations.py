"""Ingest with dead integrations vs none: does a broker that is down and a webhook that refuses
every connection cost ingest throughput?

    .venv/bin/python bench/integrations.py [--quick] [--rounds N] [--alarm-rate P] [--json OUT]

Runs ``bench/ingest.py``'s saturation scenario (``sinogate serve`` in a subprocess, ``sinogate
simulate`` in another, everything counted back through the HTTP API) alternately with

* **none**: no MQTT, no notification rule;
* **dead**: ``mqtt_url`` pointing at a port nothing listens on (the bridge keeps reconnecting with
  backoff, its queue fills to ``mqtt_queue`` and then drops) and a notification rule for every
  event type (``*``) whose webhook is a closed port (every delivery is refused, retried with
  backoff, dead-lettered; at most ``notify_queue`` pending, the rest dropped). The simulator's
  SOS and power-cut alarms (``--alarm-rate``) are the events.

Each configuration runs ``--rounds`` times, interleaved (none, dead, none, dead ...), so drift of
the machine hits both alike. Printed: stored messages/s of every run, the means and their ratio,
and what the dead targets saw (from ``/metrics`` just before each server stopped).

``--inprocess`` measures the same question without sockets, in this process: a ``Runtime`` on the
memory store, ``IngestService.ingest`` called for decoded H02 positions of 200 devices (SOS at
``--alarm-rate``; each device's first position also starts a trip), yielding to the event loop
after each message as a server does, and the **CPU time per message** of the whole process:
ingest, pipeline, phase 2, the bridge's reconnect attempts, and every refused webhook attempt —
the retry backoff is shortened to 0.05 s and the clock runs until the last delivery is
dead-lettered, so all of the dead webhook's work is inside the measure. CPU time is what dead
integrations could take from ingest.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("bench_ingest", HERE / "ingest.py")
assert _spec is not None and _spec.loader is not None
ingest: Any = importlib.util.module_from_spec(_spec)
sys.modules["bench_ingest"] = ingest
_spec.loader.exec_module(ingest)

RULE: dict[str, Any] | None = None
SCRAPES: list[dict[str, float]] = []
WATCH = ("sinogate_mqtt_dropped_total", "sinogate_mqtt_connected", "sinogate_queue_depth",
         "sinogate_notifications_total", "sinogate_events_total")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the with ends: connections are refused


class StoredWithRule(ingest.Stored):  # type: ignore[misc,name-defined]
    """bench/ingest.py's ``Stored``, which first adds the notification rule (when there is one)
    and scrapes ``/metrics`` when the run ends."""

    def __init__(self, server: Any) -> None:
        self._metrics_url = f"http://127.0.0.1:{server.http_port}/metrics"
        if RULE is not None:
            httpx.post(f"http://127.0.0.1:{server.http_port}/gw/notifications", json=RULE, timeout=30,
                       headers={"Authorization": f"FlespiToken {ingest.TOKEN}"}).raise_for_status()
        super().__init__(server)

    def close(self) -> None:
        try:
            text = httpx.get(self._metrics_url, headers={"Authorization": f"Bearer {ingest.TOKEN}"}, timeout=30).text
            SCRAPES.append(_pick(text))
        except httpx.HTTPError:
            SCRAPES.append({})
        super().close()


def _pick(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(WATCH):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def run(kind: str, tmp: Path, quick: bool, index: int, alarm_rate: float) -> tuple[float, dict[str, float]]:
    global RULE
    for key in ("SINOGATE_MQTT_URL", "SINOGATE_MQTT_PREFIX"):
        os.environ.pop(key, None)
    RULE = None
    if kind == "dead":
        os.environ["SINOGATE_MQTT_URL"] = f"mqtt://127.0.0.1:{closed_port()}"
        RULE = {"name": "dead webhook", "events": ["*"],
                "targets": [{"type": "webhook", "url": f"http://127.0.0.1:{closed_port()}/hook", "secret": "x"}]}
    devices, rate, duration = (200, 50, 5) if quick else (2000, 25, 20)
    args = ingest.sim_args(devices, rate, duration, drain_timeout=10, alarm_rate=alarm_rate)
    result = ingest.traffic_scenario(f"{kind}-{index}", f"{devices} × {rate}/s", args, devices, tmp,
                                     duration + 90, floor=False)
    scrape = SCRAPES[-1] if SCRAPES else {}
    lost = f", lost {result.lost}" if result.lost else ""
    print(f"   {kind:<5} run {index}: {result.stored_per_s:,.0f} stored msg/s, "
          f"server CPU {result.server_cpu_pct:.0f} %, p50 {result.p50_ms or 0:.0f} ms{lost}", flush=True)
    return result.stored_per_s, scrape


async def inprocess_run(kind: str, tmp: Path, messages: int, alarm_rate: float) -> float:
    """CPU µs per message ingested in this process (see the module docstring)."""
    import asyncio
    import random

    from sinogate.codecs import connection_class, spec
    from sinogate.config import Config
    from sinogate.ingest import Source
    from sinogate.runtime import Runtime

    extra: dict[str, Any] = {}
    if kind == "dead":
        extra["mqtt_url"] = f"mqtt://127.0.0.1:{closed_port()}"
        extra["notify_backoff"] = 0.05
    config = Config(data_dir=tmp, store_url="memory://", h02_port=0, jt808_port=0, http_port=0, token="x" * 32,
                    log_level="ERROR", **extra)
    runtime = Runtime(config)
    await runtime.start()
    try:
        if kind == "dead":
            await runtime.notifications.create([{"name": "dead webhook", "events": ["*"], "targets": [
                {"type": "webhook", "url": f"http://127.0.0.1:{closed_port()}/hook", "secret": "x"}]}])
        rng = random.Random(7)
        devices = [await runtime.devices.create({"ident": f"73{n:08d}", "protocol": "h02", "name": f"d{n}"})
                   for n in range(200)]
        codec = connection_class("h02")()
        source = Source("h02", "tcp", "127.0.0.1:1", 1, spec("h02").id, 1)
        start = int(time.time()) - messages // len(devices) - 10
        batches = []
        for i in range(messages):
            device = devices[i % len(devices)]
            ts = start + i // len(devices)
            frame = ingest.h02_v1(device["ident"], ts, 22.5 + rng.random() / 100, 114.0 + rng.random() / 100)
            if rng.random() < alarm_rate:
                frame = frame.replace(b"FFFFFBFF#", b"FFFBFBFF#")
            decoded = [m for f in codec.feed(frame, ts) for m in f.messages]
            batches.append((device, decoded, ts))
        await asyncio.sleep(0.2)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for device, decoded, ts in batches:
            await runtime.ingest.ingest(source, device, device["ident"], [dict(m) for m in decoded], float(ts))
            await asyncio.sleep(0)  # a server's sessions yield between reads: background tasks run meanwhile
        wall = time.perf_counter() - wall0
        while runtime.notifications.depth:  # the dead webhook's retries, to the last dead letter
            await asyncio.sleep(0.01)
        cpu = time.process_time() - cpu0
        print(f"   {kind:<5}: {1e6 * cpu / messages:6.1f} µs CPU/message ({messages / wall:,.0f} msg/s wall)"
              + (f"; bridge queue {runtime.mqtt.depth}, dropped {runtime.mqtt.dropped}; webhook attempts "
                 f"{sum(runtime.notifications.failed.values())}, dead-lettered "
                 f"{sum(runtime.notifications.dead.values())}" if runtime.mqtt is not None else ""), flush=True)
        return 1e6 * cpu / messages
    finally:
        await runtime.stop()


def inprocess(rounds: int, messages: int, alarm_rate: float) -> int:
    import asyncio

    costs: dict[str, list[float]] = {"none": [], "dead": []}
    for _ in range(rounds):
        for kind in ("none", "dead"):
            with tempfile.TemporaryDirectory(prefix="sinogate-bench-inprocess-") as d:
                costs[kind].append(asyncio.run(inprocess_run(kind, Path(d), messages, alarm_rate)))
    none, dead = statistics.median(costs["none"]), statistics.median(costs["dead"])
    print(f"\nin-process ingest, {messages:,} H02 positions per run, median of {rounds} runs each:")
    print(f"none {none:.1f} µs CPU/message, dead broker + dead webhook {dead:.1f} µs CPU/message: "
          f"{100 * (dead / none - 1):+.1f} %")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small, short runs (smoke test)")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each configuration (interleaved)")
    parser.add_argument("--alarm-rate", type=float, default=0.002, help="simulator SOS/power-cut chance per position")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    parser.add_argument("--inprocess", type=int, metavar="N", help="measure CPU per message in-process, N messages")
    args = parser.parse_args(argv)
    if args.inprocess:
        return inprocess(args.rounds, args.inprocess, args.alarm_rate)
    ingest.Stored = StoredWithRule
    ingest.raise_nofile()
    rates: dict[str, list[float]] = {"none": [], "dead": []}
    scrapes: dict[str, list[dict[str, float]]] = {"none": [], "dead": []}
    with tempfile.TemporaryDirectory(prefix="sinogate-bench-integrations-") as d:
        tmp = Path(d)
        for index in range(1, args.rounds + 1):
            for kind in ("none", "dead"):
                started = time.time()
                rate, scrape = run(kind, tmp, args.quick, index, args.alarm_rate)
                rates[kind].append(rate)
                scrapes[kind].append(scrape)
                print(f"      ({time.time() - started:.0f} s)", flush=True)
    none, dead = statistics.mean(rates["none"]), statistics.mean(rates["dead"])
    print()
    print(f"sinogate ingest with dead integrations · {os.cpu_count()} CPUs · Python {sys.version.split()[0]}"
          f"{' · quick' if args.quick else ''}")
    print("| configuration | stored msg/s (runs) | mean |")
    print("|---|---|---|")
    for kind, mean in (("none", none), ("dead broker + dead webhook", dead)):
        runs = ", ".join(f"{r:,.0f}" for r in rates["none" if kind == "none" else "dead"])
        print(f"| {kind} | {runs} | {mean:,.0f} |")
    print(f"\ndead / none = {dead / none:.3f} ({100 * (dead / none - 1):+.1f} %)")
    for scrape in scrapes["dead"]:
        print("dead run saw: " + ", ".join(f"{k} {v:,.0f}" for k, v in sorted(scrape.items())))
    if args.json:
        args.json.write_text(json.dumps({"rates": rates, "scrapes": scrapes}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
