"""Streaming TCP framer for H02: text ``*...#``, binary ``$`` and ``X`` frames on one stream.

Rules (reference §1, with the fragile spots fixed):

* ``*`` starts a text frame when the byte three places on is a comma (``*HQ,``); it runs up to and
  including the first ``#``. CR/LF right after a frame are dropped silently. A text frame that has
  no ``#`` within ``MAX_TEXT`` (2 KiB) bytes is dropped with an error, so buffering is bounded.
* ``$`` starts a binary frame when the following bytes look like one (BCD id, then a plausible
  BCD time and date). The stream carries no length, so the length is chosen from the candidates
  32, 45, 42, 46, 48 (a preferred length first: the device setting or the last length confirmed
  on this connection): a candidate is *confirmed* when a plausible frame starts right after it
  (up to two CR/LF bytes may sit in between), *possible* when the buffer ends exactly there,
  *excluded* otherwise. The first candidate in order that is confirmed or possible wins; if a
  candidate before it cannot be judged yet, the framer waits for more bytes (at most 48 + 15).
  Only a confirmed length sticks for the connection: it is tried first from then on, so a frame
  of another length is only cut once enough bytes rule the confirmed length out.
  Known limit: a first binary frame of 45 bytes that arrives cut exactly after byte 32, with
  nothing behind it, is taken as a 32-byte frame (nothing in the bytes can tell them apart);
  the ``h02_binary_length`` device setting removes the guess.
* ``X`` starts a 32-byte alternative binary frame (skipped by the codec).
* Anything else is junk; a run of junk is reported once, when the run ends (or reaches 2 KiB).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

MAX_TEXT: Final = 2048
MAX_JUNK: Final = 2048
X_LENGTH: Final = 32
DEFAULT_LENGTHS: Final = (32, 45, 42, 46, 48)
KNOWN_LENGTHS: Final = frozenset(DEFAULT_LENGTHS)

TEXT: Final = 1
BINARY: Final = 2
XFRAME: Final = 3
JUNK: Final = 4
OVERFLOW: Final = 5

_STAR, _DOLLAR, _X, _HASH, _CR, _LF, _COMMA = 0x2A, 0x24, 0x58, 0x23, 0x0D, 0x0A, 0x2C

_YES, _NO, _MAYBE = 1, 0, -1


def _bcd(b: int) -> int:
    """Value of a BCD byte, or -1 when a nibble is not a decimal digit."""
    hi, lo = b >> 4, b & 0x0F
    return -1 if hi > 9 or lo > 9 else hi * 10 + lo


def _time_date_ok(buf: bytes, i: int) -> bool:
    """Plausible BCD HH MM SS DD MM YY at ``buf[i:i+6]``."""
    hh, mi, ss, dd, mo, yy = (_bcd(b) for b in buf[i : i + 6])
    return 0 <= hh < 24 and 0 <= mi < 60 and 0 <= ss <= 60 and 0 <= dd <= 31 and 0 <= mo <= 12 and yy >= 0


def _binary_start(buf: bytes, i: int, n: int) -> int:
    """Does a ``$`` or ``X`` frame plausibly start at ``i``? (marker byte already checked)."""
    if n - i < 12:
        return _MAYBE
    if buf[i] == _DOLLAR and any(_bcd(b) < 0 for b in buf[i + 1 : i + 6]):
        return _NO
    if _time_date_ok(buf, i + 6):
        return _YES
    if buf[i] == _X:
        return _NO
    # 42-byte variant: 8-byte id, so time and date sit 3 bytes later.
    if n - i < 15:
        return _MAYBE
    return _YES if _time_date_ok(buf, i + 9) else _NO


def frame_start(buf: bytes, i: int, n: int) -> int:
    """_YES / _NO / _MAYBE (not enough bytes yet) for a frame starting at ``i``."""
    c = buf[i]
    if c == _STAR:
        if n - i < 4:
            return _MAYBE
        return _YES if buf[i + 3] == _COMMA else _NO
    if c in (_DOLLAR, _X):
        return _binary_start(buf, i, n)
    return _NO


Chunk = tuple[int, bytes, str]  # (kind, raw bytes, error text or "")


class Framer:
    """Cuts a TCP byte stream into frames; holds at most one partial frame."""

    __slots__ = ("_buf", "_junk", "_length_hint", "_locked")

    def __init__(self, length_hint: Callable[[bytes], int | None] | None = None) -> None:
        # length_hint(first bytes of a binary frame) -> the device's configured binary length
        self._buf = b""
        self._junk = bytearray()
        self._locked = 0
        self._length_hint = length_hint

    def buffered(self) -> int:
        return len(self._buf) + len(self._junk)

    def drain(self) -> tuple[bytes, bytes]:
        """(junk not yet reported, bytes of an unfinished frame); both are forgotten."""
        junk, rest = bytes(self._junk), self._buf
        self._junk.clear()
        self._buf = b""
        return junk, rest

    def push(self, data: bytes) -> list[Chunk]:
        buf = self._buf + data if self._buf else bytes(data)
        n = len(buf)
        pos = 0
        out: list[Chunk] = []
        junk = self._junk
        while pos < n:
            c = buf[pos]
            if c == _STAR:
                end = buf.find(b"#", pos + 1, pos + MAX_TEXT)
                if end >= 0 and buf[pos + 3 : pos + 4] == b",":
                    if junk:
                        out.append(self._flush_junk())
                    start, pos = pos, end + 1
                    out.append((TEXT, buf[start:pos], ""))
                    while pos < n and (buf[pos] == _CR or buf[pos] == _LF):
                        pos += 1
                    continue
                state = frame_start(buf, pos, n)
                if state == _MAYBE:
                    break
                if state == _YES:
                    if n - pos < MAX_TEXT:
                        break
                    if junk:
                        out.append(self._flush_junk())
                    nxt = buf.find(b"*", pos + 1, pos + MAX_TEXT)
                    drop = nxt if nxt > 0 else pos + MAX_TEXT
                    out.append((OVERFLOW, buf[pos:drop], f"text frame without '#' within {MAX_TEXT} bytes"))
                    pos = drop
                    continue
            elif c == _DOLLAR:
                state = _binary_start(buf, pos, n)
                if state == _MAYBE:
                    break
                if state == _YES:
                    length, err = self._binary_length(buf, pos, n)
                    if length == 0:
                        break
                    if junk:
                        out.append(self._flush_junk())
                    out.append((BINARY, buf[pos : pos + length], err))
                    pos += length
                    continue
            elif c == _X:
                state = _binary_start(buf, pos, n)
                if state == _MAYBE or (state == _YES and n - pos < X_LENGTH):
                    break
                if state == _YES:
                    if junk:
                        out.append(self._flush_junk())
                    out.append((XFRAME, buf[pos : pos + X_LENGTH], "X frame (alternative binary) skipped"))
                    pos += X_LENGTH
                    continue
            elif c in (_CR, _LF) and not junk:
                pos += 1
                continue
            # junk: this byte starts no frame
            junk.append(c)
            pos += 1
            if len(junk) >= MAX_JUNK:
                out.append(self._flush_junk())
        self._buf = buf[pos:] if pos < n else b""
        return out

    def _flush_junk(self) -> Chunk:
        raw = bytes(self._junk)
        self._junk.clear()
        return (JUNK, raw, f"skipped {len(raw)} junk byte(s)")

    def _binary_length(self, buf: bytes, pos: int, n: int) -> tuple[int, str]:
        """(length, error) for the binary frame at ``pos``; (0, "") means wait for more bytes."""
        preferred = self._locked
        if not preferred and self._length_hint is not None:
            preferred = self._length_hint(buf[pos : pos + 9]) or 0
        order = (preferred, *DEFAULT_LENGTHS) if preferred else DEFAULT_LENGTHS
        avail = n - pos
        for length in order:
            if avail < length:
                return 0, ""
            if avail == length:
                return length, ""
            nxt = pos + length
            # CR/LF (at most two) may follow a frame before the next one
            if buf[nxt] in (_CR, _LF):
                if not buf[nxt:n].strip(b"\r\n"):  # only line ends up to the end: the frame is whole
                    return length, ""
                nxt += 1
                if nxt < n and buf[nxt] in (_CR, _LF):
                    nxt += 1
                if nxt == n:
                    return length, ""
            state = frame_start(buf, nxt, n)
            if state == _YES:
                self._locked = length
                return length, ""
            if state == _MAYBE:
                return 0, ""
        length = preferred or DEFAULT_LENGTHS[0]
        return length, f"binary frame length undetermined (no frame after any known length); took {length}"
