"""Fault tests drive a real ``sinogate serve`` subprocess over real sockets.

A subprocess (not the in-process harness) so that a crash shows as an exit code, SIGKILL is a real
kill, and /proc/<pid>/status VmRSS is the server's memory alone.
"""

from __future__ import annotations

import os
import resource
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

from tests.server.frames import h02_v1, jt808_frame, location_body
from tests.server.harness import free_port

ROOT = Path(__file__).resolve().parents[2]

__all__ = ["ServerProcess", "h02_v1", "jt808_acked_serials", "jt808_frame", "location_body", "raise_nofile"]


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class ServerProcess:
    """``sinogate serve`` on free ports with a given data dir; ``kill()`` is SIGKILL."""

    def __init__(self, data_dir: Path, idle_timeout: float | None = None) -> None:
        self.data_dir = data_dir
        self.idle_timeout = idle_timeout
        self.h02_port = free_port()
        self.jt808_port = free_port()
        self.log_path = data_dir / f"server-{time.time_ns()}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ServerProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "sinogate", "serve", "--data-dir", str(self.data_dir), "--host", "127.0.0.1",
               "--h02-port", str(self.h02_port), "--jt808-port", str(self.jt808_port), "--http-port", "0",
               "--no-udp", "--log-level", "WARNING"]
        if self.idle_timeout is not None:
            cmd += ["--idle-timeout", str(self.idle_timeout)]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                         preexec_fn=raise_nofile)
        for port in (self.h02_port, self.jt808_port):
            self._wait_port(port)
        return self

    def _wait_port(self, port: int, timeout: float = 20.0) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            assert self.alive, f"server exited: {self.log()}"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"server did not listen on {port}: {self.log()}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rss_kb(self) -> int:
        with open(f"/proc/{self.pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    def kill(self) -> None:
        if self.alive:
            assert self.proc is not None
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.alive:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def connect(self, protocol: str, timeout: float = 5.0) -> socket.socket:
        port = self.h02_port if protocol == "h02" else self.jt808_port
        return socket.create_connection(("127.0.0.1", port), timeout=timeout)

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.data_dir / "sinogate.sqlite", timeout=30)

    def stored_ts(self, protocol: str, ident: str) -> set[int]:
        with self.db() as db:
            rows = db.execute("SELECT ts FROM messages WHERE protocol = ? AND ident = ?", (protocol, ident))
            return {round(ts) for (ts,) in rows}

    def check_device_works(self, ident: str = "7351111111", count: int = 5, timeout: float = 5.0) -> None:
        """A clean H02 device sends ``count`` positions, gets every V4 reply, and they are stored."""
        base = int(time.time()) - 50_000
        with self.connect("h02", timeout=timeout) as sock:
            for i in range(count):
                sock.sendall(h02_v1(ident, base + i, 22.5, 114.0 + i / 1000))
            replies = read_replies(sock, b"#", count, timeout)
        assert replies.count(b",V4,V1,") == count, f"replies {replies!r}; log: {self.log()}"
        stored = self.stored_ts("h02", ident)
        assert {base + i for i in range(count)} <= stored, f"not stored; log: {self.log()}"


def read_replies(sock: socket.socket, terminator: bytes, count: int, timeout: float) -> bytes:
    deadline = time.time() + timeout
    data = b""
    while data.count(terminator) < count and time.time() < deadline:
        sock.settimeout(max(0.05, deadline - time.time()))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        if not chunk:
            break
        data += chunk
    return data


def jt808_acked_serials(buf: bytes) -> tuple[list[int], bytes]:
    """Serials acknowledged by the 0x8001 frames in ``buf`` (2013 header); returns the rest."""
    out: list[int] = []
    while True:
        start = buf.find(b"\x7e")
        if start < 0:
            return out, b""
        end = buf.find(b"\x7e", start + 1)
        if end < 0:
            return out, buf[start:]
        raw = buf[start + 1 : end].replace(b"\x7d\x02", b"\x7e").replace(b"\x7d\x01", b"\x7d")
        buf = buf[end + 1 :]
        if len(raw) >= 17 and raw[:2] == b"\x80\x01":
            serial, _msg_id, result = struct.unpack(">HHB", raw[12:17])
            if result == 0:
                out.append(serial)
