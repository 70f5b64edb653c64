"""Flags device times that cannot be right, so they never become the latest position.

A time more than ``time_max_ahead`` seconds (default a day) ahead of the server clock, or before
2000, is kept (it is what the device said) but marked ``timestamp.flagged``; the telemetry rule
then leaves telemetry alone for that message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from sinogate.pipeline.base import Context, Handler, Message

YEAR_2000 = 946_684_800.0
_NUMBER = (int, float)


class TimeSanity(Handler):
    name = "time_sanity"
    options: ClassVar[Mapping[str, Any]] = {"time_max_ahead": 86_400.0}

    def handle(self, message: Message, ctx: Context) -> Message:
        ts = message.get("timestamp")
        if ts.__class__ is float and YEAR_2000 <= ts <= ctx.now + self.setting(ctx, "time_max_ahead"):
            return message  # the usual case
        if (
            not isinstance(ts, _NUMBER)
            or isinstance(ts, bool)
            or ts < YEAR_2000
            or ts > ctx.now + self.setting(ctx, "time_max_ahead")
        ):
            message["timestamp.flagged"] = True
        return message
