"""Calcs, intervals, recalculation and reports through the HTTP API of a running gateway: a day
with several trips posted as messages, like a device's."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import pytest

from sinogate.analytics.reports import SUMMARY_COLUMNS
from tests.analytics.tracks import T0, Route
from tests.api.conftest import Api

TRIPS, STOPS, VISITS, OVERSPEED, IGNITION, OFFLINE = 1, 2, 3, 4, 5, 6
DAY = 1_749_945_600.0  # 2025-06-15 00:00 UTC, the day of T0


def the_day() -> list[dict[str, Any]]:
    """Out of the depot at 60 km/h, back in town, a hop, then 40 km with a stretch above 100 km/h."""
    r = Route()
    on, off = {"engine.ignition.status": True}, {"engine.ignition.status": False}
    return (r.park(600, **off) + r.drive(1200, 60, **on) + r.park(900, **off) + r.drive(60, 20, **on)
            + r.park(900, **off) + r.drive(900, 80, **on) + r.drive(300, 110, **on) + r.drive(600, 80, **on)
            + r.park(1200, **off))


def post(api: Api, device: dict[str, Any], messages: list[dict[str, Any]], batch: int = 25) -> None:
    for i in range(0, len(messages), batch):
        api.ok("POST", f"/gw/devices/{device['id']}/messages", json=messages[i:i + batch])


def intervals(api: Api, calc: str, device: dict[str, Any], which: str = "all", **data: Any) -> list[dict[str, Any]]:
    return api.ok("GET", f"/gw/calcs/{calc}/devices/{device['id']}/intervals/{which}", data or None)


def without_ids(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Without ids (a recalculation stores new ones) and the open offline interval (it ends now)."""
    return sorted(({k: v for k, v in i.items() if k != "id"} for i in items
                   if not (i["active"] and i["calc.id"] == OFFLINE)), key=lambda i: (i["calc.id"], i["begin"]))


@pytest.fixture(scope="module")
def day(api: Api) -> dict[str, Any]:
    """The device, after the day was posted, with a depot fence and a user calc in place."""
    device = api.create_device("777000000000001", settings={"speed_limit": 100})
    fence = api.ok("POST", "/gw/geofences", json=[{
        "name": "depot", "geometry": {"type": "circle", "center": {"lat": 52.0, "lon": 13.0}, "radius": 0.3},
        "devices": str(device["id"])}])[0]
    calc = api.ok("POST", "/gw/calcs", json=[{
        "name": "fast", "selector": "position.speed > 70", "min_duration": 60,
        "counters": [{"name": "speed.top", "type": "max", "parameter": "position.speed"},
                     {"name": "km", "type": "distance"}]}])[0]
    messages = the_day()
    post(api, device, messages[:100])
    post(api, device, [{**messages[100], "sos.alarm": True}])
    post(api, device, messages[101:])
    return {"device": device, "fence": fence, "calc": calc, "messages": messages}


def test_calcs_are_listed_with_the_built_ins_first(api: Api, day: dict[str, Any]) -> None:
    calcs = api.ok("GET", "/gw/calcs")
    assert [(c["id"], c["name"], c["builtin"]) for c in calcs[:6]] == [
        (1, "trips", True), (2, "stops", True), (3, "geofence-visits", True), (4, "overspeed", True),
        (5, "ignition", True), (6, "offline", True)]
    assert calcs[0]["options"] == {"trip_speed": 5.0, "trip_use_ignition": False, "stop_min_duration": 300.0,
                                   "trip_max_gap": 3600.0, "trip_min_distance": 0.5}
    user = day["calc"]
    assert user["id"] >= 100 and user["builtin"] is False and user["selector"] == "position.speed > 70"
    assert calcs[6:] == [user]
    assert api.ok("GET", "/gw/calcs/trips,stops") == calcs[:2]
    assert api.ok("GET", f"/gw/calcs/{user['id']}") == [user]
    assert api.ok("GET", "/gw/calcs/name=geo*") == [calcs[2]]


