"""Clock trust: a device clock set to a local zone is detected and corrected; times ahead are flagged.

Many trackers report local time (a Sinotrack unit after the SMS ``896<pwd>E08``), so every report
arrives hours "in the future" or "in the past". With the device setting ``time_offset`` left at
its default ``auto`` (the codec then reads times in the protocol's zone: H02 UTC, JT/T 808 GMT+8):

* Real-time reports (over TCP/UDP, carrying a device time, not a blind-area batch) are compared
  with the server clock. When ``clock_reports`` (default 3) of them in a row, from different reads,
  are off by the same whole number of quarter hours (within -``clock_tolerance`` s late to 60 s
  early, at most 14 h), that is the device's clock offset: it is recorded in the handler's state
  (``offset`` s, ``hours`` = the device clock's offset from UTC, ``since``), logged once and raised
  as a ``clock.offset`` event; a later run of reports showing another offset (0 when the device was
  set back to UTC) replaces it the same way.
* From then on every message with a device time is corrected: ``timestamp`` minus the offset, the
  original in ``timestamp.original``, ``timestamp.corrected`` true, ``clock.offset`` the hours.
  Messages the codec stamped with the server time (no device time) are left alone.

A numeric ``time_offset`` is applied by the codec and disables detection. In every case a message
dated more than ``clock_max_ahead`` seconds (default 300) ahead of the server clock after any
correction is flagged (``timestamp.flagged``): it never becomes telemetry and moves no analytics,
so telemetry and "latest" follow the next correct report. Runs right after ``time_sanity``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, ClassVar

from sinogate.pipeline.base import Context, Handler, Message

log = logging.getLogger("sinogate.pipeline.clock")

QUARTER = 900.0
_NUMBER = (int, float)
MAX_OFFSET = 14 * 3600.0
EARLY = 60.0  # a device clock may run this far ahead of the server's and still count as on time


def _protocol_zone(protocol: str) -> float:
    """Hours the codec assumes the protocol's device clock is ahead of UTC (``time_offset`` unset)."""
    from sinogate.codecs import SPECS

    found = SPECS.get(protocol)
    return float(found.default_time_offset) if found is not None else 0.0


def auto_offset(device: Mapping[str, Any] | None) -> bool:
    """Is the device's ``time_offset`` ``auto`` (the default), i.e. not a number?"""
    settings = (device or {}).get("settings") or {}
    value = settings.get("time_offset")
    return not isinstance(value, _NUMBER) or isinstance(value, bool)


class Clock(Handler):
    name = "clock"
    options: ClassVar[Mapping[str, Any]] = {"clock_max_ahead": 300.0, "clock_reports": 3, "clock_tolerance": 180.0}

    def handle(self, message: Message, ctx: Context) -> Message:
        ts = message.get("timestamp")
        if not isinstance(ts, _NUMBER) or isinstance(ts, bool) or message.get("timestamp.flagged"):
            return message
        device_time = ts != ctx.now  # the codecs stamp the server time when the device sent none
        if not device_time:
            return message
        state = ctx.state(self.name) if auto_offset(ctx.device) else None
        if state is not None:
            switched = None
            if ctx.transport in ("tcp", "udp") and "position.blackbox" not in message:
                switched = self._observe(ts - ctx.now, ctx, state)
            offset = state.get("offset") or 0.0
            if offset:
                message["timestamp.original"] = ts
                ts = message["timestamp"] = ts - offset
                message["timestamp.corrected"] = True
            if "hours" in state:
                message["clock.offset"] = state["hours"]
            if switched is not None:
                self._announce(message, ctx, state, switched)
        if ts > ctx.now + float(self.setting(ctx, "clock_max_ahead")):
            message["timestamp.flagged"] = True
        return message

    def _observe(self, ahead: float, ctx: Context, state: dict[str, Any]) -> float | None:
        """Counts a real-time report that is ``ahead`` s ahead of the server; returns the previous
        offset when this report completes a run showing a new one (``state`` then holds it)."""
        q = round(ahead / QUARTER) * QUARTER
        rest = ahead - q
        if abs(q) > MAX_OFFSET or not -float(self.setting(ctx, "clock_tolerance")) <= rest <= EARLY:
            return None  # not a real-time report of a shifted clock (a buffered one, a bad clock)
        run = state.get("run")
        if run is None or run[0] != q:
            run = state["run"] = [q, 1, ctx.now]
        elif ctx.now > run[2]:  # one count per read: a burst of buffered reports is one
            run[1] += 1
            run[2] = ctx.now
        current = float(state.get("offset") or 0.0)
        if q == current or run[1] < int(self.setting(ctx, "clock_reports")):
            return None
        state["offset"] = q
        state["hours"] = _protocol_zone(ctx.protocol) + q / 3600.0
        state["since"] = ctx.now
        return current

    def _announce(self, message: Message, ctx: Context, state: dict[str, Any], previous: float) -> None:
        hours = state["hours"]
        before = _protocol_zone(ctx.protocol) + previous / 3600.0
        device = ctx.device or {}
        log.info("%s device %s (%s): clock is %+g h from UTC (was taken as %+g h); device times are corrected "
                 "by %+g s from now on", ctx.protocol, device.get("id"), message.get("ident"), hours, before,
                 -state["offset"])
        ctx.emit("clock.offset", message, **{"clock.offset": hours, "clock.offset.previous": before,
                                             "clock.correction": -state["offset"]})


def clock_view(states: Mapping[str, Any], device: Mapping[str, Any]) -> dict[str, Any]:
    """What the device API shows of a device's clock: its ``time_offset`` setting and the offset
    detected (hours of the device clock from UTC; ``None`` before any detection)."""
    state = states.get(Clock.name) or {}
    settings = device.get("settings") or {}
    return {
        "id": device.get("id"),
        "time_offset": settings.get("time_offset", "auto") if settings.get("time_offset") is not None else "auto",
        "clock.offset": state.get("hours") if auto_offset(device) else None,
        "clock.correction": -float(state.get("offset") or 0.0) if auto_offset(device) else 0.0,
        "clock.offset.detected": state.get("since") if auto_offset(device) else None,
    }
