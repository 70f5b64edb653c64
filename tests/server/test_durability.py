"""What the server acknowledged survives ``kill -9``: the 0x8001 goes out only after the commit."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.server.frames import AckedStream
from tests.server.harness import free_port

PHONE = "013900000001"


def _wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"server did not listen on {port}")


def test_acknowledged_messages_survive_sigkill(tmp_path: Path) -> None:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "sinogate", "serve", "--data-dir", str(tmp_path), "--host", "127.0.0.1",
         "--jt808-port", str(port), "--h02-port", "0", "--http-port", "0", "--no-udp", "--log-level", "WARNING"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        _wait_port(port)
        base = int(time.time()) - 10_000
        stream = AckedStream(socket.create_connection(("127.0.0.1", port), timeout=10), PHONE, base)
        stream.send(enough=1000, timeout=20)
        os.kill(server.pid, signal.SIGKILL)  # mid-stream: more frames are in flight
        server.wait(10)
        snapshot = stream.close()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)
    assert len(snapshot) >= 1000, "the server acknowledged too little before the kill"

    db = sqlite3.connect(tmp_path / "sinogate.sqlite")
    stored = {round(ts - base) for (ts,) in db.execute("SELECT ts FROM messages WHERE ident = '13900000001'")}
    missing = [serial for serial in snapshot if serial not in stored]
    assert not missing, f"{len(missing)} acknowledged messages were lost, e.g. serials {missing[:10]}"


def test_telemetry_is_rebuilt_after_a_crash(tmp_path: Path) -> None:
    """Telemetry is written back every few seconds; what a crash skipped is replayed on open."""
    import asyncio

    from sinogate.store.base import IngestBatch
    from sinogate.store.sqlite import SQLiteStore

    async def crash_then_reopen() -> dict:
        store = SQLiteStore(tmp_path / "t.sqlite")
        await store.open()
        device = await store.create_device({"ident": "77", "protocol": "h02"})
        now = time.time()
        for i in range(5):
            await store.ingest(IngestBatch(messages=[{
                "ident": "77", "protocol.name": "h02", "device.id": device["id"], "timestamp": now - 100 + i,
                "position.latitude": 10.0 + i, "server.timestamp": now,
            }]))
        # no close(): the writer thread dies with the "process"; only committed rows remain
        reopened = SQLiteStore(tmp_path / "t.sqlite")
        await reopened.open()
        try:
            return await reopened.telemetry(device["id"])
        finally:
            await reopened.close()

    telemetry = asyncio.run(crash_then_reopen())
    assert telemetry["position.latitude"]["value"] == 14.0
    assert telemetry["position.latitude"]["ts"] == pytest.approx(time.time() - 96, abs=5)
