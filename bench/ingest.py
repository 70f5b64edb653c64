"""Load benchmark: ``sinogate serve`` in a subprocess, driven by ``sinogate simulate``, then counted.

    .venv/bin/python bench/ingest.py [--scenario all|steady|saturation|idle|storm] [--quick] [--json OUT]
                                     [--store postgresql://postgres@127.0.0.1/test]

``--store URL`` runs the server on that store (``SINOGATE_STORE_URL``); a PostgreSQL URL gets a
schema of its own per server run, dropped afterwards.

For each traffic scenario:

* the gateway runs as ``sinogate serve`` (uvloop, temp data dir, no UDP, log level WARNING);
* the load comes from ``sinogate simulate`` as a **subprocess**: on this 2-core machine the
  generator and the server each get a core and their own GIL, and the benchmark process (latency
  probe, /proc sampling) does not steal time from either. The simulator's JSON summary (what every
  device sent and got acknowledged) is the ground truth for loss accounting;
* a probe device (H02, in this process) sends one position every 100 ms and polls until it is
  queryable (through the HTTP API when ``sinogate.api.app`` exists, else straight from SQLite —
  the output says which);
* afterwards the stored messages are compared with the summary: lost = acknowledged but not
  stored, duplicated = stored more than once;
* the same simulator run is replayed against a bare asyncio reader that only counts frames
  (``bench/_floor.py``: frame delimiters counted in C): ``ratio`` is our stored messages/s over
  the floor's frames/s. The floor's own CPU share is printed too: a reader well below 100 % was
  paced by the generator (``sinogate simulate``, a Python process on the same two cores), so the
  floor then is the generator's rate, and the ratio flatters the gateway;
* ``stored/s`` is the distinct simulator positions stored over the span of the commits (sampled
  from the store; with another store, of their reception times, which start earlier: every
  connection reads before it waits for the store, so that span overstates the rate);
  ``peak 1s`` the most rows committed within one second, sampled from the store while the load
  runs (SQLite), not reception times bunched by reads; ``acked/s`` what the devices were told is
  stored, per second of sending. A server slower than the offered load leaves a backlog in its
  sockets, which it keeps storing after the simulator stopped waiting for acknowledgements
  (``drain_timeout``): those messages are stored but never acknowledged (acked < stored), and the
  note says how long the backlog took. ``srv CPU µs/msg`` is the server's CPU time over the
  messages it stored: the figure that other processes on the machine distort least (a server
  that got only part of a core stores less per second, not more per CPU second).

The idle scenario opens N connections from this process (each sends one heartbeat, so the device
is identified, then stays silent), bound to source addresses 127.0.0.2, .3, ... so that the
loopback's ephemeral ports never run out, and reads the server's VmRSS before/after.

Every scenario is bounded in time (simulator durations, drain deadlines, kill after timeouts).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import resource
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SINOGATE = str(BIN / "sinogate") if (BIN / "sinogate").exists() else None
TOKEN = "bench-master-token-0123456789abcdef"
PROBE_IDENT = "7399999999"
STORE_URL: str | None = None  # --store: the server's store (default: SQLite in its data dir)
PLUGINS = 0  # --plugins N: expression plugins added before the traffic
NODES = 1  # --nodes N: a cluster of N nodes on the --store PostgreSQL and NATS (127.0.0.1:4222)
NATS_URL = "nats://127.0.0.1:4222"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024

GOAL_RATE = 45_000  # issue 18: SQLite, synchronous=NORMAL, ack after commit, on this 2-core machine
GOAL_RATIO = 0.3  # to the bare frame-counting reader of the same run
GOAL_RSS_KB = 10.0
GOAL_IDLE = 100_000


# --- helpers -----------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def raise_nofile() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit (raising the hard limit needs CAP_SYS_RESOURCE)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 1_048_576
    for limit in (want, hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (max(limit, soft), max(limit, hard)))
            break
        except (ValueError, OSError):
            continue
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port} after {timeout:g} s")


def proc_rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def proc_cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def norm_ident(ident: str) -> str:
    return ident.lstrip("0") or "0"


def h02_v1(ident: str, ts: int, lat: float = 22.5, lon: float = 114.0) -> bytes:
    t = time.gmtime(ts)
    lat_s = f"{int(lat):02d}{(lat % 1) * 60:07.4f}"
    lon_s = f"{int(lon):03d}{(lon % 1) * 60:07.4f}"
    return (
        f"*HQ,{ident},V1,{time.strftime('%H%M%S', t)},A,{lat_s},N,{lon_s},E,10.00,90,"
        f"{time.strftime('%d%m%y', t)},FFFFFBFF#"
    ).encode()


# --- the server under test -----------------------------------------------------------------------
class Server:
    """``sinogate serve`` (or the floor) in a subprocess on free ports."""

    def __init__(self, data_dir: Path, *, floor: bool = False, idle_timeout: float | None = None) -> None:
        self.data_dir = data_dir
        self.floor = floor
        self.h02_port = free_port()
        self.jt808_port = free_port()
        self.api = not floor and importlib.util.find_spec("sinogate.api.app") is not None
        self.http_port = free_port() if self.api else 0
        self.stats_path = data_dir / "floor.json"
        data_dir.mkdir(parents=True, exist_ok=True)
        if floor:
            cmd = [sys.executable, str(ROOT / "bench" / "_floor.py"), str(self.h02_port), str(self.jt808_port),
                   str(self.stats_path)]
        else:
            cmd = [sys.executable, "-m", "sinogate", "serve", "--data-dir", str(data_dir), "--host", "127.0.0.1",
                   "--h02-port", str(self.h02_port), "--jt808-port", str(self.jt808_port),
                   "--http-port", str(self.http_port), "--no-udp", "--token", TOKEN, "--log-level", "WARNING"]
            if idle_timeout is not None:
                cmd += ["--idle-timeout", str(idle_timeout)]
        self.log = open(data_dir / ("floor.log" if floor else "server.log"), "wb")  # noqa: SIM115
        self.store_url = None if floor or not STORE_URL else _run_store_url(data_dir.name)
        # The load comes from one address and registers thousands of devices at once: the
        # device-side limits (README "Limits") are lifted, this measures capacity (bench/abuse.py
        # measures the limits).
        # The count afterwards reads every stored message through the API in one query: above
        # api_scan_max (500,000) it would be refused, and counted from the database file instead.
        env = {**os.environ, "SINOGATE_MAX_CONNECTIONS_PER_PEER": "1000000", "SINOGATE_MAX_CONNECTIONS": "1000000",
               "SINOGATE_REGISTER_BURST": "1000000", "SINOGATE_API_SCAN_MAX": "20000000"}
        if self.store_url:
            env["SINOGATE_STORE_URL"] = self.store_url
        # --nodes N: N nodes of one cluster on one store; the simulator spreads the devices over
        # them (as a balancer would, without its hop). The first node's API counts.
        self.others: list[subprocess.Popen[bytes]] = []
        self.spread: list[tuple[int, int]] = []
        self.cluster_name = ""
        if not floor and NODES > 1:
            self.cluster_name = f"bench{os.getpid()}x{int(time.time())}"
            env.update(SINOGATE_CLUSTER_URL=NATS_URL, SINOGATE_CLUSTER_NAME=self.cluster_name)
            self.spread = [(self.h02_port, self.jt808_port)]
            for i in range(1, NODES):
                ports = (free_port(), free_port())
                self.spread.append(ports)
                node_cmd = [c for c in cmd]
                node_cmd[node_cmd.index("--data-dir") + 1] = str(data_dir / f"node{i}")
                node_cmd[node_cmd.index("--h02-port") + 1] = str(ports[0])
                node_cmd[node_cmd.index("--jt808-port") + 1] = str(ports[1])
                node_cmd[node_cmd.index("--http-port") + 1] = str(free_port())
                self.others.append(subprocess.Popen(node_cmd, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
                                                    preexec_fn=raise_nofile, env=env))
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
                                     preexec_fn=raise_nofile, env=env)
        try:
            wait = 20.0 * max(1, NODES)  # nodes start side by side on the same two cores
            for h02_port, jt808_port in self.spread or [(self.h02_port, self.jt808_port)]:
                wait_port(h02_port, wait)
                wait_port(jt808_port, wait)
            if self.http_port:
                wait_port(self.http_port, wait)
        except Exception:
            self.stop()
            raise
        time.sleep(0.3)
        if PLUGINS and self.http_port:
            self._add_plugins(PLUGINS)

    def _add_plugins(self, n: int) -> None:
        """``--plugins N``: N expression plugins on every device, to show what they cost per message."""
        import httpx

        body = [{"type": "expression", "name": f"bench.p{i}", "expression": f"round(position.speed * {i + 1.5}, 1)"}
                for i in range(n)]
        r = httpx.post(f"http://127.0.0.1:{self.http_port}/gw/plugins", json=body,
                       headers={"Authorization": f"FlespiToken {TOKEN}"}, timeout=30)
        r.raise_for_status()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss_kb(self) -> int:
        return proc_rss_kb(self.pid) + sum(proc_rss_kb(p.pid) for p in self.others)

    def cpu_s(self) -> float:
        return proc_cpu_s(self.pid) + sum(proc_cpu_s(p.pid) for p in self.others)

    def stop(self, timeout: float = 60.0) -> int | None:
        for proc in [self.proc, *self.others]:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in [self.proc, *self.others]:
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        self.log.close()
        if self.cluster_name:  # the run's NATS buckets go with it
            from sinogate.cluster.node import delete_buckets

            asyncio.run(delete_buckets(NATS_URL, self.cluster_name))
        if self.store_url and self.store_url.startswith("postgres"):
            _pg(self.store_url, "DROP SCHEMA IF EXISTS {schema} CASCADE")
        return self.proc.returncode

    def floor_stats(self) -> dict[str, Any]:
        return json.loads(self.stats_path.read_text()) if self.stats_path.exists() else {}

    def tail_log(self, n: int = 2000) -> str:
        path = self.data_dir / ("floor.log" if self.floor else "server.log")
        return path.read_bytes()[-n:].decode(errors="replace") if path.exists() else ""


def _run_store_url(name: str) -> str:
    """``STORE_URL`` for one server run: a PostgreSQL URL gets a fresh schema."""
    assert STORE_URL is not None
    if not STORE_URL.startswith("postgres"):
        return STORE_URL
    schema = f"bench_{name.replace('-', '_')}_{os.getpid()}_{int(time.time())}"
    return f"{STORE_URL}{'&' if '?' in STORE_URL else '?'}schema={schema}"


def _pg(url: str, sql: str) -> list[Any]:
    """Runs one statement on a store URL's database; ``{schema}`` is the URL's schema."""
    import asyncpg

    from sinogate.store.postgres import split_url

    dsn, schema = split_url(url)

    async def run() -> list[Any]:
        conn = await asyncpg.connect(dsn)
        try:
            return list(await conn.fetch(sql.format(schema=f'"{schema}"')))
        finally:
            await conn.close()

    return asyncio.run(run())


# --- reading back what is stored ----------------------------------------------------------------
class Stored:
    """What the server stored, through the HTTP API when there is one, else straight from SQLite."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.db_path = server.data_dir / "sinogate.sqlite"
        self._db: sqlite3.Connection | None = None
        self.via = "sqlite (direct read of sinogate.sqlite: the HTTP API is not available)"
        self._client: Any = None
        if server.api:
            try:
                import httpx

                self._client = httpx.Client(
                    base_url=f"http://127.0.0.1:{server.http_port}",
                    headers={"Authorization": f"FlespiToken {TOKEN}"}, timeout=300,
                )
                self._api_messages({"count": 1})
                self.via = "HTTP API (GET /gw/devices/all/messages)"
            except Exception as exc:
                self._client = None
                self.via = f"sqlite (direct read: the HTTP API failed: {exc!r:.80})"

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=30, check_same_thread=False)
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
        if self._client is not None:
            self._client.close()

    def _api_messages(self, data: dict[str, Any], selector: str = "all") -> list[dict[str, Any]]:
        resp = self._client.get(f"/gw/devices/{selector}/messages", params={"data": json.dumps(data)})
        resp.raise_for_status()
        result: list[dict[str, Any]] = resp.json()["result"]
        return result

    def last_id(self) -> int:
        if self.server.store_url and self.server.store_url.startswith("postgres"):
            return int(_pg(self.server.store_url, "SELECT max(id) FROM {schema}.messages")[0][0] or 0)
        row = self.db.execute("SELECT max(id) FROM messages").fetchone()
        return int(row[0] or 0)

    def probe_seen(self, ts: int) -> bool:
        if self._client is not None:
            try:
                rows = self._api_messages({"fields": "timestamp", "reverse": True, "count": 1},
                                          f"configuration.ident={PROBE_IDENT}")
            except Exception:
                return False  # overloaded or not registered yet: not queryable (yet)
            return any(r.get("timestamp", 0) >= ts for r in rows)
        row = self.db.execute(
            "SELECT 1 FROM messages WHERE protocol = 'h02' AND ident = ? AND ts >= ? LIMIT 1", (PROBE_IDENT, ts)
        ).fetchone()
        return row is not None

    def positions(self) -> list[tuple[str, float, float]]:
        """(ident, device timestamp, server timestamp) of every stored message."""
        if self._client is not None:
            try:
                rows = self._api_messages({"fields": "ident,timestamp,server.timestamp"})
                return [(str(r.get("ident", "")), float(r.get("timestamp", 0)),
                         float(r.get("server.timestamp", 0))) for r in rows]
            except Exception as exc:
                self.via = f"the store (direct read: reading everything through the HTTP API failed: {exc!r:.80})"
        if self.server.store_url and self.server.store_url.startswith("postgres"):
            return [(str(r[0]), float(r[1]), float(r[2]))
                    for r in _pg(self.server.store_url, "SELECT ident, ts, server_ts FROM {schema}.messages")]
        return [(i, t, s) for i, t, s in self.db.execute("SELECT ident, ts, server_ts FROM messages")]

    def wait_quiet(self, quiet: float = 1.5, timeout: float = 90.0) -> float:
        """Waits until no message was stored for ``quiet`` seconds; returns the seconds waited."""
        start = time.time()
        last, since = self.last_id(), time.time()
        while time.time() - start < timeout:
            time.sleep(0.25)
            now_id = self.last_id()
            if now_id != last:
                last, since = now_id, time.time()
            elif time.time() - since >= quiet:
                break
        return time.time() - start


