"""The server as a process and its configuration: precedence, graceful stop, reconnects, retention."""

from __future__ import annotations

import asyncio
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sinogate.config import load_config
from sinogate.store.base import TimeQuery
from tests.server.frames import h02_v1, jt808_frame, location_body
from tests.server.harness import RunningGateway, free_port, read_until


def test_config_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    toml = tmp_path / "sinogate.toml"
    toml.write_text('[sinogate]\nh02_port = 6001\njt808_port = 6002\nidle_timeout = 30\nauto_register = false\n')
    monkeypatch.setenv("SINOGATE_JT808_PORT", "7002")
    monkeypatch.setenv("SINOGATE_IDLE_TIMEOUT", "40")
    cfg = load_config(toml, idle_timeout=50.0, h02_port=None)
    assert cfg.h02_port == 6001  # file
    assert cfg.jt808_port == 7002  # env beats file
    assert cfg.idle_timeout == 50.0  # flag beats env
    assert cfg.auto_register is False
    assert cfg.http_port == 8080  # default


def test_bad_config_is_a_clear_error(tmp_path: Path) -> None:
    toml = tmp_path / "bad.toml"
    toml.write_text("[sinogate]\nh02_port = 99999\n")
    result = subprocess.run(
        [sys.executable, "-m", "sinogate", "serve", "--config", str(toml)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert "h02_port" in result.stderr and "Traceback" not in result.stderr


def test_sigterm_flushes_and_exits_zero(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "sinogate", "serve", "--data-dir", str(tmp_path), "--host", "127.0.0.1",
         "--h02-port", str(port), "--jt808-port", "0", "--http-port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.time() + 20
        while True:
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=1)
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.05)
        with sock:
            sock.sendall(h02_v1("4210051415", time.time() - 20, 7.0, 8.0))
            read_until(sock, b"#")
            proc.send_signal(signal.SIGTERM)
            sock.settimeout(10)
            assert sock.recv(100) == b""  # the server closed our connection on its way out
        output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output
    assert f"h02 listening on tcp 127.0.0.1:{port}" in output
    db = sqlite3.connect(tmp_path / "sinogate.sqlite")
    assert db.execute("SELECT count(*) FROM messages").fetchone()[0] == 1
    events = [row[0] for row in db.execute("SELECT event FROM logs ORDER BY ts")]
    assert events == ["connect", "disconnect"]
    assert db.execute("SELECT connected FROM devices").fetchone()[0] == 0


def test_new_connection_replaces_the_old_one(tmp_path: Path) -> None:
    gw = RunningGateway(tmp_path)
    try:
        first = gw.connect("h02")
        first.sendall(h02_v1("4210051415", time.time() - 20, 1.0, 1.0))
        read_until(first, b"#")
        second = gw.connect("h02")
        second.sendall(h02_v1("4210051415", time.time() - 10, 1.1, 1.0))
        read_until(second, b"#")
        first.settimeout(5)
        assert first.recv(100) == b""
        device = gw.runtime.devices.find("h02", "4210051415")
        assert gw.runtime.session_for(device["id"]) is not None
        assert device["connected"] is True
        logs = gw.wait_for(lambda: [lg for lg in gw.call(gw.runtime.store.logs(TimeQuery(), [device["id"]]))
                                    if lg["reason"] == "replaced by a new connection"])
        assert logs[0]["event"] == "disconnect"
        second.close()
        first.close()
        gw.wait_for(lambda: not gw.runtime.devices.get(device["id"])["connected"])
    finally:
        gw.stop()


def test_retention_purges_old_rows(tmp_path: Path) -> None:
    gw = RunningGateway(tmp_path)
    try:
        with gw.connect("jt808") as sock:
            sock.sendall(jt808_frame(0x0200, "013900000002", 1, location_body(time.time() - 50, 1.0, 2.0)))
            read_until(sock, b"\x7e", 2)
        store = gw.runtime.store
        gw.wait_for(lambda: len(gw.call(store.packets(TimeQuery()))) >= 4)
        removed = gw.call(store.purge(time.time() + 1, time.time() + 1))
        assert removed["messages"] == 1 and removed["packets"] >= 4
        assert gw.call(store.messages(None, TimeQuery())) == []
    finally:
        gw.stop()


def test_idle_connection_is_closed(tmp_path: Path) -> None:
    gw = RunningGateway(tmp_path, idle_timeout=0.5)
    try:
        with gw.connect("h02") as sock:
            sock.settimeout(5)
            started = time.time()
            assert sock.recv(10) == b""
            assert time.time() - started < 4
    finally:
        gw.stop()


def test_store_rejects_writes_after_close(tmp_path: Path) -> None:
    from sinogate.store.base import IngestBatch, StoreError
    from sinogate.store.sqlite import SQLiteStore

    async def scenario() -> None:
        store = SQLiteStore(tmp_path / "x.sqlite")
        await store.open()
        await store.close()
        with pytest.raises(StoreError):
            await store.ingest(IngestBatch())

    asyncio.run(scenario())


@pytest.mark.parametrize("flag", ["--h02-port", "--http-port"])
def test_port_in_use_is_a_clear_error(tmp_path: Path, flag: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        ports = {"--h02-port": "0", "--jt808-port": "0", "--http-port": "0", flag: port}
        result = subprocess.run(
            [sys.executable, "-m", "sinogate", "serve", "--data-dir", str(tmp_path), "--host", "127.0.0.1",
             "--http-host", "127.0.0.1", *[x for kv in ports.items() for x in kv]],
            capture_output=True, text=True, timeout=60,
        )
    assert result.returncode == 2
    assert "in use" in result.stderr and "Traceback" not in result.stderr
