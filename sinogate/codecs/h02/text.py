"""H02 text message decoders (reference §2-§4), field-split rather than one giant regex.

Every decoder takes the comma-split fields of ``*XX,ID,TYPE,...`` (without ``*`` and ``#``), the
device ident, the device time offset in seconds and ``now``, and returns one message. Garbage
raises ValueError / IndexError, which the connection turns into a frame error.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Final

from sinogate.codecs.base import Message
from sinogate.codecs.h02.fields import (
    KNOTS,
    MOVING_KMH,
    battery_level,
    coordinate,
    day_start,
    device_time,
    iccid,
    is_hhmmss,
    number,
    vehicle_state,
)
from sinogate.codecs.h02.status import apply_status, parse_status, status_template, with_status

Decoder = Callable[[list[str], str, float, float], Message]

_NS: Final = {"N": 1.0, "S": -1.0, "n": 1.0, "s": -1.0}
_EW: Final = {"E": 1.0, "W": -1.0, "e": 1.0, "w": -1.0}
_INVALID: Final = frozenset(("V", "B", ""))
_HEMI_NS: Final = frozenset(("N", "S", "n", "s", "0"))
_HEMI_EW: Final = frozenset(("E", "W", "e", "w", "0"))


def _block_at(p: list[str], j: int) -> bool:
    """Is ``p[j]`` the HHMMSS of a ``HHMMSS,S,LAT,N,LON,E,SPEED,COURSE`` block?"""
    return (
        len(p) > j + 7
        and p[j + 3] in _HEMI_NS
        and p[j + 5] in _HEMI_EW
        and len(p[j + 1]) <= 1
        and (p[j] == "" or is_hhmmss(p[j]))
    )


def _find_block(p: list[str], start: int) -> int:
    for j in range(start, len(p) - 7):
        if _block_at(p, j):
            return j
    return -1


def _position(msg: Message, p: list[str], j: int) -> None:
    """Position fields of the block at ``j`` (no position when lat/lon or hemispheres are missing)."""
    ns = _NS.get(p[j + 3])
    ew = _EW.get(p[j + 5])
    if ns is None or ew is None:
        return
    lat = coordinate(p[j + 2])
    lon = coordinate(p[j + 4])
    if lat is None or lon is None:
        return
    if lat > 90.0:
        raise ValueError(f"latitude out of range: {p[j + 2]!r}")
    speed = p[j + 6]
    course = p[j + 7]
    speed_kn = float(speed) if speed.strip() else 0.0
    if not 0.0 <= speed_kn < 100000.0:
        raise ValueError(f"bad speed {speed!r}")
    msg["position.latitude"] = lat * ns
    msg["position.longitude"] = lon * ew
    msg["position.speed"] = speed_kn * KNOTS
    msg["position.direction"] = number(course) if course else 0.0
    msg["position.valid"] = p[j + 1] not in _INVALID


def _cell_extras(msg: Message, extra: list[str]) -> None:
    cell = _cell(extra[0], extra[1], extra[2], extra[3])
    if cell is not None:
        msg.update(cell)


@lru_cache(maxsize=4096)
def _cell(mcc_s: str, mnc_s: str, lac_s: str, cid_s: str) -> dict[str, int] | None:
    """``MCC,MNC,LAC,CID[,x]`` with the number base guessed from the MCC (valid MCC 200-799).

    All-digit MCC that is a valid decimal MCC -> decimal (LAC and CID switch to hex when either
    carries a hex letter); otherwise a valid hexadecimal MCC -> everything hex; else nothing.
    Raises ValueError when the fields are not numbers in the chosen base. Memoised: a device
    reports the same cell many times in a row.
    """
    mcc_s, lac_s, cid_s = mcc_s.strip(), lac_s.strip(), cid_s.strip()
    if not mcc_s:
        return None
    if mcc_s.isdigit() and 200 <= int(mcc_s) <= 799:
        mcc = int(mcc_s)
        mnc = int(mnc_s)
        if lac_s.isdigit() and cid_s.isdigit():
            lac, cid = int(lac_s), int(cid_s)
        else:
            lac, cid = int(lac_s, 16), int(cid_s, 16)
    else:
        mcc = int(mcc_s, 16)
        if not 200 <= mcc <= 799:
            return None
        mnc = int(mnc_s, 16)
        lac, cid = int(lac_s, 16), int(cid_s, 16)
    return {"gsm.mcc": mcc, "gsm.mnc": mnc, "gsm.lac": lac, "gsm.cellid": cid}


def _extras(msg: Message, extra: list[str]) -> None:
    if len(extra) == 6 and "." in extra[2]:
        # odometer (m), temperature, fuel (d.d), altitude, LAC (hex), CID (hex) - reference §3
        msg["vehicle.mileage"] = int(extra[0]) / 1000.0
        msg["sensor.temperature"] = number(extra[1])
        msg["fuel.level"] = number(extra[2])
        msg["position.altitude"] = number(extra[3])
        msg["gsm.lac"] = int(extra[4].strip(), 16)
        msg["gsm.cellid"] = int(extra[5].strip(), 16)
        return
    if len(extra) >= 4:
        try:
            _cell_extras(msg, extra)
        except ValueError:
            pass  # not a cell after all: vendor fields we do not know
    for field in extra:
        if len(field) >= 18:
            sim = iccid(field)
            if sim:
                msg["gsm.sim.iccid"] = sim


def decode_position(p: list[str], ident: str, offset_s: float, now: float) -> Message:
    """V1, V2, V4, V5, V6, V8, V19, VI1, ...: ``HHMMSS,S,LAT,N,LON,E,SPEED,COURSE[,BAT],DDMMYY...``.

    ``BAT`` (1-3 digits right before the date) is ``battery.level`` with the binary battery byte's
    value mapping (``fields.battery_level``: ``4`` is 60 %, ``100`` is 100 %)."""
    typ = p[2]
    msg: Message = {"ident": ident, "message.type": typ}
    if typ == "V4":
        return _decode_v4(msg, p, offset_s, now)
    j = 3 if _block_at(p, 3) else _find_block(p, 3)
    if j < 0:
        raise ValueError("no position block")
    return _after_block(msg, p, j, offset_s, now)


def common_report(s: str, p: list[str], ident: str, typ: str, offset_s: float, vendor: str) -> Message | None:
    """A position report in the layout nearly every report has, ``XX,ID,TYPE,HHMMSS,A,DDMM.MMMM,N,
    DDDMM.MMMM,E,SPEED,COURSE,DDMMYY,STATUS[,extra...]`` (``p``: ``s`` split at commas, at least 13
    fields, TYPE a position type other than V4; the extras may be split or left in one field, as
    ``s.split(",", 13)`` leaves them; ``s`` decoded as latin-1, like every H02 text), decoded in
    one pass, ``vendor.code`` included.

    None as soon as anything differs from that layout (an empty or odd field, a battery field, a
    missing status, a value the generic path rejects): ``decode_position`` then decides, errors
    included. Where it returns a message, it is exactly the message ``decode_position`` and the
    connection make (``tests/codecs/test_fast_equivalence.py``): the status word and the fields
    after it (cell, ICCID) come from a template made once per distinct tail (``_layout``), so a
    report costs a dict copy and a handful of assignments.
    """
    hms = p[3]
    date = p[11]
    h = p[6]
    ns = 1.0 if h == "N" or h == "n" else -1.0 if h == "S" or h == "s" else 0.0
    h = p[8]
    ew = 1.0 if h == "E" or h == "e" else -1.0 if h == "W" or h == "w" else 0.0
    # isdecimal: in latin-1 text exactly the ASCII digits (isdigit and isascii, as the generic path asks)
    if (not ns or not ew or len(hms) != 6 or len(date) != 6 or len(p[12]) != 8 or len(p[4]) > 1
            or not (hms.isdecimal() and date.isdecimal())):
        return None
    k = len(s) + 1
    for i in range(len(p) - 1, 11, -1):
        k -= len(p[i]) + 1
    tail = s[k:]  # STATUS[,extra...] as sent
    template = _LAYOUTS.get(tail)
    if template is None:
        template = _layout(p[12], s[k + len(p[12]) + 1:].split(",") if len(p) > 13 else [])
        if template is None:
            return None
        if len(tail) <= _MAX_TAIL:
            if len(_LAYOUTS) >= _MAX_LAYOUTS:
                _LAYOUTS.clear()
            _LAYOUTS[tail] = template
    try:
        lat_s = p[5]
        dot = lat_s.find(".")
        if dot > 2 and lat_s[0] != "-":
            lat = int(lat_s[: dot - 2]) + float(lat_s[dot - 2 :]) / 60.0
            if not 0.0 <= lat <= 90.0:  # also false for NaN
                return None
        else:
            c = coordinate(lat_s)
            if c is None or c > 90.0:
                return None
            lat = c
        lon_s = p[7]
        dot = lon_s.find(".")
        if dot > 2 and lon_s[0] != "-":
            lon = int(lon_s[: dot - 2]) + float(lon_s[dot - 2 :]) / 60.0
            if not 0.0 <= lon <= 180.0:
                return None
        else:
            c = coordinate(lon_s)
            if c is None:
                return None
            lon = c
        speed = float(p[9])  # an empty or blank field raises: the generic path reads it as 0
        course = float(p[10])
    except ValueError:
        return None
    if not (0.0 <= speed < 100000.0 and -1e9 < course < 1e9):
        return None
    day = _DAY_START.get(date)
    if day is None:
        day = day_start(date)
        if len(_DAY_START) >= 512:
            _DAY_START.clear()
        _DAY_START[date] = day
    t = int(hms)
    kmh = speed * KNOTS
    msg: Message = template.copy()
    msg["ident"] = ident
    msg["message.type"] = typ
    msg["timestamp"] = float(day + t // 10000 * 3600 + t // 100 % 100 * 60 + t % 100) - offset_s
    msg["position.latitude"] = lat * ns
    msg["position.longitude"] = lon * ew
    msg["position.speed"] = kmh
    msg["position.direction"] = course
    msg["position.valid"] = p[4] not in _INVALID
    if kmh >= MOVING_KMH:
        msg["vehicle.state"] = "moving"
    else:  # the status word always carries the ignition bit
        msg["vehicle.state"] = "idling" if msg["engine.ignition.status"] else "parked"
    msg["vendor.code"] = vendor
    return msg


_DAY_START: dict[str, int] = {}
_PER_REPORT: Final = ("position.latitude", "position.longitude", "position.speed", "position.direction",
                      "position.valid")
_LAYOUTS: dict[str, Message] = {}
_MAX_LAYOUTS: Final = 1024
_MAX_TAIL: Final = 96


def _layout(word: str, extras: list[str]) -> Message | None:
    """The message template of a report whose fields after the course are ``DDMMYY,word,extras``:
    every key in the generic path's order, the status flags and the extras' values filled in,
    the per-report values None. None when the word is no status or the extras raise (the generic
    path reports that) or set a key a report sets again."""
    if not word.isalnum():
        return None
    try:
        status = int(word, 16)
    except ValueError:
        return None
    template = status_template(status).copy()
    for key in _PER_REPORT:
        template[key] = None
    if extras:
        try:
            _extras(template, extras)
        except Exception:  # the generic path raises it again and reports it
            return None
        if "vehicle.state" in template or "vendor.code" in template or any(
                template[key] is not None for key in _PER_REPORT):
            return None
    template["vehicle.state"] = None
    template["vendor.code"] = None
    return template


def _decode_v4(msg: Message, p: list[str], offset_s: float, now: float) -> Message:
    """``V4,CMD[,args],hhmmss,<position>`` or the short ack ``V4,CMD,hhmmss[,args]`` (no position)."""
    msg["command.code"] = p[3].strip()
    j = _find_block(p, 4)
    if j < 0:
        msg["timestamp"] = now
        msg["command.response"] = ",".join(p[3:])
        for field in p[4:]:
            if is_hhmmss(field):
                msg["command.time"] = field
                break
        return msg
    msg["command.response"] = ",".join(p[3:j])
    if j > 4 and is_hhmmss(p[j - 1]):
        msg["command.time"] = p[j - 1]
    return _after_block(msg, p, j, offset_s, now)


def _after_block(head: Message, p: list[str], j: int, offset_s: float, now: float) -> Message:
    """The rest after the position block: ``[BAT,]DDMMYY[,SIM1,SIM2,SIM3][,STATUS[,extra...]]``.

    BAT is told from the date by its width (1-3 digits, then a 6-digit or an empty date)."""
    r = p[j + 8 :]
    nr = len(r)
    k = 0
    # optional BAT (1-3 digits) before the date: a 6-digit date, or an empty one followed by the status
    if nr > 1 and 0 < len(r[0]) <= 3 and r[0].isdigit() and r[0].isascii() and (
        (len(r[1]) == 6 and r[1].isdigit()) or (r[1] == "" and nr > 2 and parse_status(r[2]) is not None)
    ):
        k = 1
        battery = battery_level(int(r[0]))
        if battery is not None:
            head["battery.level"] = battery
    date = ""
    if k < nr and (r[k] == "" or (len(r[k]) == 6 and r[k].isdigit())):
        date = r[k]
        k += 1
    head["timestamp"] = device_time(date, p[j], offset_s, now)
    status = None
    sim_fields: list[str] = []
    if k < nr:
        status = parse_status(r[k])
        if status is not None:
            k += 1
        elif k + 3 < nr and (status := parse_status(r[k + 3])) is not None:
            sim_fields = r[k : k + 3]  # V19: ,<empty>,<ip or phone>,<iccid>,STATUS
            k += 4
        else:
            for idx in range(k, nr):
                status = parse_status(r[idx])
                if status is not None:
                    sim_fields = r[k:idx]
                    k = idx + 1
                    break
            else:
                k = nr
    msg = with_status(head, status) if status is not None else head
    _position(msg, p, j)
    for field in sim_fields:
        sim = iccid(field)
        if sim:
            msg["gsm.sim.iccid"] = sim
    if k < nr:
        _extras(msg, r[k:])
    if "position.latitude" in msg:
        vehicle_state(msg)
    return msg


def decode_nbr(p: list[str], ident: str, offset_s: float, now: float) -> Message:
    """``NBR,HHMMSS,MCC,MNC,TA,N,[LAC,CID,RXLEV]*N,DDMMYY,STATUS[,extra]``: first cell kept."""
    count = int(p[7])
    if not 0 <= count <= 64:
        raise ValueError(f"bad cell count {p[7]!r}")
    end = 8 + 3 * count
    msg: Message = {"ident": ident, "message.type": "NBR"}
    msg["timestamp"] = device_time(p[end], p[3], offset_s, now)
    msg["gsm.mcc"] = int(p[4])
    msg["gsm.mnc"] = int(p[5])
    if count:
        msg["gsm.lac"] = int(p[8])
        msg["gsm.cellid"] = int(p[9])
    status = parse_status(p[end + 1]) if len(p) > end + 1 else None
    if status is not None:
        apply_status(msg, status)
    return msg


def decode_link(p: list[str], ident: str, offset_s: float, now: float) -> Message:
    """``LINK,HHMMSS,RSSI,SATELLITES,BATTERY%,STEPS,TURNOVERS,DDMMYY,STATUS``."""
    msg: Message = {"ident": ident, "message.type": "LINK"}
    msg["timestamp"] = device_time(p[9], p[3], offset_s, now)
    msg["gsm.signal.level"] = int(p[4])
    msg["position.satellites"] = int(p[5])
    msg["battery.level"] = int(p[6])
    status = parse_status(p[10]) if len(p) > 10 else None
    if status is not None:
        apply_status(msg, status)
    return msg


def decode_v3(p: list[str], ident: str, offset_s: float, now: float) -> Message:
    """``V3,HHMMSS,MCCMNC,N,[LAC,CID,RXLEV,TA]*N,BAT(hex),REBOOT,X,DDMMYY,STATUS``."""
    if len(p) < 12:
        raise ValueError("short V3")
    msg: Message = {"ident": ident, "message.type": "V3"}
    msg["timestamp"] = device_time(p[-2], p[3], offset_s, now)
    mccmnc = p[4].strip()
    if len(mccmnc) < 4 or not mccmnc.isdigit():
        raise ValueError(f"bad MCC/MNC {mccmnc!r}")
    msg["gsm.mcc"] = int(mccmnc[:3])
    msg["gsm.mnc"] = int(mccmnc[3:])
    if int(p[5]) > 0:
        msg["gsm.lac"] = int(p[6])
        msg["gsm.cellid"] = int(p[7])
    msg["h02.battery.raw"] = int(p[-5], 16)
    status = parse_status(p[-1])
    if status is not None:
        apply_status(msg, status)
    return msg


def decode_vp1(p: list[str], ident: str, offset_s: float, now: float) -> Message:
    """``VP1,A|B,LAT,N,LON,E,SPEED,COURSE,DDMMYY`` (time = date 00:00) or ``VP1,V,MCC,MNC,LAC,CID,RSSI[Y...]``."""
    msg: Message = {"ident": ident, "message.type": "VP1"}
    if len(p) >= 11 and p[5] in _HEMI_NS:
        msg["timestamp"] = device_time(p[10], "", offset_s, now)
        # reuse the generic block reader: an empty HHMMSS before S,LAT,N,LON,E,SPEED,COURSE
        _position(msg, [*p[:3], "", *p[3:10]], 3)
        if "position.valid" in msg:
            msg["position.valid"] = p[3] in ("A", "B")
            vehicle_state(msg)
        return msg
    msg["timestamp"] = now
    first = ",".join(p[4:]).split("Y", 1)[0].split(",")
    msg["gsm.mcc"] = int(first[0])
    msg["gsm.mnc"] = int(first[1])
    msg["gsm.lac"] = int(first[2])
    msg["gsm.cellid"] = int(first[3])
    return msg


def decode_heartbeat(p: list[str], ident: str, offset_s: float, now: float) -> Message:
    """``HTBT[,battery%]`` and ``V0``: no position."""
    msg: Message = {"ident": ident, "message.type": p[2], "timestamp": now}
    if p[2] == "HTBT" and len(p) > 3 and p[3].strip():
        msg["battery.level"] = int(p[3])
    return msg


_VOLT = re.compile(r"VOLT:\s*(\d+(?:\.\d+)?)\s*V")
_GSM = re.compile(r"GSM:\s*(\d+)")


def decode_sms(p: list[str], ident: str, offset_s: float, now: float) -> Message:
    """``SMS,<free text>``: the device's answer to a raw (SMS-style) command."""
    text = ",".join(p[3:])
    msg: Message = {"ident": ident, "message.type": "SMS", "timestamp": now, "command.response": text}
    m = _VOLT.search(text)
    if m:
        msg["external.powersource.voltage"] = float(m.group(1))
    m = _GSM.search(text)
    if m and int(m.group(1)) <= 31:
        msg["gsm.signal.level"] = int(m.group(1))
    return msg


def decode_bare(p: list[str], ident: str, offset_s: float, now: float) -> Message:
    """XT (heartbeat of another protocol family), BS, BASE: not decoded; the device was heard."""
    return {"ident": ident, "message.type": p[2], "timestamp": now}


DECODERS: Final[dict[str, Decoder]] = {
    "NBR": decode_nbr,
    "LINK": decode_link,
    "V3": decode_v3,
    "VP1": decode_vp1,
    "V0": decode_heartbeat,
    "HTBT": decode_heartbeat,
    "SMS": decode_sms,
}

# Types that are understood but not decoded (no error reported for them).
KNOWN_BARE: Final = frozenset(("XT", "BS", "BASE"))


def decoder_for(typ: str) -> tuple[Decoder, bool]:
    """(decoder, decoded) for a message type; ``decoded`` False for bare (not decoded) messages."""
    d = DECODERS.get(typ)
    if d is not None:
        return d, True
    if typ[:1] == "V":
        return decode_position, True
    return decode_bare, False
