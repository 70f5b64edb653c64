"""Calculators and their intervals, in flespi's shapes.

- ``GET|POST|PUT|DELETE /gw/calcs[/{selector}]``: the built-in calcs (1 trips, 2 stops,
  3 geofence-visits, 4 overspeed, 5 ignition, 6 offline; read-only, configured by handler
  options) and the user's (``{"name", "selector", "min_duration", "max_gap", "counters",
  "devices"}``). Selectors: ``all``, ids ``1,100``, names ``trips,stops`` (wildcards), ``name=…``.
- ``GET /gw/calcs/{calc_sel}/devices/{dev_sel}/intervals/{all|active|ids}?data={"begin","end",
  "count","reverse","fields","filter"}``: stored intervals overlapping [begin, end] plus the open
  ones (``"active": true``, no ``id``), by begin.
- ``POST /gw/calcs/{calc_sel}/devices/{dev_sel}/recalculate`` with ``{"begin", "end"?, "wait"?}``:
  rebuilds intervals from stored messages (``sinogate.analytics.recalc``) in the background,
  waiting up to ``wait`` seconds (default 10) for the result; ``GET
  /gw/calcs/recalculations/{ids}`` tells how queued ones went.

Every token may read; changing calcs needs a token neither read-only nor limited to some devices;
recalculating needs a writing token that may see the devices.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from sinogate.analytics.calcs import Calc, CalcError, CalcRegistry
from sinogate.analytics.intervals import COUNTER_TYPES
from sinogate.analytics.recalc import RecalcBusy, Recalculator
from sinogate.api.context import ApiContext
from sinogate.api.deps import (
    ApiError,
    Auth,
    DataParam,
    authenticate,
    get_context,
    parse_data,
    require_write,
    resolve_devices,
    result,
)
from sinogate.api.views import apply_query, check_text
from sinogate.store.base import NotFound, TimeQuery

router = APIRouter(tags=["calcs"])

DEFAULT_WAIT = 10.0
MAX_WAIT = 60.0


class CounterModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100, description="the key of the value in each interval")
    type: str = Field(pattern=f"^({'|'.join(COUNTER_TYPES)})$",
                      description="first, last, min, max, avg, sum (of a parameter), distance (km) or duration (s)")
    parameter: str | None = Field(None, description="the message parameter (first … sum)")


class CalcCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    name: str = Field(min_length=1, max_length=255)
    selector: str = Field(min_length=1, max_length=4096,
                          description="filter expression; an interval is open while it holds, "
                                      "e.g. \"engine.ignition.status == true && position.speed < 5\"")
    min_duration: float = Field(0, ge=0, description="s: shorter intervals are dropped")
    max_gap: float = Field(0, ge=0, description="s: a gap between messages longer than this closes the interval "
                                                "(0: no limit)")
    counters: list[CounterModel] = Field(default_factory=list, max_length=50)
    devices: str | None = Field(None, min_length=1, max_length=4096, description="device selector (default all)")


class CalcUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    name: str | None = Field(None, min_length=1, max_length=255)
    selector: str | None = Field(None, min_length=1, max_length=4096)
    min_duration: float | None = Field(None, ge=0)
    max_gap: float | None = Field(None, ge=0)
    counters: list[CounterModel] | None = Field(None, max_length=50)
    devices: str | None = Field(None, min_length=1, max_length=4096)


class RecalcBody(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    begin: float = Field(ge=0, lt=1e11, description="UNIX s: rebuild the intervals from here on")
    end: float | None = Field(None, ge=0, lt=1e11, description="UNIX s: the end of the span of interest")
    wait: float = Field(DEFAULT_WAIT, ge=0, le=MAX_WAIT, description="s to wait for the result before answering 202")


def _registry(ctx: ApiContext) -> CalcRegistry:
    if ctx.calcs is None:
        raise ApiError(404, "calcs are disabled on this server (the calcs handler is in handlers_disabled)", 404)
    return ctx.calcs


def _recalculator(ctx: ApiContext) -> Recalculator:
    if ctx.recalc is None:
        raise ApiError(404, "calcs are disabled on this server (the calcs handler is in handlers_disabled)", 404)
    return ctx.recalc


def _select(registry: CalcRegistry, selector: str) -> list[Calc]:
    try:
        return registry.select(selector)
    except NotFound as exc:
        raise ApiError(404, str(exc), 404) from exc
    except CalcError as exc:
        raise ApiError(400, str(exc), 400) from exc


def _require_write(auth: Auth) -> None:
    require_write(auth)
    if auth.limited:
        raise ApiError(403, "a token limited to some devices cannot change calcs", 403)


def _json(ctx: ApiContext, calc: Calc) -> dict[str, Any]:
    return calc.as_json(ctx.calcs.options if ctx.calcs is not None else None)


# --- calcs -----------------------------------------------------------------------------------------

@router.get("/gw/calcs", summary="List every calc (the built-in ones first)")
async def list_calcs(auth: Auth = Depends(authenticate), ctx: ApiContext = Depends(get_context)) -> Response:
    return result([_json(ctx, c) for c in _registry(ctx).all()])


@router.get("/gw/calcs/recalculations/{ids}", summary="Recalculation jobs by id (queued, running, done, failed)")
async def get_recalculations(ids: str, auth: Auth = Depends(authenticate),
                             ctx: ApiContext = Depends(get_context)) -> Response:
    recalc = _recalculator(ctx)
    parts = [p.strip() for p in ids.split(",")]
    if not all(p.isascii() and p.isdigit() for p in parts):
        raise ApiError(400, "recalculations are selected by id: 1,2,3", 400)
    out = []
    for part in parts:
        job = recalc.job(int(part))
        if job is None:
            raise ApiError(404, f"recalculation {part} not found (or long forgotten)", 404)
        if not auth.allows(dict(job.device)):
            raise ApiError(403, f"access to recalculation {part} is denied for this token", 403)
        out.append(job.as_json())
    return result(out)


@router.get("/gw/calcs/{selector}", summary="Get calcs: all | 1,100 | trips,stops | name=trip*")
async def get_calcs(selector: str, auth: Auth = Depends(authenticate),
                    ctx: ApiContext = Depends(get_context)) -> Response:
    return result([_json(ctx, c) for c in _select(_registry(ctx), selector)])


@router.post("/gw/calcs", summary="Create calcs (the body is a JSON array)")
async def create_calcs(body: Annotated[list[CalcCreate], Body(max_length=100)], auth: Auth = Depends(authenticate),
                       ctx: ApiContext = Depends(get_context)) -> Response:
    _require_write(auth)
    registry = _registry(ctx)
    items = [item.model_dump(exclude_none=True) for item in body]
    check_text(items, "calc")
    out = []
    for item in items:
        try:
            out.append(_json(ctx, await registry.create(item)))
        except CalcError as exc:
            raise ApiError(400, f"calc {len(out)}: {exc}", 400) from exc
    return result(out)


@router.put("/gw/calcs/{selector}", summary="Update fields of user calcs (open intervals restart)")
async def put_calcs(selector: str, body: CalcUpdate, auth: Auth = Depends(authenticate),
                    ctx: ApiContext = Depends(get_context)) -> Response:
    _require_write(auth)
    registry = _registry(ctx)
    fields = body.model_dump(exclude_unset=True)
    if any(v is None for k, v in fields.items() if k != "devices"):
        raise ApiError(400, "only devices may be set to null (meaning all devices)", 400)
    check_text(fields, "calc")
    calcs = _select(registry, selector)
    builtin = [c for c in calcs if c.builtin]
    if builtin:
        raise ApiError(400, f"calc {builtin[0].id} ({builtin[0].name}) is built in: configure it with handler options",
                       400)
    out = []
    for calc in calcs:
        try:
            out.append(_json(ctx, await registry.update(calc.id, fields)))
        except CalcError as exc:
            raise ApiError(400, str(exc), 400) from exc
    return result(out)


@router.delete("/gw/calcs/{selector}", summary="Delete user calcs and their intervals (built-ins stay)")
async def delete_calcs(selector: str, auth: Auth = Depends(authenticate),
                       ctx: ApiContext = Depends(get_context)) -> Response:
    _require_write(auth)
    registry = _registry(ctx)
    calcs = _select(registry, selector)
    explicit = selector.strip() != "all"
    if explicit and any(c.builtin for c in calcs):
        calc = next(c for c in calcs if c.builtin)
        raise ApiError(400, f"calc {calc.id} ({calc.name}) is built in and cannot be deleted", 400)
    out = []
    for calc in calcs:
        if calc.builtin:
            continue
        await registry.delete(calc.id)
        await ctx.store.delete_intervals(calc.id)
        out.append({"id": calc.id})
    return result(out)


# --- intervals -------------------------------------------------------------------------------------

def _bound(query_value: float | None, extra: Any, name: str) -> float | None:
    if extra is None:
        return query_value
    if isinstance(extra, bool) or not isinstance(extra, int | float) or not math.isfinite(extra):
        raise ApiError(400, f"data.{name} must be a number (UNIX seconds)", 400)
    return float(extra)


async def active_intervals(ctx: ApiContext, device: dict[str, Any], calc_ids: set[int]) -> list[dict[str, Any]]:
    """The device's open intervals of these calcs (none when calcs are disabled)."""
    if ctx.recalc is None:
        return []
    return [i for i in ctx.recalc.active(device, time.time()) if i["calc.id"] in calc_ids]


