"""Small field parsers shared by the H02 text and binary decoders (no regex on the hot path)."""

from __future__ import annotations

from functools import lru_cache
from typing import Final

from sinogate.codecs.base import Message

KNOTS: Final = 1.852
MOVING_KMH: Final = 5.0


def days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01; lenient like a Java Calendar (month 13 rolls over, day 0 is the 31st...)."""
    y += (m - 1) // 12
    m = (m - 1) % 12 + 1
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468 + d - 1


def device_time(date: str, hms: str, offset_s: float, now: float) -> float:
    """UNIX seconds (UTC) from DDMMYY and HHMMSS in the device zone; ``now`` when there is no date.

    An empty HHMMSS gives midnight; seconds or minutes past 59 roll over (lenient).
    Raises ValueError when the fields are not numbers.
    """
    if not date:
        return now
    return float(_day_start(date) + _seconds(hms)) - offset_s


def day_start(date: str) -> int:
    """UNIX seconds of DDMMYY 00:00."""
    if len(date) != 6 or not date.isdigit() or not date.isascii():
        raise ValueError(f"bad date {date!r}")
    return days_from_civil(2000 + int(date[4:6]), int(date[2:4]), int(date[0:2])) * 86400


_day_start = lru_cache(maxsize=512)(day_start)  # memoised: a pure function


@lru_cache(maxsize=4096)
def _seconds(hms: str) -> int:
    """Seconds into the day of HHMMSS (empty: 0; lenient past 59; memoised: a pure function)."""
    if not hms:
        return 0
    if len(hms) < 6 or not hms[:6].isdigit() or not hms.isascii():
        raise ValueError(f"bad time {hms!r}")
    return int(hms[0:2]) * 3600 + int(hms[2:4]) * 60 + int(hms[4:6])


def coordinate(value: str) -> float | None:
    """Degrees from the three H02 forms: ``DDMM.MMMM``, ``D..DMMmmmm`` (no point), ``-DD-MM.MMMM``.

    Returns None for an empty field; raises ValueError for garbage.
    """
    dot = value.find(".")
    if dot > 2 and value[0] != "-":  # the common DDMM.MMMM form (int/float ignore outer spaces)
        result = int(value[: dot - 2]) + float(value[dot - 2 :]) / 60.0
    else:
        v = value.strip()
        if not v:
            return None
        if v[0] == "-":
            deg, sep, minutes = v[1:].partition("-")
            if not sep:
                raise ValueError(f"bad coordinate {value!r}")
            result = int(deg or 0) + float(minutes) / 60.0
        elif "." not in v:
            if not v.isdigit():
                raise ValueError(f"bad coordinate {value!r}")
            result = int(v[:-6] or 0) + (int(v[-6:-4] or 0) + int(v[-4:]) / 10000.0) / 60.0
        else:
            dot = v.find(".")
            result = float(v) / 60.0 if dot <= 2 else int(v[: dot - 2]) + float(v[dot - 2 :]) / 60.0
    if not 0.0 <= result <= 180.0:  # also false for NaN
        raise ValueError(f"bad coordinate {value!r}")
    return result


def number(value: str, default: float = 0.0) -> float:
    """A decimal field (leading spaces allowed); ``default`` when empty; finite or ValueError."""
    v = value.strip()
    if not v:
        return default
    f = float(v)
    if not -1e9 < f < 1e9:
        raise ValueError(f"bad number {value!r}")
    return f


def vehicle_state(msg: Message) -> None:
    """``vehicle.state`` from speed and ignition: moving, else idling / parked (none when ignition is unknown)."""
    if msg.get("position.speed", 0.0) >= MOVING_KMH:
        msg["vehicle.state"] = "moving"
    else:
        ignition = msg.get("engine.ignition.status")
        if ignition is not None:
            msg["vehicle.state"] = "idling" if ignition else "parked"


def battery_level(v: int) -> int | None:
    """Battery % from the H02 battery value (the binary battery byte, the text battery field):
    0 none, 1-3 (v-1)*10, 4-6 (v-1)*20, 7-100 v, 0xF1-0xF6 v-0xF0, anything else none."""
    if v == 0:
        return None
    if 1 <= v <= 3:
        return (v - 1) * 10
    if 4 <= v <= 6:
        return (v - 1) * 20
    if 7 <= v <= 100:
        return v
    if 0xF1 <= v <= 0xF6:
        return v - 0xF0
    return None


def is_hhmmss(value: str) -> bool:
    return len(value) == 6 and value.isdigit() and value.isascii()


def iccid(value: str) -> str | None:
    """A SIM ICCID (starts with 89, 18-22 characters, F or ? padding dropped), else None."""
    v = value.strip()
    if 18 <= len(v) <= 22 and v.startswith("89"):
        digits = v.rstrip("Ff?")
        if digits.isdigit() and digits.isascii():
            return digits
    return None