def test_the_day_gives_its_trips_stops_and_visits(api: Api, day: dict[str, Any]) -> None:
    device = day["device"]
    trips = intervals(api, "trips", device)
    assert [(t["begin"] - T0, t["end"] - T0, t["active"]) for t in trips] == [(600, 1860, False), (3660, 5520, False)]
    assert [t["distance"] for t in trips] == pytest.approx([20.0, 900 / 3600 * 80 + 300 / 3600 * 110 + 600 / 3600 * 80],
                                                          rel=0.003)
    assert trips[1]["max.speed"] == 110.0
    assert all(isinstance(t["id"], int) and t["calc.id"] == TRIPS and t["device.id"] == device["id"] for t in trips)
    stops = intervals(api, "stops", device)
    assert [(s["begin"] - T0, s["end"] - T0, s["active"]) for s in stops] == [
        (60, 600, False), (1860, 3660, False), (5520, 6660, True)]
    assert "id" not in stops[-1]
    visits = intervals(api, "geofence-visits", device)
    assert [(v["geofence.id"], v["geofence.name"], v["begin"] - T0, v["active"]) for v in visits] == [
        (day["fence"]["id"], "depot", 60, False)]
    [episode] = intervals(api, "overspeed", device)
    assert episode["speed.limit"] == 100.0 and episode["max.speed"] == 110.0 and episode["duration"] == 270
    [fast] = intervals(api, str(day["calc"]["id"]), device)
    assert fast["speed.top"] == 110.0 and fast["km"] == fast["distance"]
    ignition = intervals(api, "ignition", device)
    assert [(i["begin"] - T0, i["end"] - T0) for i in ignition] == [(630, 1800), (2730, 2760), (3690, 5460)]


def test_intervals_by_span_id_and_active(api: Api, day: dict[str, Any]) -> None:
    device = day["device"]
    everything = intervals(api, "all", device)
    assert len(everything) == len({(i["calc.id"], i["begin"], i.get("geofence.id")) for i in everything})
    assert [i["begin"] for i in everything] == sorted(i["begin"] for i in everything)
    morning = intervals(api, "trips,stops", device, begin=T0, end=T0 + 1000)
    assert [(i["calc.id"], i["begin"] - T0) for i in morning] == [(STOPS, 60), (TRIPS, 600)]
    trips = intervals(api, "trips", device)
    assert intervals(api, "all", device, which=str(trips[1]["id"])) == [trips[1]]
    active = intervals(api, "all", device, which="active")
    # Parked, and silent (its last message is from 2025): offline until now.
    assert {i["calc.id"] for i in active} == {STOPS, OFFLINE}
    offline = next(i for i in active if i["calc.id"] == OFFLINE)
    assert offline["begin"] == day["messages"][-1]["timestamp"] and offline["end"] > time.time() - 60
    assert intervals(api, "trips", device, reverse=True, count=1) == [trips[1]]
    assert intervals(api, "trips", device, fields="begin,distance") == [
        {"begin": t["begin"], "distance": t["distance"]} for t in trips]
    assert intervals(api, "trips", device, filter="distance > 30") == [trips[1]]


def test_trip_events(api: Api, day: dict[str, Any]) -> None:
    events = api.ok("GET", f"/gw/devices/{day['device']['id']}/events", {"types": ["trip.start", "trip.end"]})
    assert [(e["type"], e["begin"] - T0) for e in events] == [
        ("trip.start", 600), ("trip.end", 600), ("trip.start", 3660), ("trip.end", 3660)]
    assert events[1]["duration"] == 1260 and events[1]["distance"] == pytest.approx(20.0, rel=0.003)


