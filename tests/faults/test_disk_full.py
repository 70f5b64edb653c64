"""A full disk (issue 11) on a small tmpfs: the gateway degrades instead of failing — the API stays
up, device acknowledgements are withheld, /health says why, writes get 503 with the reason, one log
line per change of state and no traceback — and recovers by itself when space returns; a restart
on the full disk starts degraded instead of exiting. Needs root (mount); bounded: a 3 MB tmpfs,
seconds."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import sinogate.runtime
from tests.commands.devices import wait_for
from tests.conftest import TEST_TOKEN, start_gateway
from tests.server.frames import h02_v1

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")


@contextlib.contextmanager
def small_disk(where: Path, size: str = "3m") -> Iterator[Path]:
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def fill(disk: Path) -> Path:
    """Fills the disk to the last byte with a file (returned: delete it to give the space back)."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
        except OSError:
            pass
        try:
            while True:
                fh.write(b"\0" * 512)
        except OSError:
            pass
    return filler


def report(sock: socket.socket, ident: str, lat: float) -> bytes:
    """Sends one position; what came back within a second (empty: not acknowledged)."""
    sock.sendall(h02_v1(ident, time.time(), lat, 114.0))
    sock.settimeout(1.0)
    try:
        return sock.recv(4096)
    except TimeoutError:
        return b""


def wait(predicate: Any, timeout: float = 10.0) -> Any:
    return wait_for(predicate, timeout, interval=0.1)


def test_a_full_disk_degrades_and_recovers(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sinogate.runtime, "STORE_PROBE_SECONDS", 0.3)
    headers = {"Authorization": f"FlespiToken {TEST_TOKEN}"}
    with small_disk(tmp_path / "disk") as disk, caplog.at_level(logging.INFO):
        data = disk / "data"
        with start_gateway(data, disk_resume_free=256 * 1024) as server:
            api = httpx.Client(base_url=server.http_url, headers=headers, timeout=10)
            with socket.create_connection(("127.0.0.1", server.h02_port), timeout=5) as sock:
                assert b"V4" in report(sock, "4210057001", 22.5)  # stored and acknowledged
                filler = fill(disk)
                answers = [report(sock, "4210057001", 22.6 + i / 100) for i in range(5)]
                assert b"" in answers  # not durable: not acknowledged (a write or two may still fit)
                health = wait(lambda: (h := api.get("/health").json())["status"] == "degraded" and h)
                assert "disk full" in health["reason"]
                assert api.get("/gw/devices/all").status_code == 200  # reads go on
                r = api.post("/gw/devices", json=[{"configuration": {"ident": "4210057002"}, "protocol": "h02"}])
                assert r.status_code == 503 and "disk full" in r.json()["errors"][0]["reason"]
                for i in range(20):  # no acknowledgement while degraded, however much comes
                    assert b"V4" not in report(sock, "4210057001", 23.0 + i / 100)
                filler.unlink()  # space is back: the gateway recovers by itself
                wait(lambda: api.get("/health").json()["status"] == "ok")
                assert b"V4" in report(sock, "4210057001", 24.0)
            device = next(d for d in api.get("/gw/devices/all").json()["result"] if d["configuration"]["ident"]
                          == "4210057001")
            stored = api.get(f"/gw/devices/{device['id']}/messages").json()["result"]
            assert {round(m["position.latitude"], 2) for m in stored} >= {22.5, 24.0}
            # a full disk at shutdown: the next start must still come up
            with socket.create_connection(("127.0.0.1", server.h02_port), timeout=5) as sock:
                assert b"V4" in report(sock, "4210057001", 25.0)
                filler = fill(disk)
                wait(lambda: b"V4" not in report(sock, "4210057001", 25.5)
                     and api.get("/health").json()["status"] == "degraded")
            api.close()
        with start_gateway(data, disk_resume_free=256 * 1024) as server:  # restart on the full disk
            api = httpx.Client(base_url=server.http_url, headers=headers, timeout=10)
            assert api.get("/gw/devices/all").status_code == 200
            filler.unlink()
            wait(lambda: api.get("/health").json()["status"] == "ok")
            r = api.post("/gw/devices", json=[{"configuration": {"ident": "4210057003"}, "protocol": "h02"}])
            assert r.status_code == 200
            api.close()
    tracebacks = [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
    assert not tracebacks, [r.getMessage() for r in tracebacks]
    degraded = [r for r in caplog.records if "store degraded" in r.getMessage()]
    recovered = [r for r in caplog.records if "store writable again" in r.getMessage()]
    assert 1 <= len(degraded) <= 3 and 1 <= len(recovered) <= 3  # one line per change of state
