"""Recalculation benchmark: one device-month of messages rebuilt into intervals.

Starts a real Runtime (SQLite file in a temp dir, no listeners), with 10 circle geofences and a
user calc with counters, and ingests one device-month through the live pipeline in batches of
10 (a working day: 8 h of driving in 8 trips, one message every 10 s, parked between, one every
60 s; ~25 parameters per message, as a JT/T 808 report). Then it recalculates every calc of the
device over the whole month (``Recalculator.recalculate``: stored messages read back in chunks,
through filters, odometer, geofencing, overspeed and calcs, intervals replaced) and reports
messages per second, checking that the rebuilt intervals equal the live ones.

    .venv/bin/python bench/recalc.py [--days 30] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from sinogate.config import Config
from sinogate.ingest import Source
from sinogate.runtime import Runtime
from sinogate.store.base import TimeQuery

T0 = 1_748_736_000.0  # 2025-06-01 00:00 UTC
SOURCE = Source("jt808", "tcp", "10.0.0.7:40212", 2, 2)


class Van:
    """A delivery van around 22.5° N 114° E, one JT/T 808-like report at a time."""

    def __init__(self, ident: str) -> None:
        self.ident = ident
        self.t = T0
        self.lat, self.lon, self.heading = 22.5, 114.0, 0.0
        self.seq = 0
        self.out: list[dict[str, Any]] = []

    def report(self, speed: float, ignition: bool, every: float) -> None:
        self.seq += 1
        seq = self.seq
        self.out.append({
            "ident": self.ident, "timestamp": self.t, "position.latitude": round(self.lat, 6),
            "position.longitude": round(self.lon, 6), "position.altitude": 40 + seq % 7, "position.speed": speed,
            "position.direction": round(math.degrees(self.heading) % 360), "position.valid": True,
            "position.satellites": 9 + seq % 4, "engine.ignition.status": ignition, "movement.status": speed > 0,
            "alarm.code": 0, "gsm.signal.level": 25, "gsm.mcc": "460", "gsm.mnc": "00",
            "vehicle.mileage": 12000 + seq * 0.05, "external.powersource.voltage": 12.6, "battery.voltage": 4.1,
            "event.seqnum": seq % 65536, "engine.temperature": 70 + seq % 40, "fuel.level": 60 - (seq % 500) / 10,
        })
        self.t += every

    def drive(self, trip: int) -> None:
        for step in range(360):  # an hour of driving, speeds 20..110 km/h, one report every 10 s
            speed = 65 + 45 * math.sin(step / 23 + trip)
            self.heading += 0.01 * math.sin(step / 40)
            self.lat += speed * 10 / 3600 / 111.2 * math.cos(self.heading) * (1 if trip % 2 == 0 else -1)
            self.lon += speed * 10 / 3600 / 102.0 * math.sin(self.heading)
            self.report(round(speed, 1), True, 10)


def month(device: dict[str, Any], days: int) -> list[dict[str, Any]]:
    """Parked until 08:00, eight one-hour trips with 20 min stops, parked for the night."""
    van = Van(device["ident"])
    for day in range(days):
        van.t = T0 + day * 86400
        while van.t < T0 + day * 86400 + 8 * 3600:
            van.report(0.0, False, 60)
        for trip in range(8):
            van.drive(trip)
            for _ in range(20):
                van.report(0.0, trip % 3 == 0, 60)
        while van.t < T0 + (day + 1) * 86400:
            van.report(0.0, False, 60)
    return van.out


async def run(data_dir: Path, days: int) -> dict[str, Any]:
    config = Config(data_dir=data_dir, host="127.0.0.1", http_port=0, h02_port=0, jt808_port=0, token="bench",
                    log_level="WARNING")
    runtime = Runtime(config)
    await runtime.start()
    try:
        await runtime.geofences.create([
            {"name": f"site {i}", "geometry": {"type": "circle", "center": {"lat": 22.5 + i * 0.01, "lon": 114.0},
                                               "radius": 0.5}} for i in range(10)])
        await runtime.calcs.create({"name": "hot", "selector": "engine.temperature > 100", "min_duration": 60,
                                    "counters": [{"name": "t.max", "type": "max", "parameter": "engine.temperature"},
                                                 {"name": "fuel", "type": "last", "parameter": "fuel.level"}]})
        device = await runtime.devices.create({"ident": "013800000001", "protocol": "jt808", "name": "van",
                                               "settings": {"speed_limit": 100}})
        messages = month(device, days)
        started = time.perf_counter()
        for i in range(0, len(messages), 10):
            batch = messages[i:i + 10]
            await runtime.ingest.ingest(SOURCE, device, device["ident"], batch, batch[-1]["timestamp"])
        live_seconds = time.perf_counter() - started
        assert runtime.recalc is not None
        before = await runtime.store.intervals(None, [device["id"]], TimeQuery())
        started, cpu = time.perf_counter(), time.process_time()
        summary = await runtime.recalc.recalculate(device, None, T0)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        after = await runtime.store.intervals(None, [device["id"]], TimeQuery())

        def key(items: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
            return sorted((i["calc.id"], i["begin"], i["end"], i["distance"], str(i.get("geofence.id")))
                          for i in items)

        return {"messages": len(messages), "replayed": summary["messages"], "seconds": seconds, "cpu": cpu,
                "live_seconds": live_seconds, "intervals": len(after), "same": key(before) == key(after),
                "by_calc": {c: sum(1 for i in after if i["calc.id"] == c)
                            for c in sorted({i["calc.id"] for i in after})}}
    finally:
        await runtime.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    rates, cpu_rates, live = [], [], []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            out = asyncio.run(run(Path(tmp), args.days))
        if not out["same"]:
            raise SystemExit("recalculation gave other intervals than live processing")
        rates.append(out["replayed"] / out["seconds"])
        cpu_rates.append(out["replayed"] / out["cpu"])
        live.append(out["messages"] / out["live_seconds"])
        print(f"{out['messages']:,} messages ({args.days} days), {out['intervals']:,} intervals {out['by_calc']}: "
              f"recalculated in {out['seconds']:.2f} s = {rates[-1]:,.0f} msg/s "
              f"(CPU {out['cpu']:.2f} s = {cpu_rates[-1]:,.0f} msg/s per CPU second) "
              f"(live ingest with every handler: {live[-1]:,.0f} msg/s); same intervals as live")
    print(f"recalculation: median {statistics.median(rates):,.0f} messages/s over one device-month "
          f"({statistics.median(cpu_rates):,.0f} per CPU second; {args.runs} runs); "
          f"live ingest median {statistics.median(live):,.0f} msg/s")


if __name__ == "__main__":
    main()
