"""JT/T 808 framing: escaping, XOR checksum, header parsing, terminal ids, frame building.

Wire frame: ``7E | header | body | checksum | 7E``; the checksum is the XOR of header + body,
then header + body + checksum are escaped (``7E -> 7D 02``, ``7D -> 7D 01``).
"""

from __future__ import annotations

import struct
from types import FunctionType
from typing import Final

MAX_BODY = 0x3FF

_ESC_B = b"\x7d"


def escape(data: bytes) -> bytes:
    """Escape header + body + checksum (without delimiters)."""
    # an int operand: ``bytes in bytes`` first tries the operand as an int and raises inside
    if 0x7D in data:
        data = data.replace(b"\x7d", b"\x7d\x01")
    if 0x7E in data:
        data = data.replace(b"\x7e", b"\x7d\x02")
    return data


def unescape(data: bytes) -> tuple[bytes, int]:
    """Undo the escaping of a frame's inner bytes (no delimiters).

    Returns the data and the number of invalid escapes (``7D`` followed by anything but 01/02,
    or a trailing ``7D``); like Traccar, an invalid escape drops both bytes.
    """
    if 0x7D not in data:  # an int: ``bytes in bytes`` costs a raised and cleared TypeError
        return data, 0
    parts = data.split(_ESC_B)
    out = [parts[0]]
    bad = 0
    for part in parts[1:]:
        if not part:
            bad += 1
            continue
        first = part[0]
        if first == 1:
            out.append(b"\x7d")
        elif first == 2:
            out.append(b"\x7e")
        else:
            bad += 1
        out.append(part[1:])
    return b"".join(out), bad


def xor_checksum(data: bytes) -> int:
    """XOR of every byte. Compiled (mypyc), a loop over the bytes; as Python, fold one big integer
    in halves down to 8 bytes, then fold the word (a byte loop costs the interpreter far more)."""
    if COMPILED:
        x = 0
        for i in range(len(data)):
            x ^= data[i]
        return x
    n = len(data)
    x = int.from_bytes(data, "big")
    while n > 8:
        half = (n + 1) >> 1
        bits = half << 3
        x = (x >> bits) ^ (x & ((1 << bits) - 1))
        n = half
    x ^= x >> 32
    x ^= x >> 16
    x ^= x >> 8
    return x & 0xFF


def _probe() -> None:
    """Only its type matters: a plain function when this module runs as Python."""


COMPILED: Final = not isinstance(_probe, FunctionType)
"""Does this module run compiled (mypyc, ``setup.py``)? Picks the faster algorithm for each."""


class Header:
    """A parsed frame header (a plain class: cheaper to build than a dataclass, compiled or not)."""

    __slots__ = ("index", "length", "msg_id", "phone", "props", "serial", "total", "version")

    def __init__(self, msg_id: int, props: int, version: int | None, phone: bytes, serial: int, total: int,
                 index: int, length: int) -> None:
        self.msg_id = msg_id
        self.props = props
        self.version = version  # protocol version byte of a 2019 header, None for 2011/2013
        self.phone = phone  # raw BCD terminal number (6 or 10 bytes)
        self.serial = serial
        self.total = total  # sub-package count, 0 when the message is not split
        self.index = index  # sub-package index (1-based), 0 when not split
        self.length = length  # header length in bytes

    @property
    def body_length(self) -> int:
        return self.props & MAX_BODY

    def __repr__(self) -> str:
        return (f"Header(msg_id={self.msg_id}, props={self.props}, version={self.version}, phone={self.phone!r}, "
                f"serial={self.serial}, total={self.total}, index={self.index}, length={self.length})")


def parse_header(frame: bytes) -> Header | None:
    """Parse the header of an unescaped frame (no delimiters, checksum still at the end).

    Detects the 2019 layout by props bit 14, but falls back to the 2013 layout when only that
    one agrees with the body-length field (some 2013 devices set bit 14 wrongly).
    """
    n = len(frame)
    if n < 13:
        return None
    msg_id = (frame[0] << 8) | frame[1]
    props = (frame[2] << 8) | frame[3]
    split = props & 0x2000
    extra = 4 if split else 0
    blen = props & MAX_BODY
    v2019 = bool(props & 0x4000)
    if v2019 and n - 1 - 17 - extra != blen and n - 1 - 12 - extra == blen:
        v2019 = False
    if v2019:
        hlen = 17 + extra
        if n < hlen + 1:
            return None
        version: int | None = frame[4]
        phone = frame[5:15]
        serial = (frame[15] << 8) | frame[16]
        base = 17
    else:
        hlen = 12 + extra
        if n < hlen + 1:
            return None
        version = None
        phone = frame[4:10]
        serial = (frame[10] << 8) | frame[11]
        base = 12
    if split:
        total = (frame[base] << 8) | frame[base + 1]
        index = (frame[base + 2] << 8) | frame[base + 3]
    else:
        total = index = 0
    return Header(msg_id, props, version, phone, serial, total, index, hlen)


