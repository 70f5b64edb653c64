"""Connection limits on the device ports (issue 11), over real sockets on 127.0.0.1: per peer
address and in total (the rest is closed at once, logged rate-limited, counted in the metrics),
unidentified connections closed long before identified ones. Bounded: a few dozen sockets, seconds."""

from __future__ import annotations

import logging
import socket
import time
from pathlib import Path

import pytest

from sinogate.server.guard import Guard, Limits
from tests.server.frames import h02_v1
from tests.server.harness import RunningGateway, read_until


def _closed(sock: socket.socket, timeout: float = 3.0) -> bool:
    """True when the server closed (or reset) ``sock`` within ``timeout``."""
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_connections_per_peer_and_in_total_are_limited(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    gw = RunningGateway(tmp_path, max_connections_per_peer=3, max_connections=5)
    socks: list[socket.socket] = []
    try:
        with caplog.at_level(logging.WARNING, logger="sinogate.limits"):
            socks = [gw.connect("h02") for _ in range(4)]
            assert not any(_closed(s, 0.3) for s in socks[:3])
            assert _closed(socks[3])  # the 4th from 127.0.0.1
            # another address of the same host (127.0.0.2) has its own per-peer count, not its own total
            for _ in range(3):
                s = socket.create_connection(("127.0.0.1", gw.config.h02_port), timeout=5,
                                             source_address=("127.0.0.2", 0))
                socks.append(s)
            assert not _closed(socks[4], 0.3) and not _closed(socks[5], 0.3)
            assert _closed(socks[6])  # 3 + 2 = 5 in total
        guard = gw.runtime.guard
        assert guard.hits["max_connections_per_peer"] == 1 and guard.hits["max_connections"] == 1
        lines = [r.getMessage() for r in caplog.records if r.name == "sinogate.limits"]
        assert any("max_connections_per_peer" in line for line in lines)
        metrics = gw.runtime.metrics.render().decode()
        assert 'sinogate_limit_hits_total{limit="max_connections"} 1.0' in metrics
        assert "sinogate_connections_open 5.0" in metrics
        for s in socks:
            s.close()
        gw.wait_for(lambda: guard.tcp_open == 0)
        fresh = gw.connect("h02")  # slots are given back when connections end
        fresh.sendall(h02_v1("4210056001", time.time(), 22.5, 114.0))
        assert b"V4" in read_until(fresh, b"#")
        fresh.close()
    finally:
        for s in socks:
            s.close()
        gw.stop()


def test_unidentified_connections_are_closed_sooner(tmp_path: Path) -> None:
    gw = RunningGateway(tmp_path, unidentified_timeout=0.6, idle_timeout=60)
    try:
        silent = gw.connect("h02")
        device = gw.connect("h02")
        device.sendall(h02_v1("4210056002", time.time(), 22.5, 114.0))
        assert b"V4" in read_until(device, b"#")
        started = time.monotonic()
        assert _closed(silent, 5)
        assert time.monotonic() - started < 4
        assert not _closed(device, 0.5)  # identified: the idle timeout (60 s) applies
        assert gw.runtime.guard.hits["unidentified_timeout"] >= 1
        device.close()
    finally:
        gw.stop()


def test_the_total_leaves_headroom_below_the_descriptor_limit() -> None:
    guard = Guard(Limits(max_connections=10_000, fd_headroom=256), descriptors=1024)
    assert guard.max_connections == 768
    for i in range(768):
        assert guard.admit_tcp(f"10.0.{i // 100}.{i % 100}") is None
    refused = guard.admit_tcp("10.9.9.9")
    assert refused is not None and refused[0] == "max_connections"
    guard.release_tcp("10.0.0.0")
    assert guard.admit_tcp("10.9.9.9") is None


def test_udp_peers_are_limited_per_address_and_junk_does_not_leak_slots(tmp_path: Path) -> None:
    gw = RunningGateway(tmp_path, max_connections_per_peer=3, garbage_limit=1000)
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(5)]
    try:
        listener = gw.runtime.udp[1]
        for _ in range(50):  # junk: each peer's session is closed for garbage and replaced, many times
            for s in socks[:3]:
                s.sendto(b"\x01" * 1500, ("127.0.0.1", gw.config.h02_port))
            time.sleep(0.005)
        for s in socks[3:]:  # two more ports of the same address: over the limit, dropped
            s.sendto(b"\x01" * 10, ("127.0.0.1", gw.config.h02_port))
        gw.wait_for(lambda: gw.runtime.guard.hits.get("max_connections_per_peer", 0) >= 2)
        guard = gw.runtime.guard
        assert guard._udp == {"127.0.0.1": 3} and len(listener.sessions) == 3
        assert guard.hits.get("garbage", 0) >= 1
        socks[0].settimeout(3)
        socks[0].sendto(h02_v1("4210056003", time.time(), 22.5, 114.0), ("127.0.0.1", gw.config.h02_port))
        assert b"V4" in socks[0].recv(4096)  # a slot that junk used is usable again
    finally:
        for s in socks:
            s.close()
        gw.stop()
