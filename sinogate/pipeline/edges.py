"""Events on state edges: alarms (false → true) and ignition (on ↔ off).

Every boolean parameter a codec produces whose name ends in ``.alarm`` or ``.event`` (``sos.alarm``,
``power.cut.alarm``, ``crash.event`` ...) fires one ``alarm`` event when it turns true, not on every
message that still carries it; ``alarm`` is the name without the suffix (``sos``, ``power.cut``).
``engine.ignition.status`` changing fires ``ignition.on`` / ``ignition.off`` (a first known value
fires nothing: there is no edge yet). Only live messages count (see ``filters``): a late batch
replays the past and fires nothing. A bad fix still fires its alarms: an SOS is news whatever the GPS.
"""

from __future__ import annotations

from sinogate.pipeline.base import Context, Handler, Message

SUFFIXES = (".alarm", ".event")


def alarm_name(param: str) -> str:
    for suffix in SUFFIXES:
        if param.endswith(suffix):
            return param[: -len(suffix)]
    return param


class StateEdges(Handler):
    name = "edges"

    def handle(self, message: Message, ctx: Context) -> Message:
        if not ctx.live:
            return message
        state = ctx.state(self.name)
        if state is None:
            return message
        flags: dict[str, bool] = state.setdefault("alarms", {})
        for key, value in message.items():
            if value.__class__ is bool and key.endswith(SUFFIXES):
                if value and not flags.get(key):
                    ctx.emit("alarm", message, alarm=alarm_name(key), **{key: True})
                flags[key] = value
        ignition = message.get("engine.ignition.status")
        if isinstance(ignition, bool):
            before = state.get("ignition")
            if before is not None and before != ignition:
                ctx.emit("ignition.on" if ignition else "ignition.off", message)
            state["ignition"] = ignition
        return message
