"""Device-side frames built independently of the codecs, so server tests do not test a codec
with itself."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
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


class AckedStream:
    """JT/T 808 0x0200 reports streamed on a connected socket, report ``serial`` at device time
    ``base + serial``, while a thread collects the serials the server acknowledged (0x8001): for
    the tests that kill a server mid-stream and look for every acknowledged report."""

    def __init__(self, sock: socket.socket, phone: str, base: int) -> None:
        self.sock, self.phone, self.base = sock, phone, base
        self.acked: list[int] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        buf = b""
        with contextlib.suppress(OSError):
            while chunk := self.sock.recv(65536):
                buf += chunk
                *frames, buf = buf.split(b"\x7e\x7e")  # replies come back to back
                for frame in frames:
                    raw = frame.strip(b"\x7e").replace(b"\x7d\x02", b"\x7e").replace(b"\x7d\x01", b"\x7d")
                    self.acked.append(struct.unpack(">H", raw[12:14])[0])

    def send(self, enough: int = 1000, total: int = 5000, timeout: float = 30.0) -> None:
        """Sends until ``enough`` reports were acknowledged (or ``total`` sent), then waits for them."""
        for serial in range(total):
            body = location_body(self.base + serial, 10 + serial / 1e5, 20.0)
            try:
                self.sock.sendall(jt808_frame(0x0200, self.phone, serial, body))
            except OSError:
                break
            if len(self.acked) > enough:
                break
            if serial % 200 == 0:
                time.sleep(0.01)
        deadline = time.time() + timeout
        while len(self.acked) < enough and time.time() < deadline:
            time.sleep(0.01)

    def close(self) -> list[int]:
        """Closes the socket; the serials acknowledged until then."""
        self.sock.close()
        self._thread.join(5)
        return list(self.acked)
