"""Overspeed: one ``overspeed`` event per episode above the speed limit.

The limit is ``ctx.scratch["speed_limit"]`` (set by ``geofencing``: the device's ``speed_limit``
setting or a fence's, the lower one), or this device's ``speed_limit`` setting when geofencing is
not in the chain. An episode starts at the first accepted fix whose ``position.speed`` is above
the limit and ends at the first accepted fix at the limit or below (or without a limit). Once it
has lasted ``overspeed_min_duration`` seconds (default 15; device time from its first fix to the
current one), it fires one ``overspeed`` event with ``position.speed`` (the episode's maximum so
far) and ``speed.limit``. Only accepted fixes count: late messages and bad fixes change nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from sinogate.pipeline.base import Context, Handler, Message
from sinogate.pipeline.geofencing import limit_value

_NUMBER = (int, float)


class Overspeed(Handler):
    name = "overspeed"
    options: ClassVar[Mapping[str, Any]] = {"overspeed_min_duration": 15.0, "speed_limit": None}

    def handle(self, message: Message, ctx: Context) -> Message:
        scratch = ctx.scratch
        if not scratch.get("fix") or scratch.get("late") or scratch.get("flagged"):  # not accepted
            return message
        state = ctx.state(self.name)
        speed, ts = message.get("position.speed"), message.get("timestamp")
        if (state is None or isinstance(speed, bool) or not isinstance(speed, _NUMBER)
                or not isinstance(ts, _NUMBER)):
            return message
        if "speed_limit" in scratch:
            limit = limit_value(scratch["speed_limit"])
        else:
            limit = limit_value(self.setting(ctx, "speed_limit"))
        if limit is None or speed <= limit:
            if state:
                state.clear()  # the episode, if any, is over
            return message
        if "since" not in state:
            state.update(since=ts, max=speed, fired=False)
        else:
            state["max"] = max(state["max"], speed)
        minimum = self.setting(ctx, "overspeed_min_duration")
        if not isinstance(minimum, _NUMBER) or isinstance(minimum, bool):
            minimum = self.defaults["overspeed_min_duration"]
        if not state["fired"] and ts - state["since"] >= minimum:
            ctx.emit("overspeed", message, **{"position.speed": state["max"], "speed.limit": limit})
            state["fired"] = True
        return message
