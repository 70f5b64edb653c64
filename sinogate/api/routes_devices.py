"""``/gw/devices``: device CRUD and each device's messages, telemetry, logs, packets and connections."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from sinogate.api.context import ApiContext
from sinogate.api.deps import (
    ApiError,
    Auth,
    DataParam,
    DataQuery,
    JsonResponse,
    authenticate,
    get_context,
    parse_data,
    raw_result,
    require_write,
    resolve_devices,
    result,
)
from sinogate.api.errors import as_api_error
from sinogate.api.views import (
    all_sessions,
    apply_query_bounded,
    bounded_time_query,
    check_text,
    device_view,
    log_view,
    packet_view,
    parse_fields,
)
from sinogate.codecs import PROTOCOL_IDS
from sinogate.ingest import Source
from sinogate.store.base import Message, Store, StoreError, TimeQuery

router = APIRouter(tags=["devices"])

SCAN_CHUNK = 2000  # messages a filtered scan reads from the store at a time (at least)
SCAN_WINDOW_MAX = 20_000  # … and at most (a selector of many devices reads more at a time)
SLICE_SECONDS = 0.02  # longest stretch of filter evaluation before the event loop gets a turn
SCANS_AT_ONCE = 2  # filtered scans running at a time (more wait their turn)

Protocol = Literal["h02", "jt808"]


class DeviceConfiguration(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ident: str | int = Field(description="IMEI / terminal phone number the device reports")
    phone: str | None = Field(None, max_length=64, description="SIM phone number (for SMS commands)")


class DeviceConfigurationUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ident: str | int | None = None
    phone: str | None = Field(None, max_length=64)


class DeviceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, max_length=256)
    configuration: DeviceConfiguration
    protocol: Protocol | None = Field(None, description="h02 or jt808")
    protocol_name: Protocol | None = Field(None, description="alias of protocol")
    model: str | None = Field(None, max_length=128)
    enabled: bool = True
    messages_ttl: int | None = Field(None, ge=0, le=10 * 365 * 86400)
    settings: dict[str, Any] | None = None


class DeviceUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, max_length=256)
    configuration: DeviceConfigurationUpdate | None = None
    protocol: Protocol | None = None
    protocol_name: Protocol | None = None
    model: str | None = Field(None, max_length=128)
    enabled: bool | None = None
    messages_ttl: int | None = Field(None, ge=0, le=10 * 365 * 86400)
    settings: dict[str, Any] | None = None


def _device_fields(body: DeviceCreate | DeviceUpdate, partial: bool) -> dict[str, Any]:
    data = body.model_dump(exclude_unset=True)
    fields: dict[str, Any] = {}
    conf = data.pop("configuration", None) or {}
    if conf.get("ident") is not None:
        fields["ident"] = str(conf["ident"])
    if "phone" in conf:
        fields["phone"] = conf["phone"]
    protocol = data.pop("protocol", None) or data.pop("protocol_name", None)
    data.pop("protocol_name", None)
    if protocol is not None:
        fields["protocol"] = protocol
    for key in ("name", "model", "enabled", "messages_ttl", "settings"):
        if key in data:
            fields[key] = data[key]
    if not partial:
        if "protocol" not in fields:
            raise ApiError(400, "a device needs a protocol (h02 or jt808)", 400)
        fields.setdefault("name", fields.get("ident"))
        fields.setdefault("enabled", True)
    check_text(fields, "device")
    return fields


# --- devices ---------------------------------------------------------------------------------------

FieldsQuery = Annotated[str | None, Query(description="comma list of fields, e.g. id,name,connected; "
                                                      "'commands' adds each device's command catalog")]
LimitQuery = Annotated[int | None, Query(ge=1, le=100_000, description="devices per page (default: "
                                                                       "api_devices_page, 1000)")]
OffsetQuery = Annotated[int, Query(ge=0, description="devices to skip (the previous page's next_offset)")]


def _device_page(ctx: ApiContext, devices: list[dict[str, Any]], fields: str | None, limit: int | None,
                 offset: int) -> Response:
    """One page of devices by id; ``next_offset`` in the body and ``X-Total-Count`` say what is left."""
    names = parse_fields(fields)
    size = limit or ctx.devices_page
    devices = sorted(devices, key=lambda d: d["id"])
    page = [device_view(d, names) for d in devices[offset:offset + size]]
    body: dict[str, Any] = {"result": page}
    if offset + size < len(devices):
        body["next_offset"] = offset + size
    return JsonResponse(body, headers={"X-Total-Count": str(len(devices))})


@router.get("/gw/devices", summary="List devices, a page at a time (limit, offset)")
async def list_devices(
    fields: FieldsQuery = None,
    limit: LimitQuery = None,
    offset: OffsetQuery = 0,
    auth: Auth = Depends(authenticate),
    ctx: ApiContext = Depends(get_context),
) -> Response:
    return _device_page(ctx, resolve_devices(ctx, "all", auth), fields, limit, offset)


@router.post("/gw/devices", summary="Create devices (the body is a JSON array)")
async def create_devices(
    body: Annotated[list[DeviceCreate], Body(max_length=1000)],
    auth: Auth = Depends(authenticate),
    ctx: ApiContext = Depends(get_context),
) -> Response:
    require_write(auth)
    if auth.limited:
        raise ApiError(403, "a token limited to some devices cannot create devices", 403)
    prepared = [_device_fields(item, partial=False) for item in body]
    created, errors = [], []
    for fields in prepared:
        try:
            created.append(device_view(await ctx.devices.create(fields)))
        except StoreError as exc:
            err = as_api_error(exc)
            errors.append({"code": err.code, "reason": err.reason, "ident": fields.get("ident")})
    if errors and not created:
        return result([], status=errors[0]["code"] if errors[0]["code"] in (400, 409) else 400, errors=errors)
    return result(created, errors=errors or None)


@router.get("/gw/devices/{selector}", summary="Get devices, a page at a time (limit, offset)")
async def get_devices(
    selector: str,
    fields: FieldsQuery = None,
    limit: LimitQuery = None,
    offset: OffsetQuery = 0,
    auth: Auth = Depends(authenticate),
    ctx: ApiContext = Depends(get_context),
) -> Response:
    return _device_page(ctx, resolve_devices(ctx, selector, auth), fields, limit, offset)


async def _update(ctx: ApiContext, selector: str, auth: Auth, body: DeviceUpdate, merge: bool) -> Response:
    require_write(auth)
    fields = _device_fields(body, partial=True)
    if auth.limited and ("ident" in fields or "protocol" in fields):
        # Re-pointing a device at another tracker's ident would hand that tracker's data to a
        # token that was never given it.
        raise ApiError(403, "changing a device's ident or protocol needs a token that covers every device", 403)
    devices = resolve_devices(ctx, selector, auth)
    out = []
    for device in devices:
        changes = dict(fields)
        if merge and "settings" in changes:
            changes["settings"] = {**(device.get("settings") or {}), **(changes["settings"] or {})}
        updated = await ctx.devices.update(device["id"], changes)
        if changes.get("enabled") is False:
            session = ctx.session_for(device["id"])
            if session is not None:
                session.close("device disabled")
        out.append(device_view(updated))
    return result(out)


@router.put("/gw/devices/{selector}", summary="Update fields of devices")
async def put_devices(
    selector: str,
    body: DeviceUpdate,
    auth: Auth = Depends(authenticate),
    ctx: ApiContext = Depends(get_context),
) -> Response:
    return await _update(ctx, selector, auth, body, merge=False)


@router.patch("/gw/devices/{selector}", summary="Update devices, merging settings")
async def patch_devices(
    selector: str,
    body: DeviceUpdate,
    auth: Auth = Depends(authenticate),
    ctx: ApiContext = Depends(get_context),
) -> Response:
    return await _update(ctx, selector, auth, body, merge=True)


@router.delete("/gw/devices/{selector}", summary="Delete devices (their connections are closed)")
async def delete_devices(
    selector: str, auth: Auth = Depends(authenticate), ctx: ApiContext = Depends(get_context)
) -> Response:
    require_write(auth)
    out = []
    for device in resolve_devices(ctx, selector, auth):
        session = ctx.session_for(device["id"])
        if session is not None:
            session.close("device deleted")
        await ctx.devices.delete(device["id"])
        out.append({"id": device["id"]})
    return result(out)


# --- messages --------------------------------------------------------------------------------------

def _too_many(limit: int, filtered: bool) -> ApiError:
    what = "the filter would read" if filtered else "the range holds"
    return ApiError(400, f"{what} more than {limit} messages (api_scan_max): narrow the range (data.from, "
                         f"data.to), the devices, or give a smaller data.count", 400)


async def _scan(store: Store, device_ids: list[int] | None, query: DataQuery,
                protocol: str | None) -> AsyncIterator[Message]:
    """The messages of the range in order (``reverse`` too), read window by window, never the whole
    range at once. A window is a span of device time holding about ``target`` messages: it widens
    while windows come back sparse and narrows when one is full; a full window goes on from its
    last timestamp, skipping the messages of that timestamp already given (the store orders by
    timestamp, then id). Each window is one indexed range query per device, so the whole scan
    reads each message about once."""
    target = SCAN_WINDOW_MAX if device_ids is None else min(SCAN_WINDOW_MAX, max(SCAN_CHUNK, 2 * len(device_ids)))
    lo, hi = query.from_ts, query.to_ts
    if lo is None or hi is None:  # the bounds the range really has
        oldest = await store.messages(device_ids, TimeQuery(lo, hi, 1, False), protocol)
        newest = await store.messages(device_ids, TimeQuery(lo, hi, 1, True), protocol)
        if not oldest or not newest:
            return
        lo = float(oldest[0]["timestamp"]) if lo is None else lo
        hi = float(newest[0]["timestamp"]) if hi is None else hi
    back = query.reverse
    edge = hi if back else lo  # where the next window starts
    skip = 0  # messages with the timestamp ``edge`` already given
    width = 60.0
    while (edge >= lo) if back else (edge <= hi):
        other = max(edge - width, lo) if back else min(edge + width, hi)
        want = target + skip
        rows = await store.messages(device_ids, TimeQuery(other, edge, want, True) if back
                                    else TimeQuery(edge, other, want, False), protocol)
        fresh = rows[skip:]
        for m in fresh:
            yield m
        if len(rows) < want:  # the window is done: the next starts right after it
            edge = math.nextafter(other, -math.inf if back else math.inf)
            skip = 0
            if len(rows) < target // 4:
                width *= 4
            continue
        last = float(rows[-1]["timestamp"])
        skip = skip + len(fresh) if last == edge else sum(1 for m in rows if m["timestamp"] == last)
        edge = last
        width = max(width / 2, 0.001)


async def device_messages(ctx: ApiContext, device_ids: list[int] | None, query: DataQuery,
                          protocol: str | None = None) -> Response:
    """Stored messages of a range. Bounded work: at most ``ctx.scan_max`` messages are read (400
    above: narrow the range); a filter is evaluated over chunks, giving the event loop back every
    ``SLICE_SECONDS``, and stops at ``count``."""
    store = ctx.store
    limit = ctx.scan_max
    if query.filter is None:
        tq = query.time_query()
        bounded = tq.count is not None and tq.count <= limit
        if not bounded:
            tq = TimeQuery(tq.from_ts, tq.to_ts, limit + 1, tq.reverse)
        if query.fields is None:
            # fast path: splice the stored JSON text into the body without parsing it
            rows = await store.messages_raw(device_ids, tq, protocol)
            if len(rows) > limit:
                raise _too_many(limit, False)
            return raw_result(rows)
        messages = await store.messages(device_ids, tq, protocol)
        if len(messages) > limit:
            raise _too_many(limit, False)
        return result([query.project(m) for m in messages])
    out: list[dict[str, Any]] = []
    if query.count == 0:
        return result(out)
    turn = ctx.extra.setdefault("scans", asyncio.Semaphore(SCANS_AT_ONCE))
    assert isinstance(turn, asyncio.Semaphore)
    async with turn:
        matches = query.filter.matches
        read = 0
        spent = 0.0  # seconds of filter evaluation
        mark = time.monotonic()
        async for m in _scan(store, device_ids, query, protocol):
            read += 1
            if read > limit:
                raise _too_many(limit, True)
            if matches(m):
                out.append(query.project(m))
                if query.count is not None and len(out) >= query.count:
                    break
            if not read & 63 and (slice_ := time.monotonic() - mark) > SLICE_SECONDS:
                spent += slice_
                if spent > ctx.scan_seconds:
                    raise ApiError(400, f"the filter took more than {ctx.scan_seconds:g} s (api_scan_seconds) "
                                        f"after {read} messages: narrow the range (data.from, data.to), the "
                                        "devices, or simplify the filter", 400)
                await asyncio.sleep(0)  # devices' acknowledgements and other requests go first
                mark = time.monotonic()
    return result(out)


@router.get("/gw/devices/{selector}/messages", summary="Stored messages")
async def get_messages(
    selector: str,
    data: DataParam = None,
    auth: Auth = Depends(authenticate),
    ctx: ApiContext = Depends(get_context),
) -> Response:
    query = parse_data(data)
    devices = resolve_devices(ctx, selector, auth)
    if not devices:
        return result([])
    return await device_messages(ctx, [d["id"] for d in devices], query)


@router.post("/gw/devices/{selector}/messages", summary="Inject messages (through the pipeline, like a device's)")
async def post_messages(
    selector: str,
    body: Annotated[list[dict[str, Any]], Body(max_length=10000)],
    request: Request,
    auth: Auth = Depends(authenticate),
    ctx: ApiContext = Depends(get_context),
) -> Response:
    require_write(auth)
    check_text(body, "message")
    for i, m in enumerate(body):
        ts = m.get("timestamp")
        if ts is not None and (isinstance(ts, bool) or not isinstance(ts, int | float) or not 0 <= ts < 1e11):
            raise ApiError(400, f"message {i}: timestamp must be UNIX seconds", 400)
    devices = resolve_devices(ctx, selector, auth)
    now = time.time()
    peer = f"{request.client.host}:{request.client.port}" if request.client else "api"
    stored: list[dict[str, Any]] = []
    for device in devices:
        messages = []
        for m in body:
            message = dict(m)
            message["ident"] = device["ident"]
            message["timestamp"] = float(message.get("timestamp", now))
            messages.append(message)
        source = Source(device["protocol"], "http", peer, 0, PROTOCOL_IDS.get(device["protocol"], 0))
        try:
            stored += await ctx.ingest.ingest(source, device, device["ident"], messages, now)
        except (ValueError, TypeError, OverflowError) as exc:  # a value the JSON encoding cannot store
            raise ApiError(400, f"cannot store these messages: {exc}", 400) from exc
    return result(stored)


@router.delete("/gw/devices/{selector}/messages", summary="Delete messages (data: from, to)")
async def delete_messages(
    selector: str,
    data: DataParam = None,
    auth: Auth = Depends(authenticate),
    ctx: ApiContext = Depends(get_context),
) -> Response:
    require_write(auth)
    query = parse_data(data)
    if query.count is not None or query.filter is not None or query.fields is not None:
        raise ApiError(400, "deleting messages takes only data.from and data.to", 400)
    devices = resolve_devices(ctx, selector, auth)
    if not devices:
        return result([])
    deleted = await ctx.store.delete_messages([d["id"] for d in devices], query.time_query())
    return result([{"deleted": deleted, "devices": [d["id"] for d in devices]}])


# --- telemetry -------------------------------------------------------------------------------------

def _telemetry_names(names: str) -> list[str] | None:
    names = names.strip()
    if names in ("", "all"):
        return None
    return [n.strip() for n in names.split(",") if n.strip()]


def _pick_telemetry(telemetry: dict[str, dict[str, Any]], names: list[str] | None) -> dict[str, dict[str, Any]]:
    if names is None:
        return telemetry
    from sinogate.api.filter import wildcard_match

    out = {}
    for key, value in telemetry.items():
        for name in names:
            pattern = "*" in name or "?" in name
            if key == name or key.startswith(name + ".") or (pattern and wildcard_match(name, key)):
                out[key] = value
                break
    return out


async def _telemetry(ctx: ApiContext, selector: str, names: str, auth: Auth) -> Response:
    wanted = _telemetry_names(names)
    out = []
    for device in resolve_devices(ctx, selector, auth):
        telemetry = await ctx.store.telemetry(device["id"])
        out.append({"id": device["id"], "telemetry": _pick_telemetry(telemetry, wanted)})
    return result(out)


@router.get("/gw/devices/{selector}/telemetry", summary="Latest value of every parameter")
async def get_telemetry_all(
    selector: str, auth: Auth = Depends(authenticate), ctx: ApiContext = Depends(get_context)
) -> Response:
    return await _telemetry(ctx, selector, "all", auth)


@router.get("/gw/devices/{selector}/telemetry/{names}", summary="Latest values: all | name,name (prefixes, wildcards)")
async def get_telemetry(
    selector: str, names: str, auth: Auth = Depends(authenticate), ctx: ApiContext = Depends(get_context)
) -> Response:
    return await _telemetry(ctx, selector, names, auth)


@router.delete("/gw/devices/{selector}/telemetry/{names}", summary="Forget latest values: all | name,name")
async def delete_telemetry(
    selector: str, names: str, auth: Auth = Depends(authenticate), ctx: ApiContext = Depends(get_context)
) -> Response:
    require_write(auth)
    out = []
    for device in resolve_devices(ctx, selector, auth):
        current = await ctx.store.telemetry(device["id"])
        doomed = list(_pick_telemetry(current, _telemetry_names(names)))
        removed = await ctx.store.delete_telemetry(device["id"], doomed)
        out.append({"id": device["id"], "removed": removed})
    return result(out)


# --- logs, packets, connections --------------------------------------------------------------------

@router.get("/gw/devices/{selector}/logs", summary="Connection events of devices")
async def get_logs(
    selector: str, data: DataParam = None, auth: Auth = Depends(authenticate), ctx: ApiContext = Depends(get_context)
) -> Response:
    query = parse_data(data)
    devices = resolve_devices(ctx, selector, auth)
    if not devices:
        return result([])
    rows = await ctx.store.logs(bounded_time_query(query, ctx), [d["id"] for d in devices])
    return result(await apply_query_bounded(rows, log_view, query, ctx))


@router.get("/gw/devices/{selector}/packets", summary="Raw traffic of devices (data base64)")
async def get_packets(
    selector: str, data: DataParam = None, auth: Auth = Depends(authenticate), ctx: ApiContext = Depends(get_context)
) -> Response:
    query = parse_data(data)
    devices = resolve_devices(ctx, selector, auth)
    if not devices:
        return result([])
    rows = await ctx.store.packets(bounded_time_query(query, ctx), device_ids=[d["id"] for d in devices])
    return result(await apply_query_bounded(rows, packet_view, query, ctx))


def _device_sessions(ctx: ApiContext, selector: str, auth: Auth, conn_selector: str = "all") -> list[Any]:
    ids = {d["id"] for d in resolve_devices(ctx, selector, auth)}
    sessions = [s for s in all_sessions(ctx) if s.device_id in ids]
    return _pick_sessions(sessions, conn_selector)


def _pick_sessions(sessions: list[Any], conn_selector: str) -> list[Any]:
    conn_selector = conn_selector.strip()
    if conn_selector == "all":
        return sessions
    parts = [p.strip() for p in conn_selector.split(",")]
    if not all(p.isascii() and p.isdigit() for p in parts):
        raise ApiError(400, "connection selector must be 'all' or a list of connection ids", 400)
    wanted = {int(p) for p in parts}
    picked = [s for s in sessions if s.conn_id in wanted]
    missing = wanted - {s.conn_id for s in picked}
    if missing:
        raise ApiError(404, f"connection {min(missing)} not found", 404)
    return picked


@router.get("/gw/devices/{selector}/connections", summary="Live connections of devices")
async def get_connections(
    selector: str, auth: Auth = Depends(authenticate), ctx: ApiContext = Depends(get_context)
) -> Response:
    return result([s.info() for s in _device_sessions(ctx, selector, auth)])


@router.get("/gw/devices/{selector}/connections/{connections}", summary="Live connections by id")
async def get_connections_by_id(
    selector: str, connections: str, auth: Auth = Depends(authenticate), ctx: ApiContext = Depends(get_context)
) -> Response:
    return result([s.info() for s in _device_sessions(ctx, selector, auth, connections)])


async def _close(sessions: list[Any]) -> Response:
    out = []
    for s in sessions:
        s.close("closed via API")
        out.append({"id": s.conn_id, "device_id": s.device_id, "ident": s.ident})
    return result(out)


@router.delete("/gw/devices/{selector}/connections", summary="Close the live connections of devices")
async def delete_connections(
    selector: str, auth: Auth = Depends(authenticate), ctx: ApiContext = Depends(get_context)
) -> Response:
    require_write(auth)
    return await _close(_device_sessions(ctx, selector, auth))


@router.delete("/gw/devices/{selector}/connections/{connections}", summary="Close connections by id")
async def delete_connections_by_id(
    selector: str, connections: str, auth: Auth = Depends(authenticate), ctx: ApiContext = Depends(get_context)
) -> Response:
    require_write(auth)
    return await _close(_device_sessions(ctx, selector, auth, connections))
