"""The abuse trial of issue 11, bounded: ``sinogate serve`` (default limits, log level INFO, SQLite,
UDP on) on 127.0.0.1 while 50 good trackers report every second, hit by one phase after another:

    .venv/bin/python bench/abuse.py [--quick] [--json OUT] [--keep]

* ``reassembly``  400 JT/T 808 connections, each 4 split messages × 127 of 128 parts × 1000 bytes
                  (never complete), held 10 s — was 503 → 1,180 MB RSS;
* ``junk_tcp``    200 connections sending random bytes (no frame) for 30 s, reconnecting when
                  closed — was 391 MB of packets + 197 MB of log in 60 s;
* ``junk_udp``    200,000 junk datagrams of 1 KB — was a 3.28 GB WAL (500,000 datagrams);
* ``register``    2,000 connections with a new ident each, within seconds; then ``GET
                  /gw/devices/all`` — was 120,189 devices in 30 s and a 669 MB list in 10.9 s;
* ``connections`` 12,000 idle sockets from 150 addresses, held 20 s — was fds exhausted at 20,000;
* ``idents``      H02 idents with a space, ``/``, ``+``, CR/LF and 256 characters — was a traceback per frame;
* ``filter``      a 3.6 KB, 240-term filter on ``/gw/devices/all/messages`` over 200,000 messages —
                  was 70 s with ``/health`` blocked 69 s.

Measured throughout: ``/health`` latency (sampled every 100 ms), the server's RSS, the data
directory's size (database, WAL), the log's size and tracebacks in it, and the good trackers' reports
sent vs acknowledged (and the slowest acknowledgement), per phase. Every phase is bounded in count
and time; everything stays on 127.0.0.0/8. ``--quick`` divides the counts by ten.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import free_port, percentile, proc_rss_kb, raise_nofile, wait_port

from sinogate.codecs.jt808.frame import encode_frame

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-master-token-0123456789abcdef"
GOOD_TRACKERS = 50
HEADERS = {"Authorization": f"FlespiToken {TOKEN}"}


def h02(ident: str, lat: float = 22.5) -> bytes:
    t = time.gmtime()
    return (f"*HQ,{ident},V1,{t.tm_hour:02d}{t.tm_min:02d}{t.tm_sec:02d},A,{2230 + lat:.4f},N,11400.0000,E,"
            f"010.00,000,{t.tm_mday:02d}{t.tm_mon:02d}{t.tm_year % 100:02d},FFFFFBFF#").encode()


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


class Server:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        self.h02_port, self.jt808_port, self.http_port = free_port(), free_port(), free_port()
        self.log_path = data_dir.parent / "server.log"
        self.log = open(self.log_path, "wb")  # noqa: SIM115
        cmd = [sys.executable, "-m", "sinogate", "serve", "--data-dir", str(data_dir), "--host", "127.0.0.1",
               "--http-host", "127.0.0.1", "--h02-port", str(self.h02_port), "--jt808-port", str(self.jt808_port),
               "--http-port", str(self.http_port), "--token", TOKEN, "--log-level", "INFO"]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
                                     preexec_fn=raise_nofile)
        for port in (self.h02_port, self.jt808_port, self.http_port):
            wait_port(port)
        self.url = f"http://127.0.0.1:{self.http_port}"

    def rss_mb(self) -> float:
        try:
            return proc_rss_kb(self.proc.pid) / 1024
        except OSError:
            return 0.0

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()
        return self.proc.returncode


class Watch:
    """Samples /health latency, RSS and disk in a thread; keeps the figures per phase."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.phase = "start"
        self.health: dict[str, list[float]] = {}
        self.health_errors: dict[str, int] = {}
        self.rss: dict[str, float] = {}
        self.disk: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        client = httpx.Client(base_url=self.server.url, timeout=30)
        last_disk = 0.0
        while not self._stop.is_set():
            phase = self.phase
            t = time.monotonic()
            try:
                ok = client.get("/health").status_code == 200
            except httpx.HTTPError:
                ok = False
            self.health.setdefault(phase, []).append(time.monotonic() - t)
            if not ok:
                self.health_errors[phase] = self.health_errors.get(phase, 0) + 1
            self.rss[phase] = max(self.rss.get(phase, 0.0), self.server.rss_mb())
            if time.monotonic() - last_disk > 1.0:
                self.disk[phase] = max(self.disk.get(phase, 0), dir_bytes(self.server.data_dir))
                last_disk = time.monotonic()
            self._stop.wait(0.1)
        client.close()


