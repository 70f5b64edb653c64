"""Analytics per device: events (``GET /gw/devices/{sel}/events``) and the computed odometer.

Events are flat dicts like messages: ``{"id", "device.id", "timestamp" (device time of the message
that caused it), "type", ...}``; the ``data=`` parameter takes ``from``, ``to``, ``count``,
``reverse``, ``fields``, ``filter`` (e.g. ``type=="alarm" && alarm=="sos"``) and ``types`` (a list).
"""

from __future__ import annotations

import functools
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

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
from sinogate.api.views import apply_query
from sinogate.pipeline.clock import clock_view
from sinogate.pipeline.odometer import Odometer, set_odometer

router = APIRouter(tags=["analytics"])

EVENT_TYPES = (
    "alarm", "ignition.on", "ignition.off", "geofence.enter", "geofence.exit", "overspeed", "trip.start",
    "trip.end", "device.online", "device.offline", "command.result", "clock.offset",
)


@router.get("/gw/devices/{selector}/events", summary="Analytics events of devices (alarms, geofences, trips …)")
async def get_events(selector: str, data: DataParam = None, auth: Auth = Depends(authenticate),
                     ctx: ApiContext = Depends(get_context)) -> Response:
    query = parse_data(data, allowed_extra=("types",))
    types = query.extra.get("types")
    if types is not None and (not isinstance(types, list) or not all(isinstance(t, str) for t in types)):
        raise ApiError(400, f"data.types must be a list of event types, e.g. {list(EVENT_TYPES[:2])}", 400)
    devices = resolve_devices(ctx, selector, auth)
    if not devices:
        return result([])
    rows = await ctx.store.events([d["id"] for d in devices], query.time_query(with_count=query.filter is None),
                                  types)
    return result(apply_query(rows, query))


class OdometerBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: float = Field(ge=0, le=100_000_000, description="The total to continue from, km")


def _odometer(device: dict[str, Any], states: dict[str, Any]) -> dict[str, Any]:
    state = states.get(Odometer.name) or {}
    return {"id": device["id"], "odometer.computed": round(float(state.get("km", 0.0)), 3)}


@router.get("/gw/devices/{selector}/odometer", summary="The computed odometer of devices (km)")
async def get_odometer(selector: str, auth: Auth = Depends(authenticate),
                       ctx: ApiContext = Depends(get_context)) -> Response:
    devices = resolve_devices(ctx, selector, auth)
    return result([await ctx.ingest.with_state(d["id"], functools.partial(_odometer, d)) for d in devices])


@router.put("/gw/devices/{selector}/odometer", summary="Set the computed odometer (km), e.g. to the dashboard's")
async def put_odometer(selector: str, body: OdometerBody, auth: Auth = Depends(authenticate),
                       ctx: ApiContext = Depends(get_context)) -> Response:
    require_write(auth)
    out = []
    for device in resolve_devices(ctx, selector, auth):
        def change(states: dict[str, Any], device: dict[str, Any] = device) -> dict[str, Any]:
            set_odometer(states, body.value)
            return _odometer(device, states)

        out.append(await ctx.ingest.with_state(device["id"], change))
    return result(out)


@router.get("/gw/devices/{selector}/clock", summary="Device clocks: time_offset setting and the offset detected")
async def get_clock(selector: str, auth: Auth = Depends(authenticate),
                    ctx: ApiContext = Depends(get_context)) -> Response:
    """``time_offset`` (``auto`` or hours), ``clock.offset`` (hours the device clock was found off UTC
    with ``auto``; null before any detection), ``clock.correction`` (seconds added to its times) and
    ``clock.offset.detected`` (server time of the detection)."""
    devices = resolve_devices(ctx, selector, auth)
    return result([await ctx.ingest.with_state(d["id"], functools.partial(clock_view, device=d)) for d in devices])
