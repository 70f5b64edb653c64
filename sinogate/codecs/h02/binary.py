"""H02 binary ``$`` frame decoder (reference §6). All numbers BCD except the trailing cell data.

Layout (10-digit id; the 8-byte id variant, usually 42 bytes long, shifts every later offset by 3;
which one a frame uses is read from where its time and date fit, ``framer.long_id``)::

    0 '$' | 1-5 id | 6-8 HHMMSS | 9-11 DDMMYY | 12-15 lat DDMMmmmm | 16 battery
    17-21 lon DDDMMmmmm + flags nibble | 22-24 speed (knots) + course | 25-28 status | 29.. trailer

Trailer of the 45-byte frame (when byte 29 is 0xFF): 31 CSQ, 32 satellites, 33-36 counter
(``h02.mileage.raw``, unit unknown), 37-38 MCC, 39 MNC, 40-41 LAC, 42-43 CID, 44 sequence. Devices
with 0x00 at byte 29 carry the same cell block at 37-43 (the MCC matches the fix's country in the
samples), the rest of their trailer is unknown. 46-byte frame: 32-36 odometer (BCD metres),
38 fuel %, 42-43 LAC, 44-45 CID. 47-byte frame (the 45-byte layout with two more bytes before the
last, reported as the external voltage; scale unconfirmed, not decoded): the 45-byte fields, the
sequence in its last byte. Frames of other lengths (37 bytes and others) carry the fixed part only,
as far as sinogate knows.
"""

from __future__ import annotations

from typing import Final

from sinogate.codecs.base import Message
from sinogate.codecs.h02.fields import KNOTS, battery_level, days_from_civil, vehicle_state
from sinogate.codecs.h02.framer import long_id
from sinogate.codecs.h02.status import status_template, with_status


def binary_ident(raw: bytes, long: bool | None = None) -> str:
    """Device id: 10 BCD digits, or the first 15 digits of an 8-byte id (the 42-byte variant);
    ``long``: ``framer.long_id(raw)`` when already known."""
    if long_id(raw) if long is None else long:
        return raw[1:9].hex()[:15]
    return raw[1:6].hex()


def decode_binary(raw: bytes, ident: str, offset_s: float, long: bool | None = None) -> Message:
    """One message from a ``$`` frame; ValueError when a BCD field holds a non-digit nibble.
    ``long``: ``framer.long_id(raw)`` when already known."""
    n = len(raw)
    if n < 29:
        raise ValueError(f"binary frame too short ({n} bytes)")
    o = 3 if (long_id(raw) if long is None else long) else 0
    # every BCD field read byte by byte through a table (-1: a nibble is no digit); a frame with
    # such a nibble goes the hex-text way, which raises the error the frame reports
    bcd = _BCD
    hh, mi, ss = bcd[raw[6 + o]], bcd[raw[7 + o]], bcd[raw[8 + o]]
    dd, mo, yy = bcd[raw[9 + o]], bcd[raw[10 + o]], bcd[raw[11 + o]]
    la0, la1, la2, la3 = bcd[raw[12 + o]], bcd[raw[13 + o]], bcd[raw[14 + o]], bcd[raw[15 + o]]
    lo0, lo1, lo2, lo3 = raw[17 + o], raw[18 + o], bcd[raw[19 + o]], bcd[raw[20 + o]]
    lo4 = raw[21 + o]
    sp, sc, co = bcd[raw[22 + o]], raw[23 + o], bcd[raw[24 + o]]
    lo0 = bcd[lo0]
    if (hh | mi | ss | dd | mo | yy | la0 | la1 | la2 | la3 | lo0 | lo2 | lo3 | sp | co) < 0 \
            or lo1 >> 4 > 9 or lo1 & 0x0F > 9 or lo4 >> 4 > 9 or sc >> 4 > 9 or sc & 0x0F > 9:
        return _decode_hex(raw, ident, offset_s, o)
    days = days_from_civil(2000 + yy, mo, dd)
    ts = float(days * 86400 + hh * 3600 + mi * 60 + ss) - offset_s
    lat = la0 + (la1 * 10000 + la2 * 100 + la3) / 600000.0
    lon = (lo0 * 10 + (lo1 >> 4)) + ((lo1 & 0x0F) * 100000 + lo2 * 1000 + lo3 * 10 + (lo4 >> 4)) / 600000.0
    if lat > 90.0 or lon > 180.0:
        raise ValueError(f"coordinates out of range ({lat:.5f}, {lon:.5f})")
    flags = lo4 & 0x0F
    msg: Message = status_template(raw[25 + o] << 24 | raw[26 + o] << 16 | raw[27 + o] << 8 | raw[28 + o]).copy()
    msg["ident"] = ident
    msg["message.type"] = "$"
    msg["timestamp"] = ts
    msg["position.latitude"] = lat if flags & 0x4 else -lat
    msg["position.longitude"] = lon if flags & 0x8 else -lon
    msg["position.speed"] = (sp * 10 + (sc >> 4)) * KNOTS
    msg["position.direction"] = float((sc & 0x0F) * 100 + co)
    msg["position.valid"] = flags & 0x2 != 0
    return _rest(msg, raw, n, o)


