"""Cheap UTC calendar formatting for integer UNIX seconds (no ``time.strftime`` per message)."""

from __future__ import annotations

import datetime as _dt

_DAY_CACHE: dict[int, tuple[int, int, int]] = {}
_EPOCH = _dt.date(1970, 1, 1)


def civil(ts: int) -> tuple[int, int, int, int, int, int]:
    """``ts`` (UNIX seconds, UTC) → (year, month, day, hour, minute, second)."""
    days, sod = divmod(ts, 86400)
    ymd = _DAY_CACHE.get(days)
    if ymd is None:
        d = _EPOCH + _dt.timedelta(days=days)
        ymd = (d.year, d.month, d.day)
        if len(_DAY_CACHE) > 4096:
            _DAY_CACHE.clear()
        _DAY_CACHE[days] = ymd
    hh, rem = divmod(sod, 3600)
    mm, ss = divmod(rem, 60)
    return ymd[0], ymd[1], ymd[2], hh, mm, ss


def hhmmss(ts: int) -> str:
    _, _, _, hh, mm, ss = civil(ts)
    return f"{hh:02d}{mm:02d}{ss:02d}"