def luhn_digit(digits: str) -> int:
    """Check digit that completes ``digits`` to a valid Luhn number (IMEI)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return (10 - total % 10) % 10


_IDENT_CACHE: dict[bytes, str] = {}


def decode_ident(phone: bytes) -> str:
    """Terminal number → ident: BCD digits without leading zeros; hex letters → binary IMEI + Luhn."""
    ident = _IDENT_CACHE.get(phone)
    if ident is not None:
        return ident
    text = phone.hex()
    if text.isdigit():
        ident = text.lstrip("0") or "0"
    else:
        digits = str(int.from_bytes(phone, "big"))
        ident = digits + str(luhn_digit(digits)) if len(digits) <= 14 else digits
    if len(_IDENT_CACHE) < 4096:  # a pure cache of a pure function, bounded
        _IDENT_CACHE[phone] = ident
    return ident


def phone_from_ident(ident: str, version: int | None = None) -> bytes:
    """Terminal-number bytes for an ident, as Traccar's encoder writes them.

    A 15-digit IMEI drops its Luhn digit and the remaining number is written as a 6-byte binary
    value (``123456789012345`` → ``0B3A73CE2FF2``); other digit strings are BCD, left-padded with
    zeros to 12 digits (2013) or 20 digits (2019).
    """
    if not ident.isdigit():
        raise ValueError(f"terminal id must be digits: {ident!r}")
    width = 20 if version is not None else 12
    if len(ident) == 15 and version is None:
        return int(ident[:14]).to_bytes(6, "big")
    if len(ident) > width:
        raise ValueError(f"terminal id {ident!r} longer than {width} digits")
    return bytes.fromhex(ident.rjust(width, "0"))


def _head(msg_id: int, props: int, phone: bytes, version: int | None) -> bytes:
    """Message id, properties (bit 14 added for a 2019 header), [version,] phone padded to 10 or 6 bytes."""
    if version is not None:
        return bytes((msg_id >> 8, msg_id & 0xFF, 0x40 | props >> 8, props & 0xFF, version & 0xFF)) + \
            phone.rjust(10, b"\x00")[-10:]
    return bytes((msg_id >> 8, msg_id & 0xFF, props >> 8, props & 0xFF)) + phone.rjust(6, b"\x00")[-6:]


def encode_frame(msg_id: int, phone: bytes, serial: int, body: bytes, version: int | None = None,
                 total: int = 0, index: int = 0) -> bytes:
    """Build a complete escaped wire frame (``7E … 7E``).

    ``version`` not None → 2019 header (bit 14, version byte, 10-byte phone). ``phone`` is copied
    as given (6 bytes for 2013, 10 for 2019; shorter values are left-padded with zeros).
    """
    if len(body) > MAX_BODY:
        raise ValueError(f"body of {len(body)} bytes exceeds {MAX_BODY}; split it")
    if total:
        head = _head(msg_id, len(body) | 0x2000, phone, version)
        tail = serial.to_bytes(2, "big") + total.to_bytes(2, "big") + index.to_bytes(2, "big")
    else:
        head = _head(msg_id, len(body), phone, version)
        tail = (serial & 0xFFFF).to_bytes(2, "big")
    inner = head + tail + body
    inner += bytes((xor_checksum(inner),))
    return b"\x7e" + escape(inner) + b"\x7e"


class ReplyEncoder:
    """Fast 0x8001 / 0x8100 frames for one terminal: the header prefix and its XOR are cached."""

    __slots__ = ("_ack_phone", "_ack_version", "_clean", "_key", "_open", "_prefix", "_xor")

    def __init__(self) -> None:
        self._key: tuple[bytes, int | None, int, int] | None = None
        self._prefix = b""
        self._open = b"\x7e"  # 0x7e + the prefix
        self._clean = True  # the prefix needs no escaping
        self._xor = 0
        self._ack_phone: bytes | None = None  # the terminal the prefix is a 0x8001 prefix for
        self._ack_version: int | None = None

    def encode(self, msg_id: int, phone: bytes, version: int | None, serial: int, body: bytes) -> bytes:
        n = len(body)
        key = (phone, version, msg_id, n)
        if key != self._key:
            prefix = _head(msg_id, n, phone, version)
            self._key, self._prefix, self._xor = key, prefix, xor_checksum(prefix)
            self._open, self._clean = b"\x7e" + prefix, 0x7D not in prefix and 0x7E not in prefix
            self._ack_phone, self._ack_version = (phone, version) if msg_id == 0x8001 and n == 5 else (None, None)
        tail = bytes((serial >> 8 & 0xFF, serial & 0xFF)) + body
        inner = self._prefix + tail + bytes((self._xor ^ xor_checksum(tail),))
        if 0x7D in inner or 0x7E in inner:
            inner = escape(inner)
        return b"\x7e" + inner + b"\x7e"

    def ack(self, phone: bytes, version: int | None, serial: int, ans_serial: int, ans_id: int,
            result: int = 0) -> bytes:
        """0x8001 general response; ``result`` 0 success, 1 failure, 2 message error, 3 unsupported."""
        if result or phone != self._ack_phone or version != self._ack_version:  # (phone, version, 0x8001, 5)
            return self.encode(0x8001, phone, version, serial,
                               bytes((ans_serial >> 8, ans_serial & 0xFF, ans_id >> 8, ans_id & 0xFF, result)))
        x = serial ^ ans_serial ^ ans_id
        tail = _ACK_TAIL.pack(serial, ans_serial, ans_id, 0, self._xor ^ ((x >> 8 ^ x) & 0xFF))
        if self._clean and 0x7D not in tail and 0x7E not in tail:
            return self._open + tail + b"\x7e"
        return b"\x7e" + escape(self._prefix + tail) + b"\x7e"


_ACK_TAIL: Final = struct.Struct(">HHHBB")  # serial, answered serial, answered id, result, checksum


# BCD byte → value (-1 when a nibble is not a decimal digit)
BCD: tuple[int, ...] = tuple(
    (b >> 4) * 10 + (b & 0xF) if (b >> 4) < 10 and (b & 0xF) < 10 else -1 for b in range(256)
)
