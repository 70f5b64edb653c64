"""Hostile connections: garbage, one byte per second, 10 MB without a terminator. The server closes
them, memory stays bounded, and a well-behaved device keeps being served meanwhile."""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.faults._support import ServerProcess, h02_v1

pytestmark = pytest.mark.timeout(30)

IDLE = 2.0


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path / "data", idle_timeout=IDLE) as srv:
        yield srv
        assert srv.alive, srv.log()


class GoodDevice(threading.Thread):
    """An H02 device reporting every 0.2 s on its own connection; counts the V4 replies."""

    def __init__(self, server: ServerProcess, ident: str = "7353333333") -> None:
        super().__init__(daemon=True)
        self.server = server
        self.device_ident = ident
        self.sent = 0
        self.replies = 0
        self.failure: str | None = None
        self.stop = threading.Event()
        self.base = int(time.time()) - 80_000  # device time of the first position

    def run(self) -> None:
        base = self.base
        try:
            with self.server.connect("h02") as sock:
                sock.settimeout(3)
                buf = b""
                while not self.stop.is_set():
                    sock.sendall(h02_v1(self.device_ident, base + self.sent, 22.5, 114.0))
                    self.sent += 1
                    while buf.count(b"#") < 1:
                        chunk = sock.recv(4096)
                        if not chunk:
                            raise ConnectionError("closed by the server")
                        buf += chunk
                    reply, _, buf = buf.partition(b"#")
                    if b",V4,V1," in reply:
                        self.replies += 1
                    self.stop.wait(0.2)
        except Exception as exc:
            self.failure = repr(exc)

    def finish(self) -> None:
        deadline = time.time() + 5
        while self.sent < 5 and self.failure is None and time.time() < deadline:
            time.sleep(0.05)  # served meanwhile *and* for a while after
        self.stop.set()
        self.join(5)
        assert self.failure is None, f"the good device failed: {self.failure}; log: {self.server.log()}"
        assert self.sent >= 5 and self.replies == self.sent, (self.sent, self.replies)
        stored = self.server.stored_ts("h02", self.device_ident)
        missing = {self.base + i for i in range(self.replies)} - stored
        assert not missing, f"acknowledged but not stored: {sorted(missing)[:10]}; log: {self.server.log()}"


def closed_by_server(sock: socket.socket, within: float, trickle: Callable[[int], bytes] | None = None) -> float:
    """Seconds until the server closes ``sock`` (EOF or reset); optionally sends ``trickle(i)`` each second."""
    start = time.time()
    i = 0
    sock.settimeout(1.0)
    while time.time() - start < within:
        if trickle is not None:
            try:
                sock.sendall(trickle(i))
            except OSError:
                return time.time() - start
            i += 1
        try:
            if sock.recv(4096) == b"":
                return time.time() - start
        except TimeoutError:
            continue
        except OSError:
            return time.time() - start
    raise AssertionError(f"the server did not close the connection within {within:g} s")


def test_garbage_is_closed(server: ServerProcess) -> None:
    good = GoodDevice(server)
    good.start()
    rnd = random.Random(7)
    for protocol in ("h02", "jt808"):
        with server.connect(protocol) as sock:
            garbage = bytes(rnd.randrange(256) for _ in range(64 * 1024)).replace(b"#", b"").replace(b"\x7e", b"")
            try:
                sock.sendall(garbage)
            except OSError:
                pass  # already closed by the server: fine
            closed_by_server(sock, within=5)
    good.finish()


def test_one_byte_per_second_is_closed(server: ServerProcess) -> None:
    """Slowloris: a frame that never completes, one byte a second, each byte before the idle timeout.
    Bytes that never add up to a frame are not activity: the server closes it after ~idle_timeout."""
    good = GoodDevice(server)
    good.start()
    frame = h02_v1("7354444444", int(time.time()), 22.5, 114.0)[:-1] * 10  # no '#', ever
    with server.connect("h02") as sock:
        took = closed_by_server(sock, within=4 * IDLE + 3, trickle=lambda i: frame[i : i + 1])
    assert took >= IDLE - 0.5, f"closed after {took:.1f} s, before the idle timeout"
    good.finish()


def test_ten_megabytes_without_terminator(server: ServerProcess) -> None:
    good = GoodDevice(server)
    good.start()
    time.sleep(0.5)
    before = server.rss_kb()
    for protocol, head in (("h02", b"*HQ,7355555555,V1,"), ("jt808", b"\x7e\x02\x00")):
        blob = head + b"A" * (10 * 1024 * 1024)  # never a '#', never a second 0x7e
        with server.connect(protocol) as sock:
            sent = 0
            try:
                while sent < len(blob):
                    sent += sock.send(blob[sent : sent + 256 * 1024])
            except OSError:
                pass  # the server hung up on us: what we want
            closed_by_server(sock, within=5)
    after = server.rss_kb()
    assert after - before < 16 * 1024, f"server RSS grew {(after - before) / 1024:.1f} MB on 2 × 10 MB of junk"
    good.finish()