async def device_intervals(ctx: ApiContext, device: dict[str, Any], calc_ids: set[int], begin: float | None,
                           end: float | None, active: bool = True) -> list[dict[str, Any]]:
    """Stored and open intervals of the device overlapping [begin, end], by begin (then id)."""
    stored = await ctx.store.intervals(sorted(calc_ids), [device["id"]], TimeQuery(begin, end))
    opened = [i for i in await active_intervals(ctx, device, calc_ids)
              if (begin is None or i["end"] >= begin) and (end is None or i["begin"] <= end)] if active else []
    items = stored + opened
    items.sort(key=lambda i: (i["begin"], i.get("id") or math.inf))
    return items


@router.get("/gw/calcs/{calc_selector}/devices/{device_selector}/intervals/{intervals}",
            summary="Intervals of calcs and devices: all | active | ids (data: begin, end, count, reverse, fields, "
                    "filter)")
async def get_intervals(calc_selector: str, device_selector: str, intervals: str, data: DataParam = None,
                        auth: Auth = Depends(authenticate), ctx: ApiContext = Depends(get_context)) -> Response:
    calcs = _select(_registry(ctx), calc_selector)
    query = parse_data(data, allowed_extra=("begin", "end"))
    begin = _bound(query.from_ts, query.extra.get("begin"), "begin")
    end = _bound(query.to_ts, query.extra.get("end"), "end")
    if begin is not None and end is not None and begin > end:
        raise ApiError(400, "data.begin is after data.end", 400)
    text = intervals.strip()
    ids: set[int] | None = None
    if text not in ("all", "active"):
        parts = [p.strip() for p in text.split(",")]
        if not all(p.isascii() and p.isdigit() for p in parts):
            raise ApiError(400, "intervals are selected by all, active or ids: 1,2,3", 400)
        ids = {int(p) for p in parts}
    devices = resolve_devices(ctx, device_selector, auth)
    calc_ids = {c.id for c in calcs}
    items: list[dict[str, Any]] = []
    for device in devices:
        if text == "active":
            items += [i for i in await active_intervals(ctx, device, calc_ids)
                      if (begin is None or i["end"] >= begin) and (end is None or i["begin"] <= end)]
        else:
            items += await device_intervals(ctx, device, calc_ids, begin, end, active=ids is None)
    if ids is not None:
        items = [i for i in items if i.get("id") in ids]
    if len(devices) > 1:
        items.sort(key=lambda i: (i["begin"], i.get("id") or math.inf))
    if query.reverse:
        items.reverse()
    return result(apply_query(items, query))