class Trackers:
    """Good H02 trackers (each its own source address 127.0.2.x), one report a second each."""

    def __init__(self, port: int, n: int) -> None:
        self.port = port
        self.n = n
        self.phase = "start"
        self.sent: dict[str, int] = {}
        self.acked: dict[str, int] = {}
        self.slowest: dict[str, float] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._one(i)) for i in range(self.n)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _one(self, i: int) -> None:
        ident = f"73100{i:05d}"
        while True:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port,
                                                               local_addr=(f"127.0.2.{i + 1}", 0))
            except OSError:
                await asyncio.sleep(1)
                continue
            try:
                while True:
                    phase = self.phase
                    self.sent[phase] = self.sent.get(phase, 0) + 1
                    t = time.monotonic()
                    writer.write(h02(ident, (i % 50) / 100))
                    try:
                        reply = await asyncio.wait_for(reader.read(4096), 10)
                    except TimeoutError:
                        reply = b""
                    if b"V4" in reply:
                        self.acked[phase] = self.acked.get(phase, 0) + 1
                        self.slowest[phase] = max(self.slowest.get(phase, 0.0), time.monotonic() - t)
                    elif not reply:
                        break
                    await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - t)))
            except (OSError, ConnectionError):
                pass
            finally:
                writer.close()


# --- the phases ------------------------------------------------------------------------------------
async def reassembly(server: Server, scale: int) -> dict[str, Any]:
    conns = 400 // scale
    part = b"\x55" * 1000
    socks: list[asyncio.StreamWriter] = []
    drains: list[asyncio.Task[None]] = []
    sent = 0

    async def one(i: int) -> None:
        nonlocal sent
        phone = bytes.fromhex(f"0139{i:08d}")
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.jt808_port,
                                                           local_addr=(f"127.0.3.{i // 100 + 1}", 0))
        except OSError:
            return
        socks.append(writer)
        for m in range(4):
            frames = b"".join(encode_frame(0x0A00 + m, phone, m * 128 + k, part, total=128, index=k)
                              for k in range(1, 128))
            writer.write(frames)
            sent += len(frames)
            with contextlib.suppress(OSError, ConnectionError):
                await writer.drain()
        drains.append(asyncio.create_task(_drain(reader)))

    await asyncio.gather(*(one(i) for i in range(conns)))
    await asyncio.sleep(10)
    for w in socks:
        w.close()
    for task in drains:
        task.cancel()
    return {"connections": conns, "bytes_sent": sent}


async def _drain(reader: asyncio.StreamReader) -> None:
    with contextlib.suppress(Exception):
        while await reader.read(65536):
            pass


async def junk_tcp(server: Server, scale: int, seconds: float) -> dict[str, Any]:
    conns = 200 // scale
    sent = 0
    closed = 0
    deadline = time.monotonic() + seconds
    rnd = random.Random(11)
    junk = bytes(b for b in rnd.randbytes(70_000) if b not in (0x7E, 0x23, 0x24, 0x2A))[:64 * 1024]

    async def one(i: int) -> None:
        nonlocal sent, closed
        port = server.h02_port if i % 2 else server.jt808_port
        while time.monotonic() < deadline:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port,
                                                               local_addr=(f"127.0.4.{i // 100 + 1}", 0))
            except OSError:
                await asyncio.sleep(0.5)
                continue
            drain = asyncio.create_task(_drain(reader))
            try:
                while time.monotonic() < deadline and not reader.at_eof():
                    writer.write(junk)
                    await writer.drain()
                    sent += len(junk)
            except (OSError, ConnectionError):
                pass
            closed += 1
            writer.close()
            drain.cancel()
            await asyncio.sleep(0.05)

    await asyncio.gather(*(one(i) for i in range(conns)))
    return {"connections": conns, "bytes_written": sent, "connections_ended": closed}


async def junk_udp(server: Server, scale: int) -> dict[str, Any]:
    count = 200_000 // scale
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(20)]
    for i, s in enumerate(socks):
        s.bind((f"127.0.5.{i + 1}", 0))
        s.setblocking(False)
    payload = bytes(range(1, 256)) * 4
    sent = 0
    for n in range(count):
        s = socks[n % len(socks)]
        try:
            s.sendto(payload, ("127.0.0.1", server.h02_port if n % 2 else server.jt808_port))
            sent += 1
        except BlockingIOError:
            await asyncio.sleep(0.001)
        if n % 2000 == 0:
            await asyncio.sleep(0.01)
    for s in socks:
        s.close()
    await asyncio.sleep(5)
    return {"datagrams_sent": sent}