class CommitSampler:
    """Rows committed over time, read from the SQLite file every ``interval`` s in a thread of
    this process (the newest row id: a cheap index lookup); ``peak`` is the most committed within
    one second. None for other stores."""

    def __init__(self, stored: Stored, interval: float = 0.25) -> None:
        self.stored = stored
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._stop = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        if self.stored.server.store_url:
            return
        path = self.stored.db_path
        while not stop.is_set():
            try:
                db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5, check_same_thread=False)
                break
            except sqlite3.Error:
                await asyncio.sleep(0.2)
        else:
            return
        try:
            while not stop.is_set():
                try:
                    row = await asyncio.to_thread(lambda: db.execute("SELECT max(id) FROM messages").fetchone())
                    self.samples.append((time.time(), int(row[0] or 0)))
                except sqlite3.Error:
                    pass
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.interval)
        finally:
            db.close()

    def window(self, until: float | None = None) -> float | None:
        """Seconds from the first commit seen to the one that brought the last row (or ``until``,
        when earlier: the latency probe's few rows after the simulator ended are not load)."""
        samples = self.samples
        if len(samples) < 2 or samples[-1][1] == samples[0][1]:
            return None
        first = next(t for t, n in samples if n > samples[0][1])
        last = next(t for t, n in samples if n == samples[-1][1])
        if until is not None:
            last = min(last, until)
        return max(last - first, self.interval)

    def peak(self) -> int | None:
        best = None
        samples = self.samples
        j = 0
        for i in range(len(samples)):
            while samples[i][0] - samples[j][0] > 1.0:
                j += 1
            if i > j and samples[i][0] - samples[j][0] >= 0.9:  # a one-second window (within a sample)
                rate = (samples[i][1] - samples[j][1]) / (samples[i][0] - samples[j][0])
                best = rate if best is None else max(best, rate)
        return None if best is None else int(best)


