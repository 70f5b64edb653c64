"""Flags device times that cannot be right, so they never become the latest position.

A time more than a day ahead of the server clock or before 2000 is kept (it is what the device
said) but marked ``timestamp.flagged``; the store then leaves telemetry alone for that message.
"""

from __future__ import annotations

from sinogate.pipeline import Context, Message

YEAR_2000 = 946_684_800.0
MAX_AHEAD = 86_400.0


def time_sanity(message: Message, ctx: Context) -> Message:
    ts = message.get("timestamp")
    if not isinstance(ts, int | float) or ts < YEAR_2000 or ts > ctx.now + MAX_AHEAD:
        message["timestamp.flagged"] = True
    return message