async def register(server: Server, scale: int) -> dict[str, Any]:
    conns = 2000 // scale
    answered = 0
    limit = asyncio.Semaphore(200)

    async def one(i: int) -> None:
        nonlocal answered
        async with limit:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", server.h02_port,
                                                               local_addr=(f"127.0.6.{i // 90 + 1}", 0))
            except OSError:
                return
            try:
                writer.write(h02(f"74{i:08d}"))
                if b"V4" in await asyncio.wait_for(reader.read(4096), 10):
                    answered += 1
            except (OSError, TimeoutError, ConnectionError):
                pass
            finally:
                writer.close()

    started = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(conns)))
    took = time.monotonic() - started
    async with httpx.AsyncClient(base_url=server.url, headers=HEADERS, timeout=60) as api:
        t = time.monotonic()
        r = await api.get("/gw/devices/all")
        list_seconds = time.monotonic() - t
        metrics = (await api.get("/metrics")).text
    pending = next((float(line.split()[-1]) for line in metrics.splitlines()
                    if line.startswith("sinogate_registrations_pending ")), None)
    return {"connections": conns, "seconds": round(took, 1), "answered": answered,
            "devices_listed": len(r.json()["result"]), "total_devices": int(r.headers.get("x-total-count", 0)),
            "list_bytes": len(r.content), "list_seconds": round(list_seconds, 3), "pending": pending}


async def connections(server: Server, scale: int) -> dict[str, Any]:
    want = 12_000 // scale
    socks: list[socket.socket] = []
    refused = 0
    loop = asyncio.get_running_loop()

    async def open_one(i: int) -> None:
        nonlocal refused
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.bind((f"127.0.7.{i // 80 + 1}", 0))
            await loop.sock_connect(s, ("127.0.0.1", server.h02_port))
            socks.append(s)
        except OSError:
            refused += 1
            s.close()

    for start in range(0, want, 500):
        await asyncio.gather(*(open_one(i) for i in range(start, min(want, start + 500))))
    await asyncio.sleep(20)
    alive = 0
    for s in socks:
        try:
            alive += s.recv(1) != b""
        except BlockingIOError:
            alive += 1
        except OSError:
            pass
        s.close()
    return {"opened": want, "connect_failed": refused, "still_open_after_20s": alive}


async def idents(server: Server, scale: int) -> dict[str, Any]:
    hostile = ["42 100 1", "4210/01", "4210+01", "4210\r\nINFO sinogate: forged", "7" * 256]
    answered = 0
    for n in range(100 // scale):
        ident = hostile[n % len(hostile)]
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.h02_port)
        except OSError:
            continue
        writer.write(h02(ident))
        with contextlib.suppress(OSError, TimeoutError, ConnectionError):
            answered += b"V4" in await asyncio.wait_for(reader.read(4096), 3)
        writer.close()
    async with httpx.AsyncClient(base_url=server.url, headers=HEADERS, timeout=30) as api:
        refused = [r for r in (await api.get("/gw/channels/all/idents")).json()["result"] if r.get("refused")]
    return {"frames": 100 // scale, "answered": answered, "listed_refused": len(refused),
            "reasons": sorted({r["refused"] for r in refused})}


async def heavy_filter(server: Server, scale: int, watch: Watch) -> dict[str, Any]:
    total = 200_000 // scale
    async with httpx.AsyncClient(base_url=server.url, headers=HEADERS, timeout=600) as api:
        device = (await api.post("/gw/devices", json=[{"configuration": {"ident": "7500000001"},
                                                        "protocol": "h02"}])).json()["result"][0]["id"]
        t0 = 1_700_000_000
        watch.phase = "filter_seed"
        for start in range(0, total, 10_000):
            body = [{"timestamp": t0 + i, "position.speed": i % 120, "position.latitude": 22.5 + (i % 100) / 1000}
                    for i in range(start, min(total, start + 10_000))]
            r = await api.post(f"/gw/devices/{device}/messages", json=body)
            assert r.status_code == 200, r.text[:200]
        watch.phase = "filter"
        # every term is evaluated for every message (none is true, the cheap one comes last)
        terms = " || ".join(f"position.latitude == {99 + i / 1000:.3f}" for i in range(120))
        flt = f"{terms} || position.speed > 1000"
        t = time.monotonic()
        r = await api.get("/gw/devices/all/messages", params={"data": json.dumps({"filter": flt})})
        took = time.monotonic() - t
        reason = r.json()["errors"][0]["reason"] if r.status_code != 200 else None
    return {"messages": total, "filter_chars": len(flt), "status": r.status_code, "seconds": round(took, 2),
            "reason": reason}


