"""Streaming TCP framer for H02: text ``*...#``, binary ``$`` and ``X`` frames on one stream.

Rules (reference §1, with the fragile spots fixed):

* ``*`` starts a text frame when the byte three places on is a comma (``*HQ,``); it runs up to and
  including the first ``#``. CR/LF right after a frame are dropped silently. A text frame that has
  no ``#`` within ``MAX_TEXT`` (2 KiB) bytes is dropped with an error, so buffering is bounded.
* ``$`` starts a binary frame when the following bytes look like one (BCD id, then a plausible BCD
  time and date: 3 bytes later for the 8-byte id variant). The layout is fixed up to the status
  word (29 bytes, 32 with the 8-byte id); only the tail varies between devices (3 to 19 bytes seen:
  frames of 32, 37, 42, 45, 46, 47 and 48 bytes), and the stream carries no length. So the frame
  ends where the next frame starts, or where the read ends:

  - a length is *confirmed* when a plausible frame starts right after it (up to two CR/LF bytes
    may sit in between), *possible* when the buffer ends exactly there (a device sends one report
    per packet, so a lone frame is complete when the read ends at a length real devices send),
    *excluded* otherwise;
  - the lengths this device uses are tried first (``h02_binary_length`` and the lengths learned
    on this connection, shortest first; a device may alternate, e.g. 45 and 47): the first one
    confirmed or possible wins; when the bytes end before one of them, the rest is coming and the
    framer waits (a frame cut by TCP is never cut short once its length is known);
  - then ``KNOWN_LENGTHS`` in order, the same way (waiting while one cannot be judged yet: too few
    bytes after it, or fewer bytes than it);
  - when every known length is excluded, any length up to ``MAX_BINARY`` that is confirmed or
    possible wins (tails of other lengths);
  - the length taken is learned for the connection (up to ``MAX_LEARNED`` of them);
  - a frame taken at the end of a read before its length was known may have been cut by TCP:
    when the next read does not start a frame, its first bytes (up to ``MAX_BINARY`` in all) are
    the rest of that frame's tail, are passed on as ``TAIL`` (not junk) and correct the learned
    length. The position (all in the fixed part) was complete and is never held back;
  - a frame whose length cannot be known yet (a lone frame of an unusual length, or one cut by
    TCP before a longer length it might have) is handed out by ``flush`` (the session calls it
    when the device has been silent for a moment) and at the end of the stream, never held until
    the next report.

* ``X`` starts a 32-byte alternative binary frame (skipped by the codec).
* Anything else is junk; a run of junk is reported once, when the run ends (or reaches 2 KiB).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

MAX_TEXT: Final = 2048
MAX_JUNK: Final = 2048
X_LENGTH: Final = 32
FIXED: Final = 29
"""Bytes of a ``$`` frame up to and including the status word (10-digit id); +3 with an 8-byte id."""
MIN_BINARY: Final = 32
"""Shortest ``$`` frame taken at the end of a read without a configured or learned length."""
MAX_BINARY: Final = 128
"""Longest ``$`` frame considered (the fixed part and a tail of up to 99 bytes)."""
MAX_LEARNED: Final = 4
"""Binary lengths remembered per connection (a device may alternate, e.g. 45 and 47)."""
DEFAULT_LENGTHS: Final = (32, 37, 42, 45, 46, 47, 48)
KNOWN_LENGTHS: Final = frozenset(DEFAULT_LENGTHS)

TEXT: Final = 1
BINARY: Final = 2
XFRAME: Final = 3
JUNK: Final = 4
OVERFLOW: Final = 5
TAIL: Final = 6
"""The rest of the tail of a binary frame handed out at the end of the previous read."""

_STAR, _DOLLAR, _X, _HASH, _CR, _LF, _COMMA = 0x2A, 0x24, 0x58, 0x23, 0x0D, 0x0A, 0x2C

_YES, _NO, _MAYBE = 1, 0, -1
_END, _SHORT = 2, 3  # the buffer ends exactly here / before here


def _bcd(b: int) -> int:
    """Value of a BCD byte, or -1 when a nibble is not a decimal digit."""
    hi, lo = b >> 4, b & 0x0F
    return -1 if hi > 9 or lo > 9 else hi * 10 + lo


_BCD: Final = tuple(_bcd(b) for b in range(256))


def _time_date_ok(buf: bytes, i: int) -> bool:
    """Plausible BCD HH MM SS DD MM YY at ``buf[i:i+6]``."""
    bcd = _BCD
    return (0 <= bcd[buf[i]] < 24 and 0 <= bcd[buf[i + 1]] < 60 and 0 <= bcd[buf[i + 2]] <= 60
            and 0 <= bcd[buf[i + 3]] <= 31 and 0 <= bcd[buf[i + 4]] <= 12 and bcd[buf[i + 5]] >= 0)


def long_id(raw: bytes) -> bool:
    """Does the ``$`` frame carry an 8-byte id (time and date 3 bytes later)? Decided from the
    content: the time and date fit only at offset 9; a 42-byte frame is taken as the 8-byte id
    variant unless they fit only at offset 6."""
    n = len(raw)
    if n == 42:
        return _time_date_ok(raw, 9) or not _time_date_ok(raw, 6)
    return n >= 15 and not _time_date_ok(raw, 6) and _time_date_ok(raw, 9)


def _binary_start(buf: bytes, i: int, n: int) -> int:
    """Does a ``$`` or ``X`` frame plausibly start at ``i``? (marker byte already checked)."""
    if n - i < 12:
        return _MAYBE
    bcd = _BCD
    if buf[i] == _DOLLAR and (bcd[buf[i + 1]] < 0 or bcd[buf[i + 2]] < 0 or bcd[buf[i + 3]] < 0
                              or bcd[buf[i + 4]] < 0 or bcd[buf[i + 5]] < 0):
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


def _after(buf: bytes, q: int, n: int) -> int:
    """What follows a binary frame that would end at ``q``: _YES (a frame starts there, after at
    most two CR/LF), _END (the buffer ends there, or only line ends follow), _NO, _MAYBE, _SHORT."""
    if q > n:
        return _SHORT
    if q == n:
        return _END
    if buf[q] == _CR or buf[q] == _LF:
        if not buf[q:n].strip(b"\r\n"):
            return _END
        q += 1
        if q < n and (buf[q] == _CR or buf[q] == _LF):
            q += 1
    return frame_start(buf, q, n)


Chunk = tuple[int, bytes, str]  # (kind, raw bytes, error text or "")


class Framer:
    """Cuts a TCP byte stream into frames; holds at most one partial frame."""

    __slots__ = ("_buf", "_first", "_junk", "_learned", "_length_hint", "_tentative")

    def __init__(self, length_hint: Callable[[bytes], int | None] | None = None) -> None:
        # length_hint(first bytes of a binary frame) -> the device's configured binary length
        self._buf = b""
        self._junk = bytearray()
        self._learned: tuple[int, ...] = ()  # binary lengths this connection's device sent, newest last
        self._first: tuple[int, ...] = ()  # the same, shortest first (the order they are tried in)
        self._tentative = 0  # length of a binary frame taken at the very end of the last read
        self._length_hint = length_hint

    @property
    def learned(self) -> tuple[int, ...]:
        """The binary frame lengths learned on this connection, newest last."""
        return self._learned

    def buffered(self) -> int:
        return len(self._buf) + len(self._junk)

    def drain(self) -> tuple[bytes, bytes]:
        """(junk not yet reported, bytes of an unfinished frame); both are forgotten."""
        junk, rest = bytes(self._junk), self._buf
        self._junk.clear()
        self._buf = b""
        return junk, rest

    def flush(self) -> list[Chunk]:
        """Hands out a held binary frame whose fixed part is complete (its length could not be
        told yet); text frames keep waiting for their ``#``."""
        buf = self._buf
        n = len(buf)
        if n < FIXED or buf[0] != _DOLLAR or _binary_start(buf, 0, n) != _YES or n > MAX_BINARY:
            return []
        if n < FIXED + 3 and long_id(buf):
            return []
        self._buf = b""
        self._learn(n)
        self._tentative = n
        return [(BINARY, buf, "")]

    def push(self, data: bytes) -> list[Chunk]:
        if not data:
            return []
        buf = self._buf + data if self._buf else bytes(data)
        n = len(buf)
        pos = 0
        out: list[Chunk] = []
        junk = self._junk
        tentative = self._tentative
        self._tentative = 0
        if tentative and not self._buf and not junk:
            pos = self._rest_of_tail(buf, n, tentative, out)
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
                    length, err, at_end = self._binary_length(buf, pos, n)
                    if length == 0:
                        break
                    if junk:
                        out.append(self._flush_junk())
                    out.append((BINARY, buf[pos : pos + length], err))
                    pos += length
                    if at_end and pos == n:
                        self._tentative = length
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

    def _rest_of_tail(self, buf: bytes, n: int, taken: int, out: list[Chunk]) -> int:
        """After a binary frame taken at the end of the previous read: the bytes before the next
        frame start (when they fit in a tail) are the rest of that frame. Returns where to go on."""
        c = buf[0]
        if c in (_CR, _LF) or frame_start(buf, 0, n) != _NO:
            return 0
        limit = MAX_BINARY - taken
        j = 1
        while j < n:
            c = buf[j]
            if c in (_STAR, _DOLLAR, _X) and frame_start(buf, j, n) != _NO:
                break
            if c in (_CR, _LF) and _after(buf, j, n) in (_YES, _END, _MAYBE):
                break
            if j >= limit:
                return 0  # longer than any tail: junk, reported as such
            j += 1
        out.append((TAIL, buf[:j], ""))
        self._learn(taken + j, replaces=taken)
        if j == n:
            self._tentative = taken + j
        return j

    def _flush_junk(self) -> Chunk:
        raw = bytes(self._junk)
        self._junk.clear()
        return (JUNK, raw, f"skipped {len(raw)} junk byte(s)")

    def _learn(self, length: int, replaces: int = 0) -> None:
        learned = self._learned
        if learned and learned[-1] == length and not replaces:
            return  # the usual case: the same length again
        kept = [x for x in learned if x != length and x != replaces]
        if len(kept) >= MAX_LEARNED:
            kept.pop(0)  # the oldest goes
        kept.append(length)
        self._learned = tuple(kept)
        self._first = tuple(sorted(kept))

    def _binary_length(self, buf: bytes, pos: int, n: int) -> tuple[int, str, bool]:
        """(length, error, taken at the end of the buffer) for the binary frame at ``pos``;
        length 0 means wait for more bytes."""
        first = self._first
        if not first and self._length_hint is not None:  # the device's setting, until one is learned
            configured = self._length_hint(buf[pos : pos + 9])
            first = (configured,) if configured else ()
        avail = n - pos
        # 1. the lengths this device uses: one longer than what arrived means the rest is coming
        for length in first:
            state = _after(buf, pos + length, n)
            if state in (_YES, _END):
                self._learn(length)
                return length, "", state == _END
            if state != _NO:  # _MAYBE, _SHORT
                return 0, "", False
        # 2. the lengths real devices send
        for length in DEFAULT_LENGTHS:
            if length in first:
                continue
            state = _after(buf, pos + length, n)
            if state in (_YES, _END):
                self._learn(length)
                return length, "", state == _END
            if state != _NO:
                return 0, "", False
        # 3. every known length is excluded: a tail of another length
        for length in range(FIXED, min(avail, MAX_BINARY) + 1):
            if length in KNOWN_LENGTHS or length in first:
                continue
            state = _after(buf, pos + length, n)
            if state == _YES or (state == _END and length >= MIN_BINARY):
                self._learn(length)
                return length, "", state == _END
            if state == _MAYBE:
                return 0, "", False
        if avail <= MAX_BINARY:
            return 0, "", False
        length = first[-1] if first else DEFAULT_LENGTHS[0]
        return length, f"binary frame length undetermined (no frame after any length up to {MAX_BINARY}); " \
                       f"took {length}", False
