"""``sinogate import traccar`` against Traccar-shaped databases in the real PostgreSQL and MariaDB:
the same positions (knots → km/h, attributes → sinogate's names) through sinogate's API, geofences
and device events too; resumable; a second run (and one ignoring the resume file) adds nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.imports.traccar_db import DEVICES, IMPORTED, TraccarData, mysql_traccar, postgres_traccar

pytestmark = pytest.mark.timeout(240)

SOURCES: dict[str, Callable[[], AbstractContextManager[TraccarData]]] = {
    "postgresql": postgres_traccar, "mysql": mysql_traccar,
}


@pytest.fixture(params=sorted(SOURCES))
def traccar(request: pytest.FixtureRequest) -> Iterator[TraccarData]:
    with SOURCES[request.param]() as data:
        yield data


def run_import(server: Any, data: TraccarData, state: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SINOGATE_")}
    env["SINOGATE_TOKEN"] = server.token
    out = subprocess.run([sys.executable, "-m", "sinogate", "import", "traccar", "--db", data.url, "--url",
                          server.http_url, "--state", str(state), *extra],
                         capture_output=True, text=True, timeout=180, env=env)
    assert out.returncode == 0, out.stderr
    return out


def get(server: Any, path: str, **params: Any) -> list[dict[str, Any]]:
    resp = httpx.get(server.url(path), headers=server.headers, params=params, timeout=60)
    assert resp.status_code == 200, resp.text
    return resp.json()["result"]  # type: ignore[no-any-return]


def devices_by_ident(server: Any) -> dict[str, dict[str, Any]]:
    return {d["configuration"]["ident"]: d for d in get(server, "/gw/devices")}


def positions(server: Any, device_id: int) -> list[dict[str, Any]]:
    data = json.dumps({"filter": "$position.latitude != null"})
    return get(server, f"/gw/devices/{device_id}/messages", data=data)


def counts(server: Any) -> dict[str, int]:
    out = {}
    for ident, device in devices_by_ident(server).items():
        out[ident] = len(get(server, f"/gw/devices/{device['id']}/messages"))
    return out


def test_import_gives_the_same_positions_and_adds_nothing_twice(gateway_server: Any, traccar: TraccarData,
                                                                tmp_path: Path) -> None:
    server = gateway_server
    state = tmp_path / "state.json"
    # A first run stopped early, then resumed from the state file.
    first = run_import(server, traccar, state, "--stop-after", "1000", "--batch", "400")
    assert "stopped early" in first.stdout
    assert json.loads(state.read_text())["positions"]
    out = run_import(server, traccar, state)
    assert "devices: 0 created, 3 already there, 2 skipped" in out.stdout, out.stdout
    assert "'other brand' (862000000000004): protocol 'gt06'" in out.stdout
    assert "'never reported' (4210051499): no positions" in out.stdout
    assert "positions: 2500 read, 2500 sent" in out.stdout, out.stdout
    assert "geofences: 0 created, 3 already there, 1 skipped" in out.stdout
    assert "queued commands: 2 queued, 0 already queued, 2 skipped" in out.stdout, out.stdout
    assert "not queued #2 engineStop for van 2: engine.stop cuts fuel/power" in out.stdout

    by_ident = devices_by_ident(server)
    idents = {tid: ident for tid, _n, ident, _p, _c in DEVICES}
    assert set(by_ident) == {idents[t] for t in IMPORTED}
    assert by_ident["013511221122"]["protocol"] == "jt808" and by_ident["4210051401"]["protocol"] == "h02"
    assert by_ident["4210051401"]["name"] == "van 1" and by_ident["4210051401"]["configuration"]["phone"]

    for tid in IMPORTED:
        device = by_ident[idents[tid]]
        expected = [p for p in traccar.positions if p["deviceid"] == tid]
        got = positions(server, device["id"])
        assert len(got) == len(expected)
        for row, msg in zip(expected, got, strict=True):
            attrs = json.loads(row["attributes"])
            assert msg["timestamp"] == pytest.approx(row["fixtime"].replace(tzinfo=__import__("datetime").UTC)
                                                     .timestamp())
            assert msg["position.latitude"] == pytest.approx(row["latitude"], abs=1e-9)
            assert msg["position.longitude"] == pytest.approx(row["longitude"], abs=1e-9)
            assert msg["position.speed"] == pytest.approx(row["speed"] * 1.852, abs=1e-3)  # knots → km/h
            assert msg["position.direction"] == row["course"] and msg["position.altitude"] == row["altitude"]
            assert msg["position.valid"] is row["valid"]
            assert msg["engine.ignition.status"] is attrs["ignition"]
            assert msg["position.satellites"] == attrs["sat"]
            assert msg["external.powersource.voltage"] == attrs["power"]
            assert msg["vehicle.mileage"] == pytest.approx(attrs["odometer"] / 1000)  # m → km
            assert msg["battery.level"] == attrs["batteryLevel"] and msg["traccar.io1"] == attrs["io1"]
            assert "traccar.raw" not in msg
            if attrs.get("alarm") == "sos":
                assert msg["sos.alarm"] is True
            if row["address"]:
                assert msg["position.address"] == row["address"]
        # what the devices said in Traccar's events: command results and texts
        said = get(server, f"/gw/devices/{device['id']}/messages",
                   data=json.dumps({"filter": "$command.response != null || $text.message != null"}))
        expected_said = [e for e in traccar.events if e["deviceid"] == tid and e["type"] in ("commandResult",
                                                                                               "textMessage")]
        assert len(said) == len(expected_said)

    fences = {g["name"]: g for g in get(server, "/gw/geofences")}
    assert set(fences) == {"depot", "yard", "route 1"}
    assert fences["depot"]["geometry"] == {"type": "circle", "center": {"lat": 52.52, "lon": 13.405}, "radius": 0.5}
    assert fences["yard"]["geometry"]["path"][0] == {"lat": 52.5, "lon": 13.4}  # Traccar's WKT is lat first
    assert fences["yard"]["speed_limit"] == pytest.approx(30.0, abs=0.1)
    assert fences["route 1"]["geometry"]["width"] == pytest.approx(0.1)
    queued = get(server, f"/gw/devices/{by_ident['4210051401']['id']}/commands-queue")
    assert [(c["name"], c["properties"]) for c in queued] == [("interval.set", {"seconds": 60})]

    # Running it again adds nothing; neither does a run that ignores the resume file.
    before = counts(server)
    again = run_import(server, traccar, state)
    assert "positions: 0 read" in again.stdout and "queued commands: 0 queued, 2 already queued" in again.stdout
    restart = run_import(server, traccar, state, "--restart")
    assert "positions: 3500 read, 3500 sent" in restart.stdout and "geofences: 0 created" in restart.stdout
    assert counts(server) == before
    assert len(get(server, "/gw/geofences")) == 3
    assert len(get(server, f"/gw/devices/{by_ident['4210051401']['id']}/commands-queue")) == 1


def test_a_database_that_is_not_there_is_one_line(gateway_server: Any, tmp_path: Path) -> None:
    env = {**os.environ, "SINOGATE_TOKEN": gateway_server.token}
    for url in ("postgresql://postgres@127.0.0.1:5432/no_such_db", "mysql://root@127.0.0.1:3306/no_such_db",
                "sqlite:///x"):
        out = subprocess.run([sys.executable, "-m", "sinogate", "import", "traccar", "--db", url, "--url",
                              gateway_server.http_url, "--state", str(tmp_path / "s.json")],
                             capture_output=True, text=True, timeout=60, env=env)
        assert out.returncode == 1
        lines = [line for line in out.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in out.stderr, out.stderr
