"""JT/T 808 0x0200 location body: base fields, alarm/status bits and additional-info items."""

from __future__ import annotations

import struct
from collections.abc import Callable
from datetime import date

from sinogate.codecs.base import Message
from sinogate.codecs.jt808.bits import bits_dict
from sinogate.codecs.jt808.frame import BCD

_BASE = struct.Struct(">IIIIhHH")
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_DAYS_CACHE: dict[bytes, int] = {}


def bcd_time(raw: bytes, tz_seconds: float) -> float | None:
    """BCD YYMMDDhhmmss (device local time) → UTC UNIX seconds, None when not a valid time."""
    if len(raw) < 6:
        return None
    hh, mi, ss = BCD[raw[3]], BCD[raw[4]], BCD[raw[5]]
    if not (0 <= hh < 24 and 0 <= mi < 60 and 0 <= ss < 60):
        return None
    key = raw[:3]
    days = _DAYS_CACHE.get(key)
    if days is None:
        yy, mo, dd = BCD[raw[0]], BCD[raw[1]], BCD[raw[2]]
        if yy < 0 or mo < 1 or dd < 1:
            return None
        try:
            days = date(2000 + yy, mo, dd).toordinal() - _EPOCH_ORDINAL
        except ValueError:
            return None
        if len(_DAYS_CACHE) > 4096:
            _DAYS_CACHE.clear()
        _DAYS_CACHE[key] = days
    return float(days * 86400 + hh * 3600 + mi * 60 + ss) - tz_seconds


# --- additional-info item handlers: (message, value bytes) -------------------------------------

def _u(v: bytes) -> int:
    return int.from_bytes(v, "big")


def _mileage(m: Message, v: bytes) -> None:
    if len(v) == 4:
        m["vehicle.mileage"] = _u(v) / 10


def _fuel(m: Message, v: bytes) -> None:
    if len(v) == 2:
        raw = _u(v)
        if not raw & 0x8000:
            m["fuel.volume"] = raw / 10


def _tacho(m: Message, v: bytes) -> None:
    if len(v) == 2:
        m["tachograph.speed"] = _u(v) / 10


def _event_id(m: Message, v: bytes) -> None:
    if len(v) == 2:
        m["alarm.event.id"] = _u(v)


def _item06(m: Message, v: bytes) -> None:
    if len(v) == 1:  # vendor use: battery %
        m["battery.level"] = v[0]
    elif len(v) == 2:  # 2019: cargo temperature, top bit = negative
        raw = _u(v)
        m["cargo.temperature"] = -(raw & 0x7FFF) if raw & 0x8000 else raw


def _signals(m: Message, v: bytes) -> None:
    if len(v) == 4:
        m["vehicle.signals.bitmask"] = _u(v)


def _io(m: Message, v: bytes) -> None:
    if len(v) == 2:
        raw = _u(v)
        m["io.status.bitmask"] = raw
        m["device.deep.sleep.status"] = bool(raw & 1)
        m["device.sleep.status"] = bool(raw & 2)


def _analog(m: Message, v: bytes) -> None:
    if len(v) == 4:
        raw = _u(v)
        m["analog.input.0"] = raw & 0xFFFF
        m["analog.input.1"] = raw >> 16


def _rssi(m: Message, v: bytes) -> None:
    if len(v) == 1:
        m["gsm.signal.level"] = v[0]


def _sats(m: Message, v: bytes) -> None:
    if len(v) == 1:
        m["position.satellites"] = v[0]


def _item33(m: Message, v: bytes) -> None:
    # Jointech lock status text "*M00,45,1138600…": chars 10-12 of the status = battery V × 100
    if len(v) >= 15 and v.startswith(b"*M00"):
        digits = v[10:13]
        if digits.isdigit():
            m["battery.voltage"] = int(digits) / 100


def _battery_x10(m: Message, v: bytes) -> None:
    if v:
        m["battery.level"] = v[0] * 10


def _power_div(div: float) -> Callable[[Message, bytes], None]:
    def handler(m: Message, v: bytes) -> None:
        if len(v) in (2, 4):
            m["external.powersource.voltage"] = _u(v) / div
    return handler


def _battery_v100(m: Message, v: bytes) -> None:
    if len(v) == 2:
        m["battery.voltage"] = _u(v) / 100


def _battery_pct(m: Message, v: bytes) -> None:
    if len(v) == 1:
        if v[0] == 0xFF:
            m["battery.charging.status"] = True
        else:
            m["battery.level"] = v[0]


def _itemE1(m: Message, v: bytes) -> None:
    if len(v) == 1:
        _battery_pct(m, v)
    elif len(v) == 2:
        m["external.powersource.voltage"] = _u(v) / 10


def _itemE3(m: Message, v: bytes) -> None:
    if len(v) >= 4:
        m["battery.level"] = v[1]
        m["battery.voltage"] = _u(v[2:4]) / 100


