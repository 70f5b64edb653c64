"""Marks what analytics must not trust: late messages and bad fixes (kept, but flagged).

- A position whose device time is older than the newest position the device already sent is
  *late* (a JT/T 808 0x0704 blind-area batch, an H02 unit replaying its buffer): stored with
  ``message.late`` and it fires no live event; the span it touches is recorded in the state
  (``recalc``: [begin, end] device times) for recalculation of intervals. Only positions count:
  heartbeats, registrations and command replies carry no device time (the codec stamps the
  server's), and a device clock a second behind the server's would otherwise make every
  position after a heartbeat late.
- A fix that is invalid (``position.valid`` false), at 0,0, or implies a speed from the previous
  accepted fix above ``filter_max_speed`` (km/h, default 300) gets ``position.filtered`` true and
  ``position.filter.reason`` (``invalid``, ``zero``, ``jump``); it never moves analytics state,
  the odometer or geofence membership.
- A message whose time the time check flagged (``timestamp.flagged``) moves nothing either.

Later handlers read the verdict from ``ctx.live`` / ``ctx.accepted``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from sinogate.analytics.geo import distance_km
from sinogate.pipeline.base import Context, Handler, Message

_NUMBER = (int, float)


class Filters(Handler):
    name = "filters"
    options: ClassVar[Mapping[str, Any]] = {"filter_max_speed": 300.0, "filter_invalid": True, "filter_zero": True}

    def handle(self, message: Message, ctx: Context) -> Message:
        scratch = ctx.scratch
        if message.get("timestamp.flagged"):
            scratch["flagged"] = True
            return message
        state = ctx.state(self.name)
        ts = message.get("timestamp")
        if state is None or not isinstance(ts, _NUMBER):
            return message
        lat, lon = message.get("position.latitude"), message.get("position.longitude")
        if not isinstance(lat, _NUMBER) or not isinstance(lon, _NUMBER):
            return message  # no position, no device time to order by (see the module docstring)
        last = state.get("last")
        if last is not None and ts < last:
            scratch["late"] = True
            message["message.late"] = True
            span = state.get("recalc")
            state["recalc"] = [min(span[0], ts), max(span[1], last)] if span else [ts, last]
            return message
        state["last"] = ts
        reason = self._verdict(message, ctx, state, lat, lon, ts)
        if reason is not None:
            message["position.filtered"] = True
            message["position.filter.reason"] = reason
            return message
        state["fix"] = [lat, lon, ts]
        scratch["fix"] = True
        return message

    def _verdict(self, message: Message, ctx: Context, state: dict[str, Any], lat: float, lon: float,
                 ts: float) -> str | None:
        if message.get("position.valid") is False and self.setting(ctx, "filter_invalid"):
            return "invalid"
        if lat == 0 and lon == 0 and self.setting(ctx, "filter_zero"):
            return "zero"
        previous = state.get("fix")
        if previous is not None:
            km = distance_km(previous[0], previous[1], lat, lon)
            ctx.scratch["step"] = (previous[0], previous[1], km)  # the odometer's step, when it is the same
            hours = (ts - previous[2]) / 3600.0
            limit = float(self.setting(ctx, "filter_max_speed"))
            # Two fixes at the same second may differ by GPS noise, not by a continent.
            if (hours > 0 and km / hours > limit) or (hours <= 0 and km > limit / 3600.0):
                return "jump"
        return None
