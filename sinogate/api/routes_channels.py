"""``/gw/channels``: one channel per protocol listener (1 = h02, 2 = jt808), with everything it saw —
including traffic from idents no device is registered for."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from sinogate.api.deps import (
    ApiError,
    Auth,
    DataParam,
    DataQuery,
    authenticate,
    get_gateway,
    parse_data,
    require_unlimited,
    require_write,
    result,
)
from sinogate.api.routes_devices import _close, _pick_sessions, device_messages
from sinogate.api.views import (
    CHANNELS,
    active_channels,
    all_sessions,
    apply_query,
    channel_view,
    check_text,
    log_view,
    packet_view,
)

if TYPE_CHECKING:
    from sinogate.server.gateway import Gateway

router = APIRouter(tags=["channels"])


def resolve_channels(gateway: Gateway, selector: str, auth: Auth) -> list[int]:
    require_unlimited(auth)
    selector = selector.strip()
    active = active_channels(gateway)
    if selector == "all":
        return active
    parts = [p.strip() for p in selector.split(",")]
    if not parts or not all(p.isdigit() and len(p) < 10 for p in parts):
        raise ApiError(400, "channel selector must be 'all' or a list of channel ids (1 = h02, 2 = jt808)", 400)
    ids = list(dict.fromkeys(int(p) for p in parts))
    for cid in ids:
        if cid not in active:
            raise ApiError(404, f"channel {cid} not found", 404)
    return ids


@router.get("/gw/channels", summary="Every channel (one per protocol listener)")
async def list_channels(auth: Auth = Depends(authenticate), gateway: Gateway = Depends(get_gateway)) -> Response:
    return result([channel_view(gateway, cid) for cid in resolve_channels(gateway, "all", auth)])


@router.get("/gw/channels/{selector}", summary="Get channels")
async def get_channels(
    selector: str, auth: Auth = Depends(authenticate), gateway: Gateway = Depends(get_gateway)
) -> Response:
    return result([channel_view(gateway, cid) for cid in resolve_channels(gateway, selector, auth)])


@router.get("/gw/channels/{selector}/messages", summary="Messages received on channels (unregistered idents too)")
async def channel_messages(
    selector: str, data: DataParam = None, auth: Auth = Depends(authenticate),
    gateway: Gateway = Depends(get_gateway),
) -> Response:
    query = parse_data(data)
    ids = resolve_channels(gateway, selector, auth)
    if not ids:
        return result([])
    protocol = CHANNELS[ids[0]] if len(ids) == 1 else None
    return await device_messages(gateway, None, query, protocol)


def _channel_sessions(gateway: Gateway, selector: str, auth: Auth, conn_selector: str = "all") -> list:
    protocols = {CHANNELS[cid] for cid in resolve_channels(gateway, selector, auth)}
    return _pick_sessions([s for s in all_sessions(gateway) if s.protocol in protocols], conn_selector)


@router.get("/gw/channels/{selector}/connections", summary="Live connections on channels")
async def channel_connections(
    selector: str, auth: Auth = Depends(authenticate), gateway: Gateway = Depends(get_gateway)
) -> Response:
    return result([s.info() for s in _channel_sessions(gateway, selector, auth)])


@router.get("/gw/channels/{selector}/connections/{connections}", summary="Live connections by id")
async def channel_connections_by_id(
    selector: str, connections: str, auth: Auth = Depends(authenticate), gateway: Gateway = Depends(get_gateway)
) -> Response:
    return result([s.info() for s in _channel_sessions(gateway, selector, auth, connections)])


@router.delete("/gw/channels/{selector}/connections/{connections}", summary="Close connections")
async def close_channel_connections(
    selector: str, connections: str, auth: Auth = Depends(authenticate), gateway: Gateway = Depends(get_gateway)
) -> Response:
    require_write(auth)
    return await _close(_channel_sessions(gateway, selector, auth, connections))


async def _per_channel(ids: list[int], query: DataQuery,
                       fetch: Callable[[str], Awaitable[list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    """``fetch(protocol)`` for each channel, merged in time order when there is more than one."""
    rows: list[dict[str, Any]] = []
    for cid in ids:
        rows += await fetch(CHANNELS[cid])
    if len(ids) > 1:
        rows.sort(key=lambda r: (r["timestamp"], r.get("id", 0)), reverse=query.reverse)
    return rows


@router.get("/gw/channels/{selector}/logs", summary="Connection events on channels")
async def channel_logs(
    selector: str, data: DataParam = None, auth: Auth = Depends(authenticate),
    gateway: Gateway = Depends(get_gateway),
) -> Response:
    query = parse_data(data)
    tq = query.time_query(with_count=query.filter is None)
    rows = await _per_channel(resolve_channels(gateway, selector, auth), query,
                              lambda protocol: gateway.store.logs(tq, protocol=protocol))
    return result(apply_query((log_view(r) for r in rows), query))


@router.get("/gw/channels/{selector}/idents", summary="Every ident seen on channels; unknown ones are marked")
async def channel_idents(
    selector: str, auth: Auth = Depends(authenticate), gateway: Gateway = Depends(get_gateway)
) -> Response:
    out = []
    for cid in resolve_channels(gateway, selector, auth):
        protocol = CHANNELS[cid]
        for row in await gateway.store.idents(protocol):
            device = gateway.devices.find(protocol, row["ident"])
            out.append({
                **row,
                "channel_id": cid,
                "device_id": device["id"] if device else None,
                "unknown": device is None,
            })
    return result(out)


@router.get("/gw/channels/{selector}/idents/{ident}/packets", summary="Raw traffic of one ident (registered or not)")
async def channel_ident_packets(
    selector: str, ident: str, data: DataParam = None, auth: Auth = Depends(authenticate),
    gateway: Gateway = Depends(get_gateway),
) -> Response:
    check_text(ident, "ident")
    query = parse_data(data)
    tq = query.time_query(with_count=query.filter is None)
    rows = await _per_channel(resolve_channels(gateway, selector, auth), query,
                              lambda protocol: gateway.store.packets(tq, protocol=protocol, ident=ident))
    return result(apply_query((packet_view(r) for r in rows), query))