# --- run -------------------------------------------------------------------------------------------
async def trial(server: Server, quick: bool) -> dict[str, Any]:
    scale = 10 if quick else 1
    watch = Watch(server)
    watch.start()
    trackers = Trackers(server.h02_port, GOOD_TRACKERS)
    trackers.start()
    results: dict[str, Any] = {}
    phases: list[tuple[str, Any]] = [
        ("baseline", lambda: asyncio.sleep(10 if not quick else 3, result={})),
        ("reassembly", lambda: reassembly(server, scale)),
        ("junk_tcp", lambda: junk_tcp(server, scale, 30 if not quick else 5)),
        ("junk_udp", lambda: junk_udp(server, scale)),
        ("register", lambda: register(server, scale)),
        ("connections", lambda: connections(server, scale)),
        ("idents", lambda: idents(server, scale)),
        ("filter", lambda: heavy_filter(server, scale, watch)),
        ("after", lambda: asyncio.sleep(10 if not quick else 3, result={})),
    ]
    log_before = 0
    for name, run in phases:
        watch.phase = trackers.phase = name
        started = time.monotonic()
        disk_before = dir_bytes(server.data_dir)
        outcome = await run()
        outcome = dict(outcome or {})
        outcome["phase_seconds"] = round(time.monotonic() - started, 1)
        outcome["disk_growth_mb"] = round((dir_bytes(server.data_dir) - disk_before) / 1e6, 1)
        log_size = server.log_path.stat().st_size
        outcome["log_growth_kb"] = round((log_size - log_before) / 1024, 1)
        log_before = log_size
        results[name] = outcome
        print(f"{name}: {outcome}", flush=True)
    print("phases done; stopping the trackers", flush=True)
    await trackers.stop()
    watch.stop()
    print("trackers and probes stopped", flush=True)
    per_phase = {}
    for name, _ in phases:
        lat = watch.health.get(name, []) + (watch.health.get("filter_seed", []) if name == "filter" else [])
        per_phase[name] = {
            "health_p50_ms": round((percentile(lat, 0.5) or 0) * 1000, 1),
            "health_p99_ms": round((percentile(lat, 0.99) or 0) * 1000, 1),
            "health_max_ms": round(max(lat, default=0) * 1000, 1),
            "health_errors": watch.health_errors.get(name, 0),
            "rss_max_mb": round(max(watch.rss.get(name, 0), watch.rss.get("filter_seed", 0) if name == "filter"
                                    else 0), 1),
            "data_dir_max_mb": round(watch.disk.get(name, 0) / 1e6, 1),
            "trackers_sent": trackers.sent.get(name, 0),
            "trackers_acked": trackers.acked.get(name, 0),
            "slowest_ack_ms": round(trackers.slowest.get(name, 0) * 1000, 1),
            **results[name],
        }
    return per_phase


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the counts, shorter phases")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--keep", action="store_true", help="keep the temp data dir")
    args = parser.parse_args(argv)
    raise_nofile()
    with _tempdir(args.keep) as tmp:
        server = Server(tmp / "data")
        try:
            figures = asyncio.run(trial(server, args.quick))
        finally:
            code = server.stop()
        log = server.log_path.read_text(errors="replace")
        files = {p.name: p.stat().st_size for p in (tmp / "data").iterdir() if p.is_file()}
        summary = {
            "phases": figures,
            "exit_code": code,
            "log_bytes": len(log.encode()),
            "log_lines": log.count("\n"),
            "tracebacks": log.count("Traceback"),
            "longest_log_line": max((len(line) for line in log.splitlines()), default=0),
            "data_files_mb": {k: round(v / 1e6, 1) for k, v in files.items()},
        }
    print(json.dumps(summary, indent=1))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))
    return 0


@contextlib.contextmanager
def _tempdir(keep: bool) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="sinogate-abuse-"))
    try:
        yield path
    finally:
        if keep:
            print(f"kept {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