def test_the_summary_report(api: Api, day: dict[str, Any]) -> None:
    device = day["device"]
    [row] = api.ok("GET", f"/gw/devices/{device['id']}/reports/summary",
                   {"begin": DAY, "end": DAY + 86400, "period": "day"})
    trips = intervals(api, "trips", device)
    assert row["period"] == "2025-06-15" and row["device.id"] == device["id"]
    assert row["distance"] == pytest.approx(sum(t["distance"] for t in trips), abs=0.002)
    assert (row["driving.time"], row["stop.time"], row["trips"], row["alarms"]) == (3120, 540 + 1800 + 1140, 2, 1)
    assert row["engine.hours"] == pytest.approx((1170 + 30 + 1770) / 3600, abs=0.001)
    assert row["max.speed"] == 110.0 and row["avg.speed"] == pytest.approx(row["distance"] / (3120 / 3600), abs=0.01)
    # A summary in another time zone splits the day elsewhere.
    rows = api.ok("GET", f"/gw/devices/{device['id']}/reports/summary",
                  {"begin": DAY - 86400, "end": DAY + 86400, "tz": "America/New_York"})
    assert [r["period"] for r in rows] == ["2025-06-13", "2025-06-14", "2025-06-15"]
    assert sum(r["trips"] for r in rows) == 2
    bad = api.request("GET", f"/gw/devices/{device['id']}/reports/summary", {"begin": DAY, "end": DAY + 1,
                                                                           "tz": "Mars/Olympus"})
    assert bad.status_code == 400 and "time zone" in bad.json()["errors"][0]["reason"]
    assert api.request("GET", f"/gw/devices/{device['id']}/reports/summary", {"end": DAY}).status_code == 400


def _typed(value: str) -> Any:
    if value == "":
        return None
    if value in ("true", "false"):
        return value == "true"
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