# --- the latency probe --------------------------------------------------------------------------
@dataclass
class Probe:
    stored: Stored | None
    interval: float = 0.1
    latencies: list[float] = field(default_factory=list)
    timeouts: int = 0

    async def run(self, port: int, stop: asyncio.Event) -> None:
        """One H02 position per ``interval``; each is polled until queryable (≤ 10 s)."""
        if self.stored is None:
            return
        ts = int(time.time()) - 200_000  # unique per message, never in the future
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return
        drain = asyncio.create_task(_discard(reader))  # the V4 replies; only the store is watched
        try:
            while not stop.is_set():
                ts += 1
                sent = time.perf_counter()
                writer.write(h02_v1(PROBE_IDENT, ts))
                deadline = sent + 10.0
                while True:
                    if await asyncio.to_thread(self.stored.probe_seen, ts):
                        self.latencies.append(time.perf_counter() - sent)
                        break
                    if time.perf_counter() > deadline or stop.is_set():
                        self.timeouts += 1
                        break
                    await asyncio.sleep(0.002)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), max(0.0, self.interval - (time.perf_counter() - sent)))
        finally:
            writer.close()
            drain.cancel()


async def _discard(reader: asyncio.StreamReader) -> None:
    with contextlib.suppress(OSError):
        while await reader.read(65536):
            pass