def _itemE4(m: Message, v: bytes) -> None:
    if len(v) >= 2:
        m["battery.charging.status"] = v[0] == 0
        m["battery.level"] = v[1]


def _printable(v: bytes) -> bool:
    return bool(v) and v.isascii() and v.decode("ascii").isprintable()


def _itemEB(m: Message, v: bytes) -> None:
    n = len(v)
    if n >= 8 and _u(v[:2]) > 200 and (n - 3) % 5 == 0:  # cell list: mcc, mnc, (lac, cid, rssi)*
        m["gsm.mcc"] = _u(v[:2])
        m["gsm.mnc"] = v[2]
        m["gsm.lac"] = _u(v[3:5])
        m["gsm.cellid"] = _u(v[5:7])
        return
    if _printable(v):
        m["device.timezone"] = v.decode("ascii")
        return
    q = 0
    while q + 4 <= n:
        elen = _u(v[q:q + 2])
        etype = _u(v[q + 2:q + 4])
        nxt = q + 2 + elen
        if elen < 2 or nxt > n:
            break
        val = v[q + 4:nxt]
        if etype == 0x002D:
            if len(val) == 4:
                m["external.powersource.voltage"] = _u(val) / 1000
            elif len(val) == 2:
                m["battery.voltage"] = _u(val) / 1000
        elif etype == 0x00B2 and len(val) >= 10:
            m["gsm.sim.iccid"] = val[:10].hex().rstrip("f")
        elif etype == 0x00CE and len(val) == 2:
            m["external.powersource.voltage"] = _u(val) / 100
        elif (etype == 0x00A8 or etype == 0x00E1) and len(val) >= 1:
            m["battery.level"] = val[0]
        elif etype == 0x00D8 and len(val) >= 9:
            m["gsm.mcc"] = _u(val[:2])
            m["gsm.mnc"] = val[2]
            m["gsm.lac"] = _u(val[3:5])
            m["gsm.cellid"] = _u(val[5:9])
        q = nxt


def _power_mv(m: Message, v: bytes) -> None:
    if len(v) == 4:
        m["external.powersource.voltage"] = _u(v) / 1000


def _firmware(m: Message, v: bytes) -> None:
    if v:
        m["device.firmware.version"] = v.decode("latin-1").rstrip("\x00")


def _itemFE(m: Message, v: bytes) -> None:
    if len(v) == 1:
        m["battery.level"] = v[0]
    elif len(v) == 2:
        m["external.powersource.voltage"] = _u(v) / 10


ITEM_HANDLERS: dict[int, Callable[[Message, bytes], None]] = {
    0x01: _mileage,
    0x02: _fuel,
    0x03: _tacho,
    0x04: _event_id,
    0x06: _item06,
    0x25: _signals,
    0x2A: _io,
    0x2B: _analog,
    0x30: _rssi,
    0x31: _sats,
    0x33: _item33,
    0x56: _battery_x10,
    0x61: _power_div(100),
    0x69: _battery_v100,
    0x82: _power_div(10),
    0xD3: _power_div(10),
    0xD4: _battery_pct,
    0xE9: _battery_pct,
    0xE1: _itemE1,
    0xE3: _itemE3,
    0xE4: _itemE4,
    0xEB: _itemEB,
    0xF1: _power_mv,
    0xF2: _firmware,
    0xFE: _itemFE,
}


def _tlv_exact(body: bytes, p: int, end: int) -> bool:
    while p + 2 <= end:
        p += 2 + body[p + 1]
    return p == end


def location_sound(body: bytes, off: int, end: int) -> bool:
    """Can the 0x0200 body in ``body[off:end]`` be trusted without its checksum? At least its 28
    fixed bytes, a valid BCD time and coordinates in range (additional items that run past the end
    are ignored by ``decode_location`` anyway)."""
    if end - off < 28:
        return False
    lat, lon = int.from_bytes(body[off + 8:off + 12], "big"), int.from_bytes(body[off + 12:off + 16], "big")
    return lat <= 90_000_000 and lon <= 180_000_000 and bcd_time(body[off + 22:off + 28], 0.0) is not None


def decode_location(base: Message, body: bytes, off: int, end: int, tz_seconds: float,
                    now: float) -> Message | None:
    """A new message: ``base`` + the 0x0200 body in ``body[off:end]``; None when shorter than 28 bytes."""
    if end - off < 28:
        return None
    alarm, status, lat, lon, alt, speed, course = _BASE.unpack_from(body, off)
    msg = bits_dict(alarm, status).copy()  # copying a ready dict beats inserting 67 keys
    msg.update(base)
    msg["position.latitude"] = -lat / 1e6 if status & 4 else lat / 1e6
    msg["position.longitude"] = -lon / 1e6 if status & 8 else lon / 1e6
    msg["position.altitude"] = alt
    msg["position.speed"] = speed / 10
    msg["position.direction"] = course
    msg["timestamp"] = _timestamp(body, off, tz_seconds, now)
    return _items(msg, body, off + 28, end)