# --- recalculation ---------------------------------------------------------------------------------

@router.post("/gw/calcs/{calc_selector}/devices/{device_selector}/recalculate",
             summary="Rebuild intervals from stored messages (body: begin, end, wait)")
async def recalculate(calc_selector: str, device_selector: str, body: RecalcBody, auth: Auth = Depends(authenticate),
                      ctx: ApiContext = Depends(get_context)) -> Response:
    require_write(auth)
    recalc = _recalculator(ctx)
    calcs = _select(_registry(ctx), calc_selector)
    if body.end is not None and body.end < body.begin:
        raise ApiError(400, "end is before begin", 400)
    devices = resolve_devices(ctx, device_selector, auth)
    if not recalc.room_for(devices):
        raise ApiError(429, f"{recalc.pending} recalculations are waiting; there is no room for {len(devices)} more: "
                            "try again later or select fewer devices", 429)
    try:
        jobs = [recalc.submit(device, [c.id for c in calcs], body.begin, body.end) for device in devices]
    except RecalcBusy as exc:
        raise ApiError(429, str(exc), 429) from exc
    if jobs and body.wait > 0:
        waiting = asyncio.gather(*(job.done.wait() for job in jobs))
        try:
            await asyncio.wait_for(waiting, body.wait)
        except TimeoutError:
            pass
    done = all(job.done.is_set() for job in jobs)
    return result([job.as_json() for job in jobs], status=200 if done else 202)