# --- the simulator ------------------------------------------------------------------------------
@dataclass
class SimRun:
    summary: dict[str, Any]
    wall: float
    cpu_s: float
    returncode: int


def run_simulator(server: Server, args: list[str], out: Path, timeout: float) -> SimRun:
    cmd = ([SINOGATE] if SINOGATE else [sys.executable, "-m", "sinogate"]) + [
        "simulate", "--target", "127.0.0.1", "--h02-port", str(server.h02_port),
        "--jt808-port", str(server.jt808_port), "--no-progress", "--out", str(out), *args,
    ]
    if server.spread:
        cmd += ["--spread", ",".join(f"{h}:{j}" for h, j in server.spread)]
    t0 = time.time()
    log = open(out.with_suffix(".log"), "wb")  # noqa: SIM115
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, preexec_fn=raise_nofile)
    deadline = t0 + timeout
    status, usage = 0, None
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.time() > deadline:
            proc.send_signal(signal.SIGINT)  # the simulator stops sending, drains and writes its summary
            deadline = time.time() + 30
            timeout = -1
        if timeout < 0 and time.time() > deadline:
            proc.kill()
        time.sleep(0.05)
    proc.returncode = os.waitstatus_to_exitcode(status)
    log.close()
    summary = json.loads(out.read_text()) if out.exists() else {}
    cpu = (usage.ru_utime + usage.ru_stime) if usage is not None else 0.0
    return SimRun(summary, time.time() - t0, cpu, proc.returncode)


def sim_args(devices: int, rate: float, duration: float, protocol: str = "mixed", **extra: Any) -> list[str]:
    out = ["--protocol", protocol, "--devices", str(devices), "--rate", str(rate), "--duration", str(duration),
           "--heartbeat", "0"]
    for key, value in extra.items():
        out += [f"--{key.replace('_', '-')}", str(value)]
    return out


# --- accounting ---------------------------------------------------------------------------------
@dataclass
class Accounting:
    sent: int = 0
    acked: int = 0
    stored: int = 0  # distinct simulator positions found in the store
    lost: int = 0  # acknowledged, not stored
    duplicated: int = 0  # stored rows beyond the first for one position
    unacked_stored: int = 0
    window_s: float = 0.0  # first → last server timestamp of the stored positions
    peak_1s: int = 0
    lost_examples: list[str] = field(default_factory=list)