def location_report(ident: str, type_name: str, version: int | None, body: bytes, tz_seconds: float,
                    now: float) -> Message | None:
    """The connection's hot path: exactly ``decode_location({"ident": ident, "message.type": type_name,
    "timestamp": now[, "protocol.version": version]}, body, 0, len(body), tz_seconds, now)``, from a
    template per (alarm, status, version or not) that holds every key up to the items in order, so
    a report costs one dict copy and a few assignments."""
    end = len(body)
    if end < 28:
        return None
    fields: tuple[int, int, int, int, int, int, int] = _BASE.unpack_from(body, 0)
    alarm, status, lat, lon, alt, speed, course = fields  # typed: compiled, native int operations
    key = alarm << 33 | status << 1 | (version is not None)
    template = _TEMPLATES.get(key)
    if template is None:
        template = bits_dict(alarm, status).copy()
        template["ident"] = template["message.type"] = template["timestamp"] = None
        if version is not None:
            template["protocol.version"] = None
        for name in _POSITION:
            template[name] = None
        if len(_TEMPLATES) >= 1024:
            _TEMPLATES.clear()
        _TEMPLATES[key] = template
    msg = template.copy()
    msg["ident"] = ident
    msg["message.type"] = type_name
    msg["timestamp"] = _timestamp(body, 0, tz_seconds, now)
    if version is not None:
        msg["protocol.version"] = version
    msg["position.latitude"] = -lat / 1e6 if status & 4 else lat / 1e6
    msg["position.longitude"] = -lon / 1e6 if status & 8 else lon / 1e6
    msg["position.altitude"] = alt
    msg["position.speed"] = speed / 10
    msg["position.direction"] = course
    return _items(msg, body, 28, end)


_TEMPLATES: dict[int, Message] = {}
_POSITION = ("position.latitude", "position.longitude", "position.altitude", "position.speed", "position.direction")


def _timestamp(body: bytes, off: int, tz_seconds: float, now: float) -> float:
    """BCD YYMMDDhhmmss at ``off + 22`` in device time; the day number is cached per YYMMDD."""
    key = body[off + 22] << 16 | body[off + 23] << 8 | body[off + 24]
    days = _DAYS_BY_INT.get(key)
    hh, mi, ss = BCD[body[off + 25]], BCD[body[off + 26]], BCD[body[off + 27]]
    if days is not None and 0 <= hh < 24 and 0 <= mi < 60 and 0 <= ss < 60:
        return float(days * 86400 + hh * 3600 + mi * 60 + ss) - tz_seconds
    ts = bcd_time(body[off + 22:off + 28], tz_seconds)
    if ts is None:
        return now
    days = _DAYS_CACHE.get(body[off + 22:off + 25])  # bcd_time put it there
    if days is not None:
        if len(_DAYS_BY_INT) > 4096:
            _DAYS_BY_INT.clear()
        _DAYS_BY_INT[key] = days
    return ts


_DAYS_BY_INT: dict[int, int] = {}  # _DAYS_CACHE keyed by the 3 BCD bytes as one int


def _items(msg: Message, body: bytes, p: int, end: int) -> Message:
    """The additional-information items in ``body[p:end]`` (or the 18-byte vendor block) into ``msg``."""
    if end - p == 18 and not _tlv_exact(body, p, end):
        # vendor block: 4 skipped, DWORD odometer km, WORD battery /10 V, DWORD area, BYTE RSSI, 3 reserved
        msg["vehicle.mileage"] = int.from_bytes(body[p + 4:p + 8], "big")
        msg["battery.voltage"] = int.from_bytes(body[p + 8:p + 10], "big") / 10
        msg["gsm.signal.level"] = body[p + 14]
        return msg
    handlers = ITEM_HANDLERS
    while p + 2 <= end:
        item = body[p]
        ln = body[p + 1]
        q = p + 2 + ln
        if q > end:
            break  # an item running past the end: ignore it, like Traccar
        # the items nearly every report carries, inline; the same as their handlers
        if ln == 1 and item == 0x30:
            msg["gsm.signal.level"] = body[p + 2]
        elif ln == 1 and item == 0x31:
            msg["position.satellites"] = body[p + 2]
        elif ln == 4 and item == 0x01:
            msg["vehicle.mileage"] = (body[p + 2] << 24 | body[p + 3] << 16 | body[p + 4] << 8 | body[p + 5]) / 10
        elif ln == 2 and item == 0x2A:
            raw = body[p + 2] << 8 | body[p + 3]
            msg["io.status.bitmask"] = raw
            msg["device.deep.sleep.status"] = bool(raw & 1)
            msg["device.sleep.status"] = bool(raw & 2)
        else:
            handler = handlers.get(item)
            if handler is not None:
                handler(msg, body[p + 2:q])
        p = q
    return msg