@pytest.mark.parametrize("report", ["summary", "trips", "stops", "events"])
def test_reports_as_csv_and_xlsx_hold_the_json_rows(api: Api, day: dict[str, Any], report: str) -> None:
    device = day["device"]
    path = f"/gw/devices/{device['id']}/reports/{report}"
    data = {"begin": DAY, "end": DAY + 86400}
    rows = api.ok("GET", path, data)
    assert rows
    as_csv = api.request("GET", path, data, params={"format": "csv"})
    assert as_csv.status_code == 200 and as_csv.headers["content-type"] == "text/csv; charset=utf-8"
    assert as_csv.headers["content-disposition"] == f'attachment; filename="{report}_2025-06-15_2025-06-15.csv"'
    parsed = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert [{k: _typed(v) for k, v in r.items() if v != ""} for r in parsed] == [
        {k: v for k, v in r.items() if v is not None} for r in rows]
    as_xlsx = api.request("GET", path, data, params={"format": "xlsx"})
    assert as_xlsx.headers["content-type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert as_xlsx.headers["content-disposition"].endswith(f'filename="{report}_2025-06-15_2025-06-15.xlsx"')
    sheet = openpyxl.load_workbook(io.BytesIO(as_xlsx.content), read_only=True).active
    assert sheet is not None
    table = [list(r) for r in sheet.iter_rows(values_only=True)]
    header = table[0]
    if report == "summary":
        assert tuple(header) == SUMMARY_COLUMNS
    assert [{k: v for k, v in zip(header, r, strict=True) if v is not None} for r in table[1:]] == [
        {k: v for k, v in r.items() if v is not None} for r in rows]


def test_recalculation_returns_the_same_intervals(api: Api, day: dict[str, Any]) -> None:
    device = day["device"]
    before = intervals(api, "all", device)
    [job] = api.ok("POST", f"/gw/calcs/all/devices/{device['id']}/recalculate", json={"begin": T0 - 3600})
    assert job["status"] == "done" and job["device.id"] == device["id"]
    assert job["messages"] == len(day["messages"]) and job["deleted"] == job["intervals"]
    after = intervals(api, "all", device)
    assert without_ids(after) == without_ids(before)
    assert {i["id"] for i in after if "id" in i}.isdisjoint({i["id"] for i in before if "id" in i})
    [again] = api.ok("GET", f"/gw/calcs/recalculations/{job['id']}")
    assert again["status"] == "done"


def test_a_late_batch_is_recalculated_by_itself(api: Api) -> None:
    device = api.create_device("777000000000002")
    messages = the_day()
    blind = [m for m in messages if T0 + 3000 <= m["timestamp"] < T0 + 4500]
    post(api, device, [m for m in messages if m["timestamp"] < T0 + 3000])
    post(api, device, [m for m in messages if m["timestamp"] >= T0 + 4500])
    # The second trip seems to depart from where the hop stopped, when the device fell silent.
    assert [(t["begin"] - T0, t["end"] - T0) for t in intervals(api, "trips", device)] == [(600, 1860), (2940, 5520)]
    post(api, device, blind, batch=100)  # arrives late: stored, marked, recalculated by the sweep
    server = api.server
    server.run(server.runtime.recalc.sweep())  # what the runtime does every 10 s
    expected = [(600, 1860), (3660, 5520)]
    deadline = time.time() + 20
    trips = intervals(api, "trips", device)
    while time.time() < deadline and [(t["begin"] - T0, t["end"] - T0) for t in trips] != expected:
        time.sleep(0.1)
        trips = intervals(api, "trips", device)
    assert [(t["begin"] - T0, t["end"] - T0) for t in trips] == expected


def test_calc_changes_are_checked(api: Api, day: dict[str, Any]) -> None:
    def refused(method: str, path: str, status: int, token: str | None = None, **kw: Any) -> str:
        r = api.request(method, path, token=token, **kw)
        assert r.status_code == status, r.text
        return str(r.json()["errors"][0]["reason"])

    assert "built in" in refused("DELETE", "/gw/calcs/trips", 400)
    assert "built in" in refused("PUT", "/gw/calcs/1", 400, json={"name": "x"})
    assert "selector" in refused("POST", "/gw/calcs", 400, json=[{"name": "x", "selector": "position.speed >"}])
    assert refused("POST", "/gw/calcs", 400, json=[{"name": "x", "selector": "a", "colour": "red"}])
    assert refused("GET", "/gw/calcs/999", 404)
    read_only = api.token_for(name="ro", read_only=True)
    assert refused("POST", "/gw/calcs", 403, read_only, json=[{"name": "x", "selector": "a > 1"}])
    limited = api.token_for(name="lim", devices=str(day["device"]["id"]))
    assert refused("POST", "/gw/calcs", 403, limited, json=[{"name": "x", "selector": "a > 1"}])
    made = api.ok("POST", "/gw/calcs", json=[{"name": "temp", "selector": "engine.temperature > 90"}])[0]
    assert api.ok("PUT", f"/gw/calcs/{made['id']}", json={"min_duration": 30})[0]["min_duration"] == 30
    assert api.ok("DELETE", f"/gw/calcs/{made['id']}") == [{"id": made["id"]}]
    assert refused("GET", f"/gw/calcs/{made['id']}", 404)


def test_without_the_calcs_handler_the_calcs_api_says_so(tmp_path: Path, gateway_factory: Any) -> None:
    with (gateway_factory(tmp_path / "data", handlers_disabled=["calcs"]) as server,
          httpx.Client(base_url=server.http_url, headers=server.headers, timeout=10) as http):
        r = http.get("/gw/calcs")
        assert r.status_code == 404 and "handlers_disabled" in r.json()["errors"][0]["reason"]
        body = [{"name": "p", "configuration": {"ident": "778"}, "protocol": "h02"}]
        device = http.post("/gw/devices", json=body).json()["result"][0]
        http.post(f"/gw/devices/{device['id']}/messages", json=the_day()[:50])
        data = json.dumps({"begin": DAY, "end": DAY + 86400})
        [row] = http.get(f"/gw/devices/{device['id']}/reports/summary", params={"data": data}).json()["result"]
        assert row["trips"] == 0 and row["distance"] == 0
