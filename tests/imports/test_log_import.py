"""``sinogate import log``: Traccar's tracker-server.log hex lines and one-capture-per-line files become
messages of the devices they name, with their own device times; importing twice adds nothing."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from sinogate.imports.logs import decode
from tests.commands.devices import jt808_frame

pytestmark = pytest.mark.timeout(120)

V1 = "*HQ,4210051415,V1,{t},A,2235.1777,N,11357.8913,E,010.00,090,010524,FFFFFBFF#"
REPLY = "*HQ,4210051415,V4,V1,20240501100000#"


def traccar_log() -> str:
    first, second = V1.format(t="100000").encode().hex(), V1.format(t="100030").encode().hex()
    return "\n".join([
        "2024-05-01 10:00:00  INFO: [T1a2b3c4d] connected",
        f"2024-05-01 10:00:00  INFO: [T1a2b3c4d: h02 < 10.0.0.1] {first}",
        f"2024-05-01 10:00:00  INFO: [T1a2b3c4d: h02 > 10.0.0.1] {REPLY.encode().hex()}",
        "2024-05-01 10:00:01  INFO: [T9e8d7c6b: gt06 < 10.0.0.2] 78780d010123456789012345000139d00d0a",
        f"2024-05-01 10:00:30  INFO: [T1a2b3c4d: h02 < 10.0.0.1] {second}",
        "2024-05-01 10:00:31  WARN: [T1a2b3c4d] some other warning",
        "",
    ])


def jt808_location() -> str:
    body = struct.pack(">IIIIHHH", 0, 2, 22_500_000, 113_900_000, 30, 500, 90) + bytes.fromhex("240501100000")
    return jt808_frame(0x0200, "013511221122", 1, body).hex()


def sinogate_import(server: Any, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SINOGATE_")}
    env.update({"SINOGATE_URL": server.http_url, "SINOGATE_TOKEN": server.token})
    out = subprocess.run([sys.executable, "-m", "sinogate", "import", "log", *args], capture_output=True,
                         text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    return out


def messages(server: Any, ident: str) -> list[dict[str, Any]]:
    headers = server.headers
    found = httpx.get(server.url(f"/gw/devices/configuration.ident={ident}"), headers=headers).json()["result"]
    assert found, f"no device {ident}"
    return httpx.get(server.url(f"/gw/devices/{found[0]['id']}/messages"), headers=headers).json()["result"]


def test_decoding_a_traccar_log() -> None:
    decoded = decode(traccar_log().splitlines(), "h02", 0.0)
    assert list(decoded.messages) == ["4210051415"]
    stamps = [m["timestamp"] for m in decoded.messages["4210051415"]]
    assert stamps == [datetime(2024, 5, 1, 10, 0, s, tzinfo=UTC).timestamp() for s in (0, 30)]
    assert decoded.skipped == 4 and decoded.errors == []


def test_import_log_files(gateway_server: Any, tmp_path: Path) -> None:
    log = tmp_path / "tracker-server.log"
    log.write_text(traccar_log())
    out = sinogate_import(gateway_server, "--protocol", "h02", str(log))
    assert "messages: 2 sent for 1 devices (1 created)" in out.stdout, out.stdout
    got = messages(gateway_server, "4210051415")
    assert [m["timestamp"] for m in got] == [datetime(2024, 5, 1, 10, 0, s, tzinfo=UTC).timestamp() for s in (0, 30)]
    assert got[0]["position.speed"] == pytest.approx(18.52) and got[0]["message.type"] == "V1"
    sinogate_import(gateway_server, "--protocol", "h02", str(log))
    assert len(messages(gateway_server, "4210051415")) == 2  # the second run adds nothing

    captures = tmp_path / "captures.txt"
    captures.write_text(f"{jt808_location()}\nnot a capture\n")
    out = sinogate_import(gateway_server, "--protocol", "jt808", str(captures))
    assert "1 with errors" in out.stdout and "line 2:" in out.stdout
    (msg,) = messages(gateway_server, "13511221122")
    assert msg["timestamp"] == datetime(2024, 5, 1, 2, 0, 0, tzinfo=UTC).timestamp()  # GMT+8 device clock
    assert msg["position.latitude"] == pytest.approx(22.5) and msg["position.speed"] == pytest.approx(50.0)

    out = sinogate_import(gateway_server, "--protocol", "h02", "--no-create", str(captures))
    assert "messages: 0 sent" in out.stdout
