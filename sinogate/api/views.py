"""How ctx objects look over the API (flespi shapes), and helpers shared by the route modules."""

from __future__ import annotations

import asyncio
import base64
import functools
import logging
import math
import time
from collections.abc import Callable, Iterable
from typing import Any

from sinogate.api.context import ApiContext
from sinogate.api.deps import ApiError, DataQuery
from sinogate.codecs import PROTOCOL_IDS
from sinogate.interfaces import DeviceConnection
from sinogate.store.base import TimeQuery

log = logging.getLogger("sinogate.api")



@functools.lru_cache(maxsize=8)
def _catalog(protocol: str) -> tuple[dict[str, Any], ...]:
    try:
        from sinogate.commands.catalog import catalog_for
    except ImportError:
        return ()
    try:
        return tuple(catalog_for(protocol))
    except Exception:  # the command catalog is someone else's work in progress: never fail a GET
        log.exception("command catalog for %s failed", protocol)
        return ()


def command_catalog(protocol: str) -> list[dict[str, Any]]:
    return list(_catalog(protocol))


def device_view(device: dict[str, Any], fields: list[str] | None = None) -> dict[str, Any]:
    protocol = device.get("protocol")
    out: dict[str, Any] = {
        "id": device["id"],
        "name": device.get("name"),
        "configuration": {"ident": device.get("ident"), "phone": device.get("phone")},
        "protocol": protocol,
        "protocol_name": protocol,
        "protocol_id": PROTOCOL_IDS.get(str(protocol)),
        "model": device.get("model"),
        "enabled": bool(device.get("enabled", True)),
        "connected": bool(device.get("connected")),
        "last_active": device.get("last_active"),
        "created": device.get("created"),
        "messages_ttl": device.get("messages_ttl"),
        "settings": device.get("settings") or {},
    }
    if fields is not None and "commands" in fields:  # only when asked: GET /gw/devices/{sel}/commands has it
        out["commands"] = command_catalog(str(protocol))
    if fields is not None:
        picked: dict[str, Any] = {}
        for name in fields:
            if name in out:
                picked[name] = out[name]
            elif name.startswith("configuration."):
                sub = name.split(".", 1)[1]
                if sub in out["configuration"]:
                    picked.setdefault("configuration", {})[sub] = out["configuration"][sub]
        return picked
    return out


def parse_fields(fields: str | None) -> list[str] | None:
    if fields is None or not fields.strip():
        return None
    return [f.strip() for f in fields.split(",") if f.strip()] or None


def check_text(value: Any, what: str = "value", depth: int = 0) -> None:
    """400 for strings that cannot be stored as UTF-8 (lone surrogates) and absurd nesting."""
    if depth > 32:
        raise ApiError(400, f"{what} is nested too deeply", 400)
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ApiError(400, f"{what} contains a string that is not valid UTF-8", 400) from exc
    elif isinstance(value, float) and not math.isfinite(value):
        raise ApiError(400, f"{what} contains a number that is not finite", 400)
    elif isinstance(value, dict):
        for k, v in value.items():
            check_text(k, what, depth + 1)
            check_text(v, what, depth + 1)
    elif isinstance(value, list | tuple):
        for v in value:
            check_text(v, what, depth + 1)


def apply_query(items: Iterable[dict[str, Any]], query: DataQuery) -> list[dict[str, Any]]:
    """Filter, cut to ``count`` (after filtering) and project ``fields``."""
    out: list[dict[str, Any]] = []
    for item in items:
        if query.count is not None and len(out) >= query.count:
            break
        if query.filter is not None and not query.filter.matches(item):
            continue
        out.append(query.project(item))
    return out


def bounded_time_query(query: DataQuery, ctx: ApiContext) -> TimeQuery:
    """The store query of a list route (logs, packets): what ``count`` asks when there is no
    filter, and never more than ``scan_max`` + 1 rows (``apply_query_bounded`` says what to do)."""
    cap = ctx.scan_max + 1
    count = query.count if query.filter is None and query.count is not None else cap
    return TimeQuery(query.from_ts, query.to_ts, min(count, cap), query.reverse)


async def apply_query_bounded(rows: list[dict[str, Any]], view: Callable[[dict[str, Any]], dict[str, Any]],
                              query: DataQuery, ctx: ApiContext) -> list[dict[str, Any]]:
    """``apply_query`` over rows read with ``bounded_time_query``: the event loop gets a turn every
    20 ms, filter evaluation takes at most ``scan_seconds``, and a range holding more than
    ``scan_max`` rows is a 400 (unless ``count`` was reached before)."""
    out: list[dict[str, Any]] = []
    mark = time.monotonic()
    spent = 0.0
    for n, row in enumerate(rows):
        if query.count is not None and len(out) >= query.count:
            return out
        if n >= ctx.scan_max:
            break
        item = view(row)
        if query.filter is None or query.filter.matches(item):
            out.append(query.project(item))
        if not n & 63 and (slice_ := time.monotonic() - mark) > 0.02:
            spent += slice_
            if spent > ctx.scan_seconds:
                raise ApiError(400, f"the filter took more than {ctx.scan_seconds:g} s (api_scan_seconds): narrow "
                                    "the range (data.from, data.to) or simplify the filter", 400)
            await asyncio.sleep(0)
            mark = time.monotonic()
    if len(rows) > ctx.scan_max and (query.count is None or len(out) < query.count):
        raise ApiError(400, f"the range holds more than {ctx.scan_max} records (api_scan_max): narrow it "
                            "(data.from, data.to) or give a smaller data.count", 400)
    return out


def packet_view(packet: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": packet.get("id"),
        "timestamp": packet.get("timestamp"),
        "type": packet.get("type"),
        "conn": packet.get("conn"),
        "ident": packet.get("ident"),
        "device_id": packet.get("device_id"),
        "protocol": packet.get("protocol"),
        "peer": packet.get("peer"),
        "data": base64.b64encode(packet.get("data") or b"").decode("ascii"),
    }


def log_view(record: dict[str, Any]) -> dict[str, Any]:
    out = dict(record)
    out["source"] = out.get("peer")
    return out


def all_sessions(ctx: ApiContext) -> list[DeviceConnection]:
    """Every open connection: TCP ones and active UDP peers."""
    return ctx.sessions.connections()


def channel_protocol(ctx: ApiContext, channel_id: int) -> str:
    channel = ctx.channel(channel_id)
    if channel is None:
        raise ApiError(404, f"channel {channel_id} not found", 404)
    return channel.protocol


def channel_view(ctx: ApiContext, channel_id: int) -> dict[str, Any]:
    channel = ctx.channel(channel_id)
    if channel is None:
        raise ApiError(404, f"channel {channel_id} not found", 404)
    port = channel.bound
    return {
        "id": channel.id,
        "name": channel.name,
        "protocol_name": channel.protocol,
        "protocol_id": channel.protocol_id,
        "enabled": port is not None,
        "uri": f"{channel.host}:{port}",
        "port": port,
        "transports": channel.transports,
        "connections_count": sum(1 for s in all_sessions(ctx) if s.channel_id == channel.id),
        "configuration": {"host": channel.host, "port": port, "auto_register": channel.auto_register,
                          "follow_ident": channel.follow_ident},
    }


def active_channels(ctx: ApiContext) -> list[int]:
    return [c.id for c in ctx.channels if c.bound is not None]