def account(summary: dict[str, Any], rows: list[tuple[str, float, float]]) -> Accounting:
    acc = Accounting()
    by_key: dict[tuple[str, int], list[float]] = {}
    for ident, ts, server_ts in rows:
        if ts != int(ts):
            continue  # register/auth/heartbeat messages carry the server time, positions whole seconds
        by_key.setdefault((norm_ident(ident), int(ts)), []).append(server_ts)
    server_times: list[float] = []
    for dev in summary.get("devices", []):
        ident = norm_ident(dev["ident"])
        unacked = set(dev["unacked_seqs"])
        for ts, seq in dev["sent_messages"]:
            acc.sent += 1
            found = by_key.get((ident, ts))
            if seq not in unacked:
                acc.acked += 1
            if not found:
                if seq not in unacked:
                    acc.lost += 1
                    if len(acc.lost_examples) < 5:
                        acc.lost_examples.append(f"{dev['ident']}@{ts}")
                continue
            acc.stored += 1
            acc.duplicated += len(found) - 1
            if seq in unacked:
                acc.unacked_stored += 1
            server_times.append(min(found))
    if server_times:
        acc.window_s = max(server_times) - min(server_times)
        buckets: dict[int, int] = {}
        for t in server_times:
            buckets[int(t)] = buckets.get(int(t), 0) + 1
        acc.peak_1s = max(buckets.values())
    return acc


# --- one scenario ---------------------------------------------------------------------------------
@dataclass
class Result:
    scenario: str
    load: str
    connections: int = 0
    sent: int = 0
    acked: int = 0
    stored: int = 0
    stored_per_s: float = 0.0
    peak_1s: int = 0
    floor_per_s: float | None = None
    floor_cpu_pct: float | None = None
    ratio: float | None = None
    acked_per_s: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    probe_timeouts: int = 0
    lost: int = 0
    duplicated: int = 0
    rss_before_mb: float = 0.0
    rss_after_mb: float = 0.0
    rss_per_conn_kb: float | None = None
    server_cpu_pct: float = 0.0
    server_cpu_us_per_msg: float | None = None  # the server's CPU time over what it stored
    generator_cpu_pct: float = 0.0
    counted_via: str = ""
    notes: list[str] = field(default_factory=list)


PROFILE_DIR: Path | None = None  # --profile: py-spy records the server during each traffic run


