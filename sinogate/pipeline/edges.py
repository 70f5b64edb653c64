"""Events on state edges: alarms (false → true) and ignition (on ↔ off).

Every registered boolean parameter whose name ends in ``.alarm`` or ``.event`` (``sos.alarm``,
``power.cut.alarm``, ``crash.event`` ...; ``sinogate params``) fires one ``alarm`` event when it turns
true, not on every message that still carries it; ``alarm`` is the name without the suffix (``sos``,
``power.cut``). The registry's names are matched against each message as one set intersection,
instead of testing every key of every message.
``engine.ignition.status`` changing fires ``ignition.on`` / ``ignition.off`` (a first known value
fires nothing: there is no edge yet). Only live messages count (see ``filters``): a late batch
replays the past and fires nothing. A bad fix still fires its alarms: an SOS is news whatever the GPS.
"""

from __future__ import annotations

from sinogate.model.params import all_params
from sinogate.pipeline.base import Context, Handler, Message

SUFFIXES = (".alarm", ".event")
ALARMS = frozenset(p.name for p in all_params() if p.type == "boolean" and p.name.endswith(SUFFIXES))


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
        present = ALARMS.intersection(message)
        if present:
            fired = []
            for key in present:
                value = message[key]
                if value is True:
                    if not flags.get(key):
                        flags[key] = True
                        fired.append(key)
                elif value is False and flags.get(key):
                    flags[key] = False
            if len(fired) > 1:  # in the message's order, so events come out the same every time
                order = list(message)
                fired.sort(key=order.index)
            for key in fired:
                ctx.emit("alarm", message, alarm=alarm_name(key), **{key: True})
        ignition = message.get("engine.ignition.status")
        if isinstance(ignition, bool):
            before = state.get("ignition")
            if before is not None and before != ignition:
                ctx.emit("ignition.on" if ignition else "ignition.off", message)
            state["ignition"] = ignition
        return message
