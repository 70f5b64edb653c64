"""Reports over intervals and events: the per-period summary, and tables in JSON, CSV or XLSX.

Summary row per device and period (``day``, ``week`` from Monday, ``month``, or ``total``; periods
start at midnight in the report's time zone, ``tz``, an IANA name, default UTC):

- ``distance`` (km) and ``driving.time`` (s): the trips overlapping the period, each counted for
  the part of its duration inside the period (a trip across midnight is split in proportion);
- ``trips``: trips that begin in the period; ``max.speed``: the highest of the trips overlapping
  it; ``avg.speed`` (km/h): ``distance`` over ``driving.time``;
- ``stop.time`` (s): stops, clipped to the period; ``engine.hours`` (h): ignition-on intervals,
  clipped to the period;
- ``alarms``: ``alarm`` events in the period.

Open (active) intervals count up to their last message.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

PERIODS = ("day", "week", "month", "total")
FORMATS = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
SUMMARY_COLUMNS = (
    "device.id", "device.name", "period", "begin", "end", "distance", "driving.time", "stop.time", "engine.hours",
    "max.speed", "avg.speed", "trips", "alarms",
)
INTERVAL_COLUMNS = (
    "id", "device.id", "device.name", "calc.id", "begin", "begin.time", "end", "end.time", "duration", "active",
    "distance", "max.speed", "avg.speed", "begin.position.latitude", "begin.position.longitude",
    "end.position.latitude", "end.position.longitude",
)
EVENT_COLUMNS = ("id", "device.id", "device.name", "timestamp", "time", "type")
MAX_SPAN = 366 * 86400.0


class ReportError(ValueError):
    """A report request that cannot be served; the message says why."""


def zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ReportError(f"unknown time zone {name!r}: use an IANA name such as Europe/Berlin") from exc


def periods(begin: float, end: float, period: str, tz: ZoneInfo) -> list[tuple[str, float, float]]:
    """``(label, begin, end)`` of the periods covering [begin, end), cut to it."""
    if period not in PERIODS:
        raise ReportError(f"period must be one of {', '.join(PERIODS)}")
    if end <= begin:
        raise ReportError("end must be after begin")
    if end - begin > MAX_SPAN:
        raise ReportError("a report spans at most 366 days")
    if period == "total":
        return [(_iso(begin, tz)[:10] + "/" + _iso(end, tz)[:10], begin, end)]
    local = datetime.fromtimestamp(begin, tz).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "week":
        local -= timedelta(days=local.weekday())
    elif period == "month":
        local = local.replace(day=1)
    out = []
    while local.timestamp() < end:
        if period == "day":
            following = local + timedelta(days=1)
            label = local.date().isoformat()
        elif period == "week":
            following = local + timedelta(days=7)
            year, week, _ = local.isocalendar()
            label = f"{year}-W{week:02d}"
        else:
            following = (local.replace(day=28) + timedelta(days=4)).replace(day=1)
            label = local.strftime("%Y-%m")
        # Aware arithmetic is wall-clock arithmetic: the next period starts at local midnight even
        # across a DST change.
        out.append((label, max(begin, local.timestamp()), min(end, following.timestamp())))
        local = following
    return out


def _iso(ts: float, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(ts, tz).isoformat(timespec="seconds")


def _overlap(item: Mapping[str, Any], p0: float, p1: float) -> float:
    return max(0.0, min(float(item["end"]), p1) - max(float(item["begin"]), p0))


def summary(device: Mapping[str, Any], trips: Sequence[Mapping[str, Any]], stops: Sequence[Mapping[str, Any]],
            ignition: Sequence[Mapping[str, Any]], alarms: Sequence[Mapping[str, Any]],
            spans: Iterable[tuple[str, float, float]]) -> list[dict[str, Any]]:
    """One summary row per period for one device."""
    rows = []
    for label, p0, p1 in spans:
        distance = driving = 0.0
        count = 0
        top: float | None = None
        for trip in trips:
            part = _overlap(trip, p0, p1)
            inside = p0 <= float(trip["begin"]) < p1
            if part <= 0 and not inside:
                continue
            length = float(trip["end"]) - float(trip["begin"])
            distance += float(trip.get("distance") or 0.0) * (part / length if length > 0 else 1.0)
            driving += part
            count += inside
            speed = trip.get("max.speed")
            if isinstance(speed, int | float):
                top = speed if top is None else max(top, speed)
        rows.append({
            "device.id": device["id"], "device.name": device.get("name"), "period": label, "begin": p0, "end": p1,
            "distance": round(distance, 3), "driving.time": round(driving, 3),
            "stop.time": round(sum(_overlap(s, p0, p1) for s in stops), 3),
            "engine.hours": round(sum(_overlap(i, p0, p1) for i in ignition) / 3600.0, 3),
            "max.speed": top, "avg.speed": round(distance / (driving / 3600.0), 2) if driving > 0 else None,
            "trips": count, "alarms": sum(1 for e in alarms if p0 <= float(e["timestamp"]) < p1),
        })
    return rows


def interval_rows(device: Mapping[str, Any], items: Iterable[Mapping[str, Any]], tz: ZoneInfo) -> list[dict[str, Any]]:
    out = []
    for item in items:
        row = {key: item.get(key) for key in INTERVAL_COLUMNS}
        row["device.name"] = device.get("name")
        row["begin.time"] = _iso(float(item["begin"]), tz)
        row["end.time"] = _iso(float(item["end"]), tz)
        out.append(row)
    return out


def event_rows(device: Mapping[str, Any], events: Iterable[Mapping[str, Any]], tz: ZoneInfo) -> list[dict[str, Any]]:
    out = []
    for event in events:
        row = {key: event.get(key) for key in EVENT_COLUMNS}
        row["device.name"] = device.get("name")
        row["time"] = _iso(float(event["timestamp"]), tz)
        for key, value in event.items():
            if key not in row and key != "ident":
                row[key] = value
        out.append(row)
    return out


def columns(rows: Sequence[Mapping[str, Any]], first: Sequence[str]) -> list[str]:
    """``first``, then every other key of the rows in order of appearance."""
    seen = dict.fromkeys(first)
    for row in rows:
        for key in row:
            seen.setdefault(key)
    return list(seen)


def _cell(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def to_csv(rows: Sequence[Mapping[str, Any]], header: Sequence[str]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        values = []
        for key in header:
            value = _cell(row.get(key))
            values.append("" if value is None else ("true" if value is True else "false" if value is False
                                                    else repr(value) if isinstance(value, float) else value))
        writer.writerow(values)
    return buffer.getvalue().encode("utf-8")


def to_xlsx(rows: Sequence[Mapping[str, Any]], header: Sequence[str], sheet: str) -> bytes:
    import xlsxwriter

    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, {"in_memory": True, "strings_to_numbers": False, "strings_to_formulas": False,
                                        "strings_to_urls": False, "nan_inf_to_errors": True})
    page = book.add_worksheet(sheet[:31])
    bold = book.add_format({"bold": True})
    page.write_row(0, 0, list(header), bold)
    page.freeze_panes(1, 0)
    for r, row in enumerate(rows, start=1):
        for c, key in enumerate(header):
            value = _cell(row.get(key))
            if value is None:
                continue
            if isinstance(value, bool):
                page.write_boolean(r, c, value)
            elif isinstance(value, int | float):
                page.write_number(r, c, value)
            else:
                page.write_string(r, c, value)
    page.set_column(0, max(0, len(header) - 1), 14)
    book.close()
    return buffer.getvalue()
