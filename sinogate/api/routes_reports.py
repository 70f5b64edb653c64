"""Reports per device: ``GET /gw/devices/{sel}/reports/{summary|trips|stops|events}``.

``data={"begin", "end", "period", "tz"}``: the span (UNIX s, required, at most 366 days), the
summary's period (``day`` default, ``week``, ``month``, ``total``) and the time zone of periods
and of the ``*.time`` columns (IANA name, default UTC). ``format=json`` (default, the usual
envelope), ``csv`` or ``xlsx`` (a download named ``<report>_<first day>_<last day>.<ext>``). What
each summary column means: ``sinogate.analytics.reports``.
"""

from __future__ import annotations

import asyncio
import math
from datetime import datetime
from enum import StrEnum
from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from sinogate.analytics.calcs import IGNITION, STOPS, TRIPS
from sinogate.analytics.reports import (
    EVENT_COLUMNS,
    FORMATS,
    INTERVAL_COLUMNS,
    SUMMARY_COLUMNS,
    ReportError,
    columns,
    event_rows,
    interval_rows,
    periods,
    summary,
    to_csv,
    to_xlsx,
    zone,
)
from sinogate.api.context import ApiContext
from sinogate.api.deps import ApiError, Auth, DataParam, authenticate, get_context, parse_data, resolve_devices, result
from sinogate.api.routes_calcs import device_intervals
from sinogate.store.base import TimeQuery

router = APIRouter(tags=["reports"])


class Report(StrEnum):
    summary = "summary"
    trips = "trips"
    stops = "stops"
    events = "events"


class Format(StrEnum):
    json = "json"
    csv = "csv"
    xlsx = "xlsx"


def _time(obj: dict[str, Any], name: str, fallback: float | None) -> float:
    value = obj.get(name, fallback)
    if value is None:
        raise ApiError(400, f"data.{name} is required (UNIX seconds)", 400)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ApiError(400, f"data.{name} must be a number (UNIX seconds)", 400)
    return float(value)


@router.get("/gw/devices/{selector}/reports/{report}",
            summary="Reports: summary per period (distance, driving/stop time, engine hours, speeds, trips, alarms), "
                    "trips, stops, events; format json | csv | xlsx")
async def get_report(
    selector: str,
    report: Report,
    data: DataParam = None,
    format: Format = Query(Format.json, description="json, csv or xlsx"),
    auth: Auth = Depends(authenticate),
    ctx: ApiContext = Depends(get_context),
) -> Response:
    query = parse_data(data, allowed_extra=("begin", "end", "period", "tz", "types"))
    extra = query.extra
    begin = _time(extra, "begin", query.from_ts)
    end = _time(extra, "end", query.to_ts)
    period = extra.get("period") or "day"
    tz_name = extra.get("tz")
    if not isinstance(period, str) or (tz_name is not None and not isinstance(tz_name, str)):
        raise ApiError(400, "data.period and data.tz are strings", 400)
    try:
        tz = zone(tz_name)
        spans = periods(begin, end, period, tz)
    except ReportError as exc:
        raise ApiError(400, str(exc), 400) from exc
    devices = resolve_devices(ctx, selector, auth)
    rows: list[dict[str, Any]] = []
    first: tuple[str, ...]
    if report is Report.summary:
        first = SUMMARY_COLUMNS
        for device in devices:
            found = await device_intervals(ctx, device, {TRIPS, STOPS, IGNITION}, begin, end)
            alarms = await ctx.store.events([device["id"]], TimeQuery(begin, end), ["alarm"])
            rows += summary(device, [i for i in found if i["calc.id"] == TRIPS],
                            [i for i in found if i["calc.id"] == STOPS], [i for i in found if i["calc.id"] == IGNITION],
                            [a for a in alarms if a["timestamp"] < end], spans)
    elif report in (Report.trips, Report.stops):
        first = INTERVAL_COLUMNS
        calc_id = TRIPS if report is Report.trips else STOPS
        for device in devices:
            rows += interval_rows(device, await device_intervals(ctx, device, {calc_id}, begin, end), tz)
    else:
        first = EVENT_COLUMNS
        types = extra.get("types")
        if types is not None and (not isinstance(types, list) or not all(isinstance(t, str) for t in types)):
            raise ApiError(400, "data.types must be a list of event types", 400)
        for device in devices:
            rows += event_rows(device, await ctx.store.events([device["id"]], TimeQuery(begin, end), types), tz)
    if query.filter is not None:
        rows = [r for r in rows if query.filter.matches(r)]
    if query.fields is not None:
        first = tuple(query.fields)
        rows = [query.project(r) for r in rows]
    if format is Format.json:
        return result(rows)
    header = columns(rows, first) if query.fields is None else list(first)
    days = f"{datetime.fromtimestamp(begin, tz).date()}_{datetime.fromtimestamp(max(begin, end - 1), tz).date()}"
    filename = f"{report.value}_{days}.{format.value}"
    if format is Format.csv:
        body = to_csv(rows, header)
    else:
        body = await asyncio.to_thread(to_xlsx, rows, header, report.value)
    return Response(body, media_type=FORMATS[format.value],
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})
