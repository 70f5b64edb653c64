"""Geofence membership per device: ``geofence.enter`` / ``geofence.exit`` events, and the speed
limit in force.

Only accepted fixes (``ctx.accepted``: live, and a position the filters trust) move membership;
the fences a device is inside live in its state (``{"inside": {"<id>": name}}``). An accepted fix
fires ``geofence.exit`` for every fence it left, then ``geofence.enter`` for every fence it
entered (``geofence.id``, ``geofence.name``); the first accepted fix of a device inside a fence
enters it. A fence deleted (or no longer selecting the device) while the device is inside ends the
membership silently on the next fix. Late and flagged messages fire nothing.

Facts for the later handlers (``ctx.scratch``):

- ``geofences``: ``{id: name}`` of the fences the current accepted fix is inside (set on every
  accepted fix, also when empty; absent otherwise);
- ``speed_limit``: the km/h limit in force, the lowest of the device's ``speed_limit`` setting
  and the ``speed_limit`` of the fences it is in (absent when there is none). The fences are
  those of the fix for an accepted fix, those of the membership for another live message, and
  those around the message's own position for a late one (membership does not move).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from sinogate.analytics.geofences import GeofenceService
from sinogate.pipeline.base import Context, Handler, Message

_NUMBER = (int, float)


def limit_value(value: Any) -> float | None:
    """A usable speed limit (km/h, more than 0), or ``None``."""
    if isinstance(value, bool) or not isinstance(value, _NUMBER) or not math.isfinite(value) or value <= 0:
        return None
    return float(value)


class Geofencing(Handler):
    name = "geofencing"
    options: ClassVar[Mapping[str, Any]] = {"speed_limit": None}
    needs = ("geofences",)

    def __init__(self, config: Mapping[str, Any], geofences: GeofenceService) -> None:
        super().__init__(config)
        self.geofences = geofences

    def handle(self, message: Message, ctx: Context) -> Message:
        state = ctx.state(self.name)
        if state is None:
            return message
        device = ctx.device
        fences: Iterable[int]
        scratch = ctx.scratch
        live = not (scratch.get("late") or scratch.get("flagged"))
        if live and scratch.get("fix"):  # accepted
            lat, lon = message["position.latitude"], message["position.longitude"]
            now = self.geofences.inside(lat, lon, device)
            before: dict[str, str] = state.get("inside") or {}
            if not now and not before:  # the usual case: no fence here, none before
                state["inside"] = {}
                scratch["geofences"] = now
                limit = limit_value(self.setting(ctx, "speed_limit"))
                if limit is not None:
                    scratch["speed_limit"] = limit
                return message
            for key in before:
                fence_id = int(key)
                if fence_id in now:
                    continue
                fence = self.geofences.fence(fence_id)
                if fence is not None and fence.applies(device):  # else: deleted or not for this device
                    ctx.emit("geofence.exit", message, **{"geofence.id": fence_id, "geofence.name": fence.name})
            for fence_id, fence_name in now.items():
                if str(fence_id) not in before:
                    ctx.emit("geofence.enter", message, **{"geofence.id": fence_id, "geofence.name": fence_name})
            state["inside"] = {str(k): v for k, v in now.items()}
            ctx.scratch["geofences"] = now
            fences = now
        elif live:
            fences = (int(key) for key in state.get("inside") or ())
        else:
            fences = self._around(message, ctx)
        limit = self._limit(ctx, fences)
        if limit is not None:
            ctx.scratch["speed_limit"] = limit
        return message

    def _around(self, message: Message, ctx: Context) -> Iterable[int]:
        """The fences around a late message's own position, when it has a usable one."""
        lat, lon = message.get("position.latitude"), message.get("position.longitude")
        if (not ctx.scratch.get("late") or not isinstance(lat, _NUMBER) or not isinstance(lon, _NUMBER)
                or message.get("position.valid") is False or (lat == 0 and lon == 0)):
            return ()
        return self.geofences.inside(lat, lon, ctx.device)

    def _limit(self, ctx: Context, fences: Iterable[int]) -> float | None:
        limits = [limit_value(self.setting(ctx, "speed_limit"))]
        for fence_id in fences:
            fence = self.geofences.fence(fence_id)
            if fence is not None and fence.applies(ctx.device):
                limits.append(fence.speed_limit)
        present = [x for x in limits if x is not None]
        return min(present) if present else None
