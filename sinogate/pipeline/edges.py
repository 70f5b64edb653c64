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
# (name, True) for every alarm: a message's raised alarms are ``message.items() & _RAISED``, which
# looks each one up in the message (a frozenset: the message's values are never hashed); a value
# that only equals True (1, 1.0) is ruled out with ``is True`` afterwards.
_RAISED = frozenset((name, True) for name in ALARMS)
_ABSENT = object()


def alarm_name(param: str) -> str:
    for suffix in SUFFIXES:
        if param.endswith(suffix):
            return param[: -len(suffix)]
    return param


class StateEdges(Handler):
    name = "edges"

    def handle(self, message: Message, ctx: Context) -> Message:
        scratch = ctx.scratch
        if scratch.get("late") or scratch.get("flagged"):  # not live
            return message
        state = ctx.state(self.name)
        if state is None:
            return message
        flags: dict[str, bool] | None = state.get("alarms")
        if flags is None:
            flags = state["alarms"] = {}
        # Most flags are false and stay so: only the alarms set now, and those set before, are
        # looked at one by one (set operations over the message's items run in C).
        raised = message.items() & _RAISED
        fired = []
        for key, _ in raised:
            if message[key] is True and not flags.get(key):
                flags[key] = True
                fired.append(key)
        if flags:
            for key, was in flags.items():
                if was and message.get(key, _ABSENT) is False and key in ALARMS:
                    flags[key] = False
        if fired:
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
