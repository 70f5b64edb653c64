"""Device online/offline events.

A device is offline once nothing came from it for ``offline_after`` seconds (default 600,
server time); the runtime checks that periodically (``offline_event``) and records a
``device.offline`` event. The next live message makes it ``device.online`` again (this handler).
A device that was never seen is neither.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from sinogate.pipeline.base import Context, Handler, Message


class Presence(Handler):
    name = "presence"
    options: ClassVar[Mapping[str, Any]] = {"offline_after": 600.0}

    def handle(self, message: Message, ctx: Context) -> Message:
        scratch = ctx.scratch
        if scratch.get("late") or scratch.get("flagged"):  # not live
            return message
        state = ctx.state(self.name)
        if state is None:
            return message
        if state.get("offline"):
            state["offline"] = False
            ctx.emit("device.online", message, **{"offline.since": state.get("seen")})
        state["seen"] = ctx.now
        return message

    def offline_after(self, device: Mapping[str, Any]) -> float:
        settings = device.get("settings") or {}
        value = settings.get("offline_after")
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else float(
            self.defaults["offline_after"])

    def offline_event(self, states: dict[str, Any], *, device: Mapping[str, Any], now: float) -> dict[str, Any] | None:
        """Marks the device offline and returns the ``device.offline`` event when it has been silent
        for ``offline_after`` seconds and was not offline yet; else ``None``."""
        state = states.get(self.name)
        if not state or state.get("offline") or state.get("seen") is None:
            return None
        if now - state["seen"] < self.offline_after(device):
            return None
        state["offline"] = True
        return {"device.id": device["id"], "ident": device.get("ident"), "timestamp": now, "type": "device.offline",
                "last.seen": state["seen"]}
