"""Device-side frames built independently of the codecs, so server tests do not test a codec
with itself."""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta


def jt808_frame(msg_id: int, phone: str, serial: int, body: bytes) -> bytes:
    header = struct.pack(">HH", msg_id, len(body)) + bytes.fromhex(phone.rjust(12, "0")) + struct.pack(">H", serial)
    payload = header + body
    checksum = 0
    for b in payload:
        checksum ^= b
    payload += bytes([checksum])
    escaped = payload.replace(b"\x7d", b"\x7d\x01").replace(b"\x7e", b"\x7d\x02")
    return b"\x7e" + escaped + b"\x7e"


def bcd_time(ts: float, offset_hours: float = 8.0) -> bytes:
    t = datetime.fromtimestamp(ts, UTC) + timedelta(hours=offset_hours)
    return bytes.fromhex(t.strftime("%y%m%d%H%M%S"))


def location_body(ts: float, lat: float, lon: float, speed_kmh: float = 0.0, acc: bool = True,
                  alarm: int = 0, mileage_km: float | None = None) -> bytes:
    status = (1 if acc else 0) | 0b10  # ACC, fixed
    body = struct.pack(">IIIIHHH", alarm, status, round(lat * 1e6), round(lon * 1e6), 10, round(speed_kmh * 10), 90)
    body += bcd_time(ts)
    if mileage_km is not None:
        body += b"\x01\x04" + struct.pack(">I", round(mileage_km * 10))
    body += b"\x30\x01\x17\x31\x01\x09"
    return body


def register_body() -> bytes:
    return (struct.pack(">HH", 44, 300) + b"SINOT" + b"ST-901L".ljust(20, b"\x00") + b"A1B2C3D"
            + b"\x01" + "粤B12345".encode("gbk"))


def batch_body(items: list[bytes], blind: bool) -> bytes:
    out = struct.pack(">HB", len(items), 1 if blind else 0)
    for item in items:
        out += struct.pack(">H", len(item)) + item
    return out


def h02_v1(ident: str, ts: float, lat: float, lon: float, knots: float = 10.0, status: str = "FFFFFBFF") -> bytes:
    t = datetime.fromtimestamp(ts, UTC)
    lat_s = f"{int(abs(lat)):02d}{(abs(lat) % 1) * 60:07.4f}"
    lon_s = f"{int(abs(lon)):03d}{(abs(lon) % 1) * 60:07.4f}"
    return (f"*HQ,{ident},V1,{t:%H%M%S},A,{lat_s},{'N' if lat >= 0 else 'S'},{lon_s},{'E' if lon >= 0 else 'W'},"
            f"{knots:.2f},90,{t:%d%m%y},{status}#").encode()


def h02_binary32(ident: str, ts: float, lat: float, lon: float) -> bytes:
    t = datetime.fromtimestamp(ts, UTC)
    lat_digits = f"{int(lat):02d}{(lat % 1) * 60:07.4f}".replace(".", "")
    lon_digits = f"{int(lon):03d}{(lon % 1) * 60:07.4f}".replace(".", "")
    flags = 0x8 | 0x4 | 0x2  # east, north, valid
    return (b"$" + bytes.fromhex(ident) + bytes.fromhex(t.strftime("%H%M%S%d%m%y")) + bytes.fromhex(lat_digits)
            + b"\x06" + bytes.fromhex(lon_digits + f"{flags:x}") + bytes.fromhex("010090")
            + bytes.fromhex("fffffbff") + b"\xff\x00\x00")
