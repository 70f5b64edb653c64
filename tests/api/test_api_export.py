"""Track exports: KML/GPX parsed back with fastkml/gpxpy, CSV; the export CLI."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gpxpy
import pytest
from fastkml import kml
from lxml import etree
from typer.testing import CliRunner

from sinogate.cli import app as cli

if TYPE_CHECKING:
    from conftest import Api

T0 = 1_700_000_000


def route() -> list[dict[str, Any]]:
    """60 points 10 s apart: moving, a 6-minute stop (points 20..56), moving again."""
    out = []
    for i in range(60):
        stopped = 20 <= i <= 56
        out.append({
            "timestamp": T0 + i * 10,
            "position.latitude": 50.0 + (min(i, 20) + max(0, i - 56)) * 0.001,
            "position.longitude": 30.0,
            "position.altitude": 100.0,
            "position.speed": 0 if stopped else 40,
            "position.satellites": 9,
            "position.valid": True,
            "engine.ignition.status": not stopped,
        })
    out.append({"timestamp": T0 + 601, "position.valid": False, "position.latitude": 0, "position.longitude": 0})
    out.append({"timestamp": T0 + 602, "battery.level": 80})  # no position: not a track point
    return out


@pytest.fixture(scope="module")
def dev(api: Api) -> dict[str, Any]:
    device = api.create_device("121000000000001", name="Tracked <car> & co")
    api.ok("POST", f"/gw/devices/{device['id']}/messages", json=route())
    return device


def _features(obj: Any) -> list[Any]:
    out = []
    for f in getattr(obj, "features", []) or []:
        out.append(f)
        out += _features(f)
    return out


def test_kml(api: Api, dev: dict[str, Any]) -> None:
    r = api.get(f"/gw/devices/{dev['id']}/track", params={"format": "kml"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/vnd.google-earth.kml+xml")
    assert "attachment" in r.headers["content-disposition"]
    doc = kml.KML.from_string(r.content)
    placemarks = [f for f in _features(doc) if type(f).__name__ == "Placemark"]
    track = placemarks[0]
    assert track.name == "Track"
    coords = list(track.geometry.coords)  # the parser folds repeated points (the stop) into one
    assert len(coords) == 24 and coords[0][:2] == pytest.approx((30.0, 50.0))
    stops = placemarks[1:]
    assert [s.name for s in stops] == ["Stop 1"]
    assert stops[0].geometry.coords[0][:2] == pytest.approx((30.0, 50.02))
    root = etree.fromstring(r.content)
    assert root.tag == "{http://www.opengis.net/kml/2.2}kml"
    ns = {"k": "http://www.opengis.net/kml/2.2"}
    assert root.find(".//k:Document/k:name", ns).text == "Tracked <car> & co"
    assert len(root.find(".//k:LineString/k:coordinates", ns).text.split()) == 60
    # a longer minimum stop drops it; a time range and filter narrow the track
    r = api.get(f"/gw/devices/{dev['id']}/track", params={"format": "kml", "stop_minutes": 10})
    assert "Stop 1" not in r.text
    r = api.get(f"/gw/devices/{dev['id']}/track", {"from": T0, "to": T0 + 90, "filter": "position.speed > 0"},
                params={"format": "kml"})
    coords = list(kml.KML.from_string(r.content).features[0].features[0].geometry.coords)
    assert len(coords) == 10


def test_gpx(api: Api, dev: dict[str, Any]) -> None:
    r = api.get(f"/gw/devices/{dev['id']}/track", params={"format": "gpx"})
    assert r.status_code == 200
    gpx = gpxpy.parse(r.text)
    assert gpx.version == "1.1"
    points = gpx.tracks[0].segments[0].points
    assert len(points) == 60
    assert points[0].latitude == pytest.approx(50.0) and points[0].elevation == pytest.approx(100.0)
    assert points[0].time.timestamp() == T0 and points[-1].time.timestamp() == T0 + 590
    assert points[0].satellites == 9


def test_csv(api: Api, dev: dict[str, Any]) -> None:
    r = api.get(f"/gw/devices/{dev['id']}/track", {"count": 5}, params={"format": "csv"})
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == 5
    assert rows[0]["timestamp"] == str(T0) and rows[0]["time"] == "2023-11-14T22:13:20Z"
    assert rows[0]["speed"] == "40" and rows[0]["ignition"] == "true"
    r = api.get(f"/gw/devices/{dev['id']}/track", {"fields": "timestamp,position.speed"}, params={"format": "csv"})
    lines = r.text.splitlines()
    assert lines[0] == "timestamp,position.speed" and len(lines) == 61


def test_export_errors(api: Api, dev: dict[str, Any]) -> None:
    assert api.get(f"/gw/devices/{dev['id']}/track", params={"format": "shp"}).status_code == 400
    empty = api.create_device("121000000000002")
    assert api.get("/gw/devices/all/track").status_code == 400  # more than one device
    assert api.get("/gw/devices/123456/track").status_code == 404
    r = api.get(f"/gw/devices/{empty['id']}/track", params={"format": "kml"})
    assert r.status_code == 200 and kml.KML.from_string(r.content)
    assert "<Placemark>" not in r.text and r.text.rstrip().endswith("</kml>")


def test_export_cli_from_data_dir_and_api(tmp_path: Path, gateway_factory: Any) -> None:
    import httpx

    data = tmp_path / "data"
    with gateway_factory(data) as s:
        h = s.headers
        dev = httpx.post(s.url("/gw/devices"), headers=h,
                         json=[{"configuration": {"ident": "131000000000001"}, "protocol": "h02"}]).json()["result"][0]
        httpx.post(s.url(f"/gw/devices/{dev['id']}/messages"), headers=h, json=route())
        runner = CliRunner()
        out = tmp_path / "via-api.gpx"
        res = runner.invoke(cli, ["export", "--device", "131000000000001", "--format", "gpx", "-o", str(out),
                                  "--url", s.http_url, "--token", s.token])
        assert res.exit_code == 0, res.output
        assert len(gpxpy.parse(out.read_text()).tracks[0].segments[0].points) == 60
    out = tmp_path / "track.kml"
    res = CliRunner().invoke(cli, ["export", "--device", str(dev["id"]), "--from", "2023-11-14T22:13:20Z",
                                   "--to", str(T0 + 95), "--format", "kml", "-o", str(out), "--data-dir", str(data)])
    assert res.exit_code == 0, res.output
    coords = list(kml.KML.from_string(out.read_bytes()).features[0].features[0].geometry.coords)
    assert len(coords) == 10
    res = CliRunner().invoke(cli, ["export", "--device", "nope", "--data-dir", str(data)])
    assert res.exit_code == 1
    assert "no device 'nope'" in res.output
