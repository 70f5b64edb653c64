"""``/gw/channels``: one channel per protocol listener (1 = h02, 2 = jt808), with everything it saw —
including traffic from idents no device is registered for."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from sinogate.api.context import ApiContext
from sinogate.api.deps import (
    ApiError,
    Auth,
    DataParam,
    DataQuery,
    authenticate,
    get_context,
    parse_data,
    require_unlimited,
    require_write,
    result,
)
from sinogate.api.routes_devices import _close, _pick_sessions, device_messages
from sinogate.api.views import (
    active_channels,
    all_sessions,
    apply_query_bounded,
    bounded_time_query,
    channel_protocol,
    channel_view,
    check_text,
    log_view,
    packet_view,
)
from sinogate.interfaces import DeviceConnection

router = APIRouter(tags=["channels"])


def resolve_channels(ctx: ApiContext, selector: str, auth: Auth) -> list[int]:
    require_unlimited(auth)
    selector = selector.strip()
    active = active_channels(ctx)
    if selector == "all":
        return active
    parts = [p.strip() for p in selector.split(",")]
    if not parts or not all(p.isascii() and p.isdigit() and len(p) < 10 for p in parts):
        raise ApiError(400, "channel selector must be 'all' or channel ids (GET /gw/channels)", 400)
    ids = list(dict.fromkeys(int(p) for p in parts))
    for cid in ids:
        if cid not in active:
            raise ApiError(404, f"channel {cid} not found", 404)
    return ids


@router.get("/gw/channels", summary="Every channel (one per protocol listener)")
async def list_channels(auth: Auth = Depends(authenticate), ctx: ApiContext = Depends(get_context)) -> Response:
    return result([channel_view(ctx, cid) for cid in resolve_channels(ctx, "all", auth)])


@router.get("/gw/channels/{selector}", summary="Get channels")
async def get_channels(
    selector: str, auth: Auth = Depends(authenticate), ctx: ApiContext = Depends(get_context)
) -> Response:
    return result([channel_view(ctx, cid) for cid in resolve_channels(ctx, selector, auth)])


@router.get("/gw/channels/{selector}/messages", summary="Messages received on channels (unregistered idents too)")
async def channel_messages(
    selector: str, data: DataParam = None, auth: Auth = Depends(authenticate),
    ctx: ApiContext = Depends(get_context),
) -> Response:
    query = parse_data(data)
    ids = resolve_channels(ctx, selector, auth)
    if not ids:
        return result([])
    protocol = channel_protocol(ctx, ids[0]) if len(ids) == 1 else None
    return await device_messages(ctx, None, query, protocol)


def _channel_sessions(ctx: ApiContext, selector: str, auth: Auth, conn_selector: str = "all") -> list[DeviceConnection]:
    ids = set(resolve_channels(ctx, selector, auth))
    return _pick_sessions([s for s in all_sessions(ctx) if s.channel_id in ids], conn_selector)


@router.get("/gw/channels/{selector}/connections", summary="Live connections on channels")
async def channel_connections(
    selector: str, auth: Auth = Depends(authenticate), ctx: ApiContext = Depends(get_context)
) -> Response:
    return result([s.info() for s in _channel_sessions(ctx, selector, auth)])


@router.get("/gw/channels/{selector}/connections/{connections}", summary="Live connections by id")
async def channel_connections_by_id(
    selector: str, connections: str, auth: Auth = Depends(authenticate), ctx: ApiContext = Depends(get_context)
) -> Response:
    return result([s.info() for s in _channel_sessions(ctx, selector, auth, connections)])


@router.delete("/gw/channels/{selector}/connections/{connections}", summary="Close connections")
async def close_channel_connections(
    selector: str, connections: str, auth: Auth = Depends(authenticate), ctx: ApiContext = Depends(get_context)
) -> Response:
    require_write(auth)
    return await _close(_channel_sessions(ctx, selector, auth, connections))


async def _per_channel(ctx: ApiContext, ids: list[int], query: DataQuery,
                       fetch: Callable[[str], Awaitable[list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    """``fetch(protocol)`` for each protocol of the channels (packets and logs are kept by
    protocol: channels that share one share them), merged in time order."""
    protocols = list(dict.fromkeys(channel_protocol(ctx, cid) for cid in ids))
    rows: list[dict[str, Any]] = []
    for protocol in protocols:
        rows += await fetch(protocol)
    if len(protocols) > 1:
        rows.sort(key=lambda r: (r["timestamp"], r.get("id", 0)), reverse=query.reverse)
    return rows


@router.get("/gw/channels/{selector}/logs", summary="Connection events on channels")
async def channel_logs(
    selector: str, data: DataParam = None, auth: Auth = Depends(authenticate),
    ctx: ApiContext = Depends(get_context),
) -> Response:
    query = parse_data(data)
    tq = bounded_time_query(query, ctx)
    rows = await _per_channel(ctx, resolve_channels(ctx, selector, auth), query,
                              lambda protocol: ctx.store.logs(tq, protocol=protocol))
    return result(await apply_query_bounded(rows, log_view, query, ctx))


@router.get("/gw/channels/{selector}/idents",
            summary="Every ident seen on channels; unknown ones are marked, refused ones carry the reason")
async def channel_idents(
    selector: str, auth: Auth = Depends(authenticate), ctx: ApiContext = Depends(get_context)
) -> Response:
    out = []
    for cid in resolve_channels(ctx, selector, auth):
        protocol = channel_protocol(ctx, cid)
        for row in await ctx.store.idents(protocol):
            device = ctx.devices.find(protocol, row["ident"])
            out.append({
                **row,
                "channel_id": cid,
                "device_id": device["id"] if device else None,
                "unknown": device is None,
                "refused": None,
            })
        # Idents no device may have (server.devices.ident_problem): the latest, kept in memory,
        # shown escaped and cut, with the reason and how often they came.
        for entry in ctx.guard.refused(protocol) if ctx.guard is not None else []:
            if entry["channel_id"] == cid:
                out.append({"protocol": protocol, "ident": entry["ident"], "first_seen": entry["first_seen"],
                            "last_seen": entry["last_seen"], "peer": entry["peer"], "sample": "",
                            "channel_id": cid, "device_id": None, "unknown": True, "refused": entry["reason"],
                            "count": entry["count"]})
    return result(out)


@router.get("/gw/channels/{selector}/idents/{ident}/packets", summary="Raw traffic of one ident (registered or not)")
async def channel_ident_packets(
    selector: str, ident: str, data: DataParam = None, auth: Auth = Depends(authenticate),
    ctx: ApiContext = Depends(get_context),
) -> Response:
    check_text(ident, "ident")
    query = parse_data(data)
    tq = bounded_time_query(query, ctx)
    rows = await _per_channel(ctx, resolve_channels(ctx, selector, auth), query,
                              lambda protocol: ctx.store.packets(tq, protocol=protocol, ident=ident))
    return result(await apply_query_bounded(rows, packet_view, query, ctx))
