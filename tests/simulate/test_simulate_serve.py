"""The simulator against the real ``sinogate serve``.

Through the CLI, as the load benchmark will drive it: every V1 and JT808 position must be acked
(the server acks after commit), and the summary JSON must say so."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(30)

BIN = Path(sys.executable).parent / "sinogate"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def test_cli_against_sinogate_serve(tmp_path: Path) -> None:
    assert BIN.exists(), "the sinogate entry point is not installed in this environment"
    h02_port, jt_port = _free_port(), _free_port()
    cmd = [str(BIN), "serve", "--data-dir", str(tmp_path / "data"), "--h02-port", str(h02_port),
           "--jt808-port", str(jt_port), "--http-port", "0"]
    serve = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        if not (_wait_port(h02_port, serve) and _wait_port(jt_port, serve)):
            err = serve.stderr.read().decode(errors="replace")[-500:] if serve.poll() is not None else ""
            raise AssertionError(f"sinogate serve did not come up: {err}")
        out = tmp_path / "sim.json"
        sim = subprocess.run(
            [str(BIN), "simulate", "--protocol", "mixed", "--target", "127.0.0.1", "--h02-port", str(h02_port),
             "--jt808-port", str(jt_port), "-n", "20", "--rate", "5", "--duration", "2",
             "--jt808-2019-share", "0.5", "--seed", "11", "--out", str(out), "--no-progress"],
            capture_output=True, timeout=20, env={**os.environ, "COLUMNS": "120"},
        )
        assert sim.returncode == 0, sim.stderr.decode(errors="replace")[-2000:]
        data = json.loads(out.read_text())
        assert data["errors"] == 0
        assert data["sent"] >= 20 * 9
        assert data["acked"] == data["sent"], "every V1 / 0x0200 is acked once durable"
        assert {d["protocol"] for d in data["devices"]} == {"h02", "jt808"}
        assert b"msgs/s" in sim.stderr
    finally:
        serve.terminate()
        try:
            serve.wait(timeout=5)
        except subprocess.TimeoutExpired:
            serve.kill()