_BCD: Final = tuple((b >> 4) * 10 + (b & 0x0F) if b >> 4 < 10 and b & 0x0F < 10 else -1 for b in range(256))


def _decode_hex(raw: bytes, ident: str, offset_s: float, o: int) -> Message:
    """``decode_binary`` through the frame's hex text: raises the ValueError of a non-digit nibble."""
    n = len(raw)
    h = raw.hex()
    t = h[(6 + o) * 2 : (9 + o) * 2]
    d = h[(9 + o) * 2 : (12 + o) * 2]
    days = days_from_civil(2000 + int(d[4:6]), int(d[2:4]), int(d[0:2]))
    ts = float(days * 86400 + int(t[0:2]) * 3600 + int(t[2:4]) * 60 + int(t[4:6])) - offset_s
    lat_s = h[(12 + o) * 2 : (16 + o) * 2]
    lon_s = h[(17 + o) * 2 : (22 + o) * 2]
    lat = int(lat_s[0:2]) + int(lat_s[2:8]) / 600000.0
    lon = int(lon_s[0:3]) + int(lon_s[3:9]) / 600000.0
    if lat > 90.0 or lon > 180.0:
        raise ValueError(f"coordinates out of range ({lat:.5f}, {lon:.5f})")
    flags = raw[21 + o] & 0x0F
    sc = h[(22 + o) * 2 : (25 + o) * 2]
    msg = with_status({"ident": ident, "message.type": "$", "timestamp": ts},
                      int.from_bytes(raw[25 + o : 29 + o], "big"))
    msg["position.latitude"] = lat if flags & 0x4 else -lat
    msg["position.longitude"] = lon if flags & 0x8 else -lon
    msg["position.speed"] = int(sc[0:3]) * KNOTS
    msg["position.direction"] = float(int(sc[3:6]))
    msg["position.valid"] = flags & 0x2 != 0
    return _rest(msg, raw, n, o)


def _rest(msg: Message, raw: bytes, n: int, o: int) -> Message:
    """Battery, the tail of 45, 46 and 47-byte frames, and the vehicle state."""
    battery = battery_level(raw[16 + o])
    if battery is not None:
        msg["battery.level"] = battery
    if (n == 45 or n == 47) and not o:
        _trailer45(msg, raw)
    elif n == 46 and raw[29] == 0xFF and raw[32:37].hex().isdigit():  # a tail that is not BCD: position only
        msg["vehicle.mileage"] = int(raw[32:37].hex()) / 1000.0
        msg["fuel.level"] = raw[38]
        msg["gsm.lac"] = int.from_bytes(raw[42:44], "big")
        msg["gsm.cellid"] = int.from_bytes(raw[44:46], "big")
    vehicle_state(msg)
    return msg


def _trailer45(msg: Message, raw: bytes) -> None:
    # multi-byte numbers by shifts: the same ints as int.from_bytes(..., "big"), without the calls
    if raw[29] == 0xFF:
        if raw[31] <= 31:
            msg["gsm.signal.level"] = raw[31]
        if raw[32] <= 64:
            msg["position.satellites"] = raw[32]
        msg["h02.mileage.raw"] = raw[33] << 24 | raw[34] << 16 | raw[35] << 8 | raw[36]
        msg["event.seqnum"] = raw[-1]
    mcc = raw[37] << 8 | raw[38]
    if 200 <= mcc <= 799:
        msg["gsm.mcc"] = mcc
        msg["gsm.mnc"] = raw[39]
        msg["gsm.lac"] = raw[40] << 8 | raw[41]
        msg["gsm.cellid"] = raw[42] << 8 | raw[43]