def start_profile(name: str, pid: int, seconds: float) -> subprocess.Popen[bytes] | None:
    spy = BIN / "py-spy"
    if PROFILE_DIR is None or not spy.exists():
        return None
    PROFILE_DIR.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [str(spy), "record", "-p", str(pid), "-d", str(int(seconds)), "-r", "100", "-f", "raw", "--threads",
         "--gil", "-o", str(PROFILE_DIR / f"{name}.txt")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def summarize_profile(path: Path, top: int = 12) -> list[str]:
    """Self and inclusive time per function from py-spy's raw (collapsed) output, per thread."""
    if not path.exists():
        return []
    total = 0
    threads: dict[str, int] = {}
    own: dict[str, int] = {}
    incl: dict[str, int] = {}
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        frames = stack.split(";")
        total += n
        thread = frames[0].split("(")[0].strip() + " " + frames[0].rsplit(":", 1)[-1].strip()
        threads[thread] = threads.get(thread, 0) + n
        own[frames[-1]] = own.get(frames[-1], 0) + n
        for f in set(frames[1:]):
            incl[f] = incl.get(f, 0) + n
    out = [f"py-spy --gil ({total} samples holding the GIL): " + ", ".join(
        f"{t} {100 * n / total:.0f}%" for t, n in sorted(threads.items(), key=lambda kv: -kv[1]))]
    out.append("  self: " + "; ".join(
        f"{f} {100 * n / total:.0f}%" for f, n in sorted(own.items(), key=lambda kv: -kv[1])[:top]))
    interesting = [(f, n) for f, n in incl.items() if "sinogate/" in f or "/server/" in f or "/store/" in f]
    out.append("  inclusive (sinogate): " + "; ".join(
        f"{f} {100 * n / total:.0f}%" for f, n in sorted(interesting, key=lambda kv: -kv[1])[:top]))
    return out


def traffic_scenario(name: str, load: str, args: list[str], connections: int, tmp: Path, sim_timeout: float,
                     floor: bool = True, profile_s: float = 0.0) -> Result:
    result = Result(name, load, connections=connections)
    server = Server(tmp / f"{name}-server")
    stored = Stored(server)
    spy: subprocess.Popen[bytes] | None = None
    try:
        spy = start_profile(name, server.pid, profile_s) if profile_s else None
        rss0, cpu0, t0 = server.rss_kb(), server.cpu_s(), time.time()
        probe = Probe(stored)
        sampler = CommitSampler(stored)
        stop = asyncio.Event()
        sampling = asyncio.Event()

        async def drive() -> SimRun:
            task = asyncio.create_task(probe.run(server.h02_port, stop))
            commits = asyncio.create_task(sampler.run(sampling))
            try:
                return await asyncio.to_thread(run_simulator, server, args, tmp / f"{name}-sim.json", sim_timeout)
            finally:
                stop.set()
                await task
                # The backlog: sampled until nothing more is committed.
                await asyncio.to_thread(stored.wait_quiet)
                sampling.set()
                await commits

        sim = asyncio.run(drive())
        rss_peak = server.rss_kb()
        waited = stored.wait_quiet()
        cpu1, t1 = server.cpu_s(), time.time()
        if server.proc.poll() is not None:
            result.notes.append(f"server died (exit {server.proc.returncode}): {server.tail_log(400)}")
        rows = stored.positions()
        result.counted_via = stored.via
        acc = account(sim.summary, rows)
        result.sent, result.acked, result.stored = acc.sent, acc.acked, acc.stored
        result.lost, result.duplicated = acc.lost, acc.duplicated
        peak = sampler.peak()  # commits per second; else reception times per second
        result.peak_1s = peak if peak is not None else acc.peak_1s
        sending = sim.summary.get("sending_seconds") or 0
        result.acked_per_s = acc.acked / sending if sending else None
        ended = sim.summary.get("ended_at")
        if ended and sampler.samples and acc.acked < acc.stored:
            last_commit = next((t for t, n in reversed(sampler.samples) if n < sampler.samples[-1][1]), ended)
            if last_commit > ended + 1:
                result.notes.append(f"the backlog was stored until {last_commit - ended:.0f} s after the simulator "
                                    f"gave up waiting for acknowledgements (stored, never acknowledged)")
        # Over the span of the commits (sampled); reception times start earlier, as every connection
        # reads before it waits for the store, so their span would overstate the rate.
        # Without a backlog, what was committed after the simulator ended is the probe's.
        committed = sampler.window(None if acc.acked < acc.stored else sim.summary.get("ended_at"))
        span = committed if committed is not None else acc.window_s
        result.stored_per_s = acc.stored / span if span > 0 else 0.0
        if acc.lost_examples:
            result.notes.append(f"lost e.g. {', '.join(acc.lost_examples)}")
        if sim.summary.get("errors"):
            result.notes.append(f"simulator errors: {sim.summary['errors']}")
        if waited > 5:
            result.notes.append(f"server needed {waited:.0f} s after the simulator ended to store its backlog")
        result.p50_ms = _ms(percentile(probe.latencies, 0.5))
        result.p99_ms = _ms(percentile(probe.latencies, 0.99))
        result.probe_timeouts = probe.timeouts
        result.rss_before_mb, result.rss_after_mb = rss0 / 1024, rss_peak / 1024
        result.rss_per_conn_kb = (rss_peak - rss0) / connections if connections else None
        result.server_cpu_pct = 100 * (cpu1 - cpu0) / (t1 - t0)
        result.server_cpu_us_per_msg = 1e6 * (cpu1 - cpu0) / acc.stored if acc.stored else None
        result.generator_cpu_pct = 100 * sim.cpu_s / sim.wall if sim.wall else 0.0
        bytes_per_msg = sim.summary.get("bytes_sent", 0) / max(1, sim.summary.get("sent", 1))
    finally:
        try:
            stored.close()
        finally:  # never leave the server running
            server.stop()
        if spy is not None:
            spy.wait(30)
    if spy is not None and PROFILE_DIR is not None:
        result.notes.extend(summarize_profile(PROFILE_DIR / f"{name}.txt"))
    if floor and bytes_per_msg:
        fl = Server(tmp / f"{name}-floor", floor=True)
        try:
            run_simulator(fl, args, tmp / f"{name}-floor-sim.json", sim_timeout)
        finally:
            fl.stop()
        st = fl.floor_stats()
        window = st.get("last", 0) - st.get("first", 0)
        if window > 0:
            result.floor_per_s = st.get("frames", 0) / window
            result.floor_cpu_pct = 100 * st.get("cpu_s", 0.0) / window
            result.ratio = result.stored_per_s / result.floor_per_s if result.floor_per_s else None
            if result.floor_cpu_pct < 80:
                result.notes.append(
                    f"floor: the bare reader used {result.floor_cpu_pct:.0f} % of a core, so the generator set its "
                    f"pace ({result.floor_per_s:,.0f} frames/s is what sinogate simulate could send here, not what "
                    f"a bare reader could read): the ratio flatters the gateway")
    return result


def _ms(value: float | None) -> float | None:
    return None if value is None else value * 1000


# --- idle connections -------------------------------------------------------------------------------
async def open_idle(port: int, n: int, concurrency: int = 500) -> tuple[list[socket.socket], list[str]]:
    """``n`` connections, each sends one H02 heartbeat and stays silent. Source 127.0.0.2+ rotates
    every 20,000 connections so the loopback's ephemeral ports never run out."""
    loop = asyncio.get_running_loop()
    socks: list[socket.socket] = []
    errors: list[str] = []
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        if errors and len(errors) > 50:
            return
        async with sem:
            s = socket.socket()
            s.setblocking(False)
            try:
                s.bind((f"127.0.0.{2 + i // 20_000}", 0))
                await asyncio.wait_for(loop.sock_connect(s, ("127.0.0.1", port)), 10)
                ident = str(7_350_000_000 + i)
                await loop.sock_sendall(s, f"*HQ,{ident},HTBT,100#".encode())
                socks.append(s)
            except (OSError, TimeoutError) as exc:
                s.close()
                errors.append(f"#{i}: {exc!r}")

    await asyncio.gather(*(one(i) for i in range(n)))
    return socks, errors


def idle_scenario(target: int, tmp: Path) -> Result:
    limit = raise_nofile()
    result = Result("idle", f"{target:,} idle connections (one heartbeat each, then silent)")
    # Both ends live in one process each: the server needs one fd per connection plus its own.
    n = min(target, limit - 300)
    if n < target:
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        result.notes.append(
            f"capped at {n:,}: RLIMIT_NOFILE hard limit is {hard:,} here and cannot be raised "
            "(setrlimit above it needs CAP_SYS_RESOURCE, which this container lacks); "
            "the server holds one fd per connection"
        )
    server = Server(tmp / "idle-server")
    stored = Stored(server)
    result.counted_via = stored.via
    socks: list[socket.socket] = []
    try:
        time.sleep(1.0)
        rss0, cpu0, t0 = server.rss_kb(), server.cpu_s(), time.time()
        socks, errors = asyncio.run(open_idle(server.h02_port, n))
        opened = time.time() - t0
        time.sleep(3.0)  # let identification (device rows, connect logs) settle
        stored.wait_quiet(quiet=1.0, timeout=60)
        rss1, cpu1, t1 = server.rss_kb(), server.cpu_s(), time.time()
        alive = server.proc.poll() is None
        result.connections = len(socks)
        result.rss_before_mb, result.rss_after_mb = rss0 / 1024, rss1 / 1024
        result.rss_per_conn_kb = (rss1 - rss0) / max(1, len(socks))
        result.server_cpu_pct = 100 * (cpu1 - cpu0) / (t1 - t0)
        result.notes.append(f"opened {len(socks):,} in {opened:.1f} s; server alive: {alive}")
        if errors:
            result.notes.append(f"{len(errors)} connect errors, e.g. {errors[0]}")
        # The server must still serve a device while holding them all.
        probe = Probe(stored, interval=0.05)

        async def probe_some() -> None:
            stop = asyncio.Event()
            task = asyncio.create_task(probe.run(server.h02_port, stop))
            await asyncio.sleep(3)
            stop.set()
            await task

        for s in socks[:10]:  # release a few fds for the probe
            s.close()
        asyncio.run(probe_some())
        result.p50_ms = _ms(percentile(probe.latencies, 0.5))
        result.p99_ms = _ms(percentile(probe.latencies, 0.99))
        result.probe_timeouts = probe.timeouts
    finally:
        for s in socks:
            s.close()
        try:
            stored.close()
        finally:
            server.stop()
    return result


# --- scenarios ---------------------------------------------------------------------------------------
def scenario_steady(tmp: Path, quick: bool) -> Result:
    devices, duration = (200, 6) if quick else (1000, 30)
    return traffic_scenario("steady", f"{devices:,} devices × 1 msg/s, mixed H02/JT808, {duration} s",
                            sim_args(devices, 1, duration), devices, tmp, duration + 60)


def scenario_saturation(tmp: Path, quick: bool) -> Result:
    devices, rate, duration = (200, 50, 5) if quick else (2000, 25, 20)
    return traffic_scenario(
        "saturation", f"{devices:,} devices × {rate} msg/s offered, mixed H02/JT808, {duration} s",
        sim_args(devices, rate, duration, drain_timeout=10), devices, tmp, duration + 90,
        profile_s=duration,
    )


def scenario_storm(tmp: Path, quick: bool) -> Result:
    devices, duration, at, offline = (400, 10, 4, 3) if quick else (4000, 24, 8, 6)
    return traffic_scenario(
        "storm", f"{devices:,} devices × 1 msg/s; all drop at {at} s, back after {offline} s with the backlog",
        sim_args(devices, 1, duration, reconnect_storm=at, storm_offline=offline, drain_timeout=10),
        devices, tmp, duration + 90,
    )


def scenario_idle(tmp: Path, quick: bool) -> Result:
    return idle_scenario(2_000 if quick else GOAL_IDLE, tmp)


SCENARIOS = {"steady": scenario_steady, "saturation": scenario_saturation, "idle": scenario_idle,
             "storm": scenario_storm}


# --- report ------------------------------------------------------------------------------------------
def _fmt(value: float | int | None, spec: str = ",.0f") -> str:
    return "—" if value is None else format(value, spec)


def print_table(results: list[Result]) -> None:
    cols = ["scenario", "conns", "sent", "acked", "stored", "stored/s", "acked/s", "peak 1s", "floor/s",
            "floor CPU%", "ratio", "p50 ms", "p99 ms", "lost", "dup", "RSS MB", "KB/conn", "srv CPU%",
            "srv CPU µs/msg", "gen CPU%"]
    rows = []
    for r in results:
        rows.append([
            r.scenario, _fmt(r.connections), _fmt(r.sent), _fmt(r.acked), _fmt(r.stored), _fmt(r.stored_per_s),
            _fmt(r.acked_per_s), _fmt(r.peak_1s), _fmt(r.floor_per_s), _fmt(r.floor_cpu_pct), _fmt(r.ratio, ".2f"),
            _fmt(r.p50_ms, ".1f"),
            _fmt(r.p99_ms, ".1f"), _fmt(r.lost), _fmt(r.duplicated),
            f"{r.rss_before_mb:.0f}→{r.rss_after_mb:.0f}", _fmt(r.rss_per_conn_kb, ".1f"),
            _fmt(r.server_cpu_pct), _fmt(r.server_cpu_us_per_msg), _fmt(r.generator_cpu_pct),
        ])
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(cols)]
    print("| " + " | ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)) + " |")
    print()
    for r in results:
        print(f"{r.scenario}: {r.load}; counted via {r.counted_via}")
        for note in r.notes:
            print(f"    {note}")
        if r.probe_timeouts:
            print(f"    latency probe: {r.probe_timeouts} probe messages not queryable within 10 s")


def print_goals(results: list[Result]) -> None:
    by = {r.scenario: r for r in results}
    checks: list[tuple[str, str, bool]] = []
    if "saturation" in by:
        r = by["saturation"]
        checks.append((f"≥ {GOAL_RATE:,} msg/s stored", f"{r.stored_per_s:,.0f}", r.stored_per_s >= GOAL_RATE))
        if r.ratio is not None:
            checks.append((f"ratio to floor ≥ {GOAL_RATIO}", f"{r.ratio:.2f}", r.ratio >= GOAL_RATIO))
    if "idle" in by:
        r = by["idle"]
        checks.append((f"{GOAL_IDLE:,} idle connections", f"{r.connections:,}", r.connections >= GOAL_IDLE))
        if r.rss_per_conn_kb is not None:
            checks.append((f"≤ {GOAL_RSS_KB:g} KB RSS per idle connection", f"{r.rss_per_conn_kb:.1f} KB",
                           r.rss_per_conn_kb <= GOAL_RSS_KB))
    lost = sum(r.lost for r in results)
    checks.append(("zero lost (acked but not stored)", str(lost), lost == 0))
    print("goals:")
    for goal, value, ok in checks:
        print(f"  [{'met' if ok else 'NOT met'}] {goal}: {value}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", choices=["all", *SCENARIOS], default="all")
    parser.add_argument("--quick", action="store_true", help="small, short runs (smoke test)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument("--keep", action="store_true", help="keep the temp data dirs")
    parser.add_argument("--profile", type=Path, help="py-spy the server during saturation; raw stacks go here")
    parser.add_argument("--store", help="store URL for the server, e.g. postgresql://postgres@127.0.0.1/test")
    parser.add_argument("--plugins", type=int, default=0, help="add N expression plugins (their cost per message)")
    parser.add_argument("--nodes", type=int, default=1, help="N nodes of a cluster (needs --store postgresql://…; "
                                                              "NATS with JetStream on 127.0.0.1:4222)")
    args = parser.parse_args(argv)
    if args.nodes > 1 and not (args.store or "").startswith("postgres"):
        parser.error("--nodes needs --store postgresql://…: the nodes share one PostgreSQL store")
    global PROFILE_DIR
    PROFILE_DIR = args.profile
    global STORE_URL, PLUGINS, NODES
    STORE_URL = args.store
    PLUGINS = args.plugins
    NODES = args.nodes
    raise_nofile()
    names = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    results: list[Result] = []
    with _tempdir(args.keep) as tmp:
        for name in names:
            t = time.time()
            print(f"== {name}{' (quick)' if args.quick else ''} ...", flush=True)
            try:
                results.append(SCENARIOS[name](tmp, args.quick))
            except Exception as exc:  # one broken scenario must not hide the others
                results.append(Result(name, "failed", notes=[f"{type(exc).__name__}: {exc}"]))
            print(f"   done in {time.time() - t:.0f} s", flush=True)
    print()
    store = (args.store or "sqlite").split("://")[0].replace("postgres", "postgresql").replace("ql" * 2, "ql")
    print(f"sinogate ingest benchmark · {os.cpu_count()} CPUs · Python {sys.version.split()[0]} · store {store}"
          f"{f' · {args.nodes} nodes' if args.nodes > 1 else ''}{' · quick' if args.quick else ''}")
    print_table(results)
    print()
    if args.quick:
        print("goals: not judged on a --quick run")
    else:
        print_goals(results)
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=1))
    return 0


@contextlib.contextmanager
def _tempdir(keep: bool) -> Iterator[Path]:
    if keep:
        path = Path(tempfile.mkdtemp(prefix="sinogate-bench-"))
        print(f"data in {path}")
        yield path
    else:
        with tempfile.TemporaryDirectory(prefix="sinogate-bench-") as d:
            yield Path(d)


if __name__ == "__main__":
    sys.exit(main())
