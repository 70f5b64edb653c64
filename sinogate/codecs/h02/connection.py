"""H02 ``Connection``: framing, decoding and the server's replies for one device connection.

Protocol reference: ``h02.md`` (in the project's reference notes).

Replies (complete wire frames in ``Frame.replies``; none when the frame carries no device id):
``V1`` -> ``*HQ,<id>,V4,V1,<yyyyMMddHHmmss UTC>#``; ``NBR`` -> ``*HQ,<id>,V4,NBR,<...>#``;
``V0`` / ``HTBT`` -> echo up to the type (also when decoding fails); other decoded position types
and binary frames -> ``*HQ,<id>,R12,<HHmmss UTC>#`` only when ``settings.h02_ack``. LINK, V3, VP1,
SMS, XT are never answered.

Idents: the first frame that names an ident and decodes binds the connection to it (``ident``).
Every frame reports the ident it names in ``Frame.ident`` (a frame with an empty id: the
connection's); a frame naming another ident never rebinds the connection: the session decides
(it refuses it, or calls ``follow``). A text frame without a message type is an error, never a
message and never an ident.

A device reply to a command is a message with ``command.code`` (the confirmed code, from ``V4``),
``command.time`` (the echoed HHMMSS) and ``command.response`` (the text after ``V4,``); an ``SMS``
message carries ``command.response`` (reply to a raw command); ``LINK`` answers ``S26``
(matching: ``replies``).
"""

from __future__ import annotations

import time
from typing import Any, ClassVar, Final

from sinogate.codecs.base import (
    DEFAULT_SETTINGS,
    DeviceSettings,
    EncodedCommand,
    Frame,
    SettingsLookup,
    default_lookup,
)
from sinogate.codecs.h02.binary import binary_ident, decode_binary
from sinogate.codecs.h02.commands import COMMANDS, encode
from sinogate.codecs.h02.framer import BINARY, MAX_BINARY, TAIL, TEXT, Framer, long_id
from sinogate.codecs.h02.text import KNOWN_BARE, common_report, decode_position, decoder_for
from sinogate.codecs.limits import CodecLimits
from sinogate.model.param import Param

__all__ = ["COMMANDS", "DEFAULT_TZ_HOURS", "Connection"]

DEFAULT_TZ_HOURS: Final = 0.0
"""Device clock offset from UTC when ``time_offset`` is unset: the vendor document says the times
are GMT/UTC (reference ``h02.md`` §3)."""

_NO_R12: Final = frozenset(("V1", "NBR", "V0", "HTBT", "LINK", "V3", "VP1", "SMS"))
_STRIP: Final = " \t\r\n\x00"


class Connection:
    """One device connection (TCP stream or UDP peer)."""

    protocol: ClassVar[str] = "h02"

    __slots__ = ("_framer", "_hint", "_ident", "_lookup", "_tcache", "_v4", "transport")

    def __init__(self, settings: SettingsLookup = default_lookup, transport: str = "tcp",
                 limits: CodecLimits | None = None) -> None:  # H02 holds at most one frame: no limits used
        self._lookup = settings
        self.transport = transport
        self._ident: str | None = None
        self._framer = Framer(self._length_hint)
        self._tcache: tuple[int, str, str] = (-1, "", "")
        self._v4: tuple[str, str, int, bytes] = ("", "", -1, b"")  # the last V4 reply: a burst shares it
        self._hint: tuple[str, int | None] = ("", None)

    @property
    def ident(self) -> str | None:
        return self._ident

    def buffered(self) -> int:
        return self._framer.buffered()

    def follow(self, ident: str) -> None:
        """Binds the connection to ``ident`` (the session follows a device that switched idents)."""
        self._ident = ident
        self._hint = ("", None)

    def flush(self, now: float) -> list[Frame]:
        """The device has been silent for a moment: a binary frame held because its length could
        not be told yet (fixed part complete) is decoded now."""
        return self._frames(self._framer.flush(), now)

    def close(self, now: float) -> list[Frame]:
        """The stream ended: a complete binary position still held is decoded, what else the
        framer holds is reported, never silently lost."""
        held = self.flush(now)
        junk, rest = self._framer.drain()
        frames = []
        if junk:
            frames.append(Frame(junk, self._ident, errors=[f"skipped {len(junk)} junk byte(s)"]))
        frames.extend(held)
        if rest:
            frames.append(Frame(rest, self._ident, errors=[f"stream ended inside a frame ({len(rest)} bytes)"]))
        return frames

    # --- input -------------------------------------------------------------------------------

    def feed(self, data: bytes, now: float) -> list[Frame]:
        return self._frames(self._framer.push(data), now)

    def _frames(self, chunks: list[tuple[int, bytes, str]], now: float) -> list[Frame]:
        frames: list[Frame] = []
        for kind, raw, err in chunks:
            if kind == TEXT:
                frames.append(self._text(raw, now))
            elif kind == BINARY:
                frame = self._binary(raw, now)
                if err:
                    frame.errors.append(err)
                frames.append(frame)
            elif kind == TAIL:  # the rest of the previous binary frame's tail (cut by TCP)
                frames.append(Frame(raw=raw, ident=self._ident))
            else:
                frames.append(Frame(raw=raw, ident=self._ident, errors=[err]))
        return frames

    def datagram(self, data: bytes, now: float) -> list[Frame]:
        raw = bytes(data)
        body = raw.strip(b"\r\n\x00 ")
        if body[:1] == b"*":
            return [self._text(body, now)]
        if body[:1] == b"$":
            frame = self._binary(raw, now)
            if len(raw) > MAX_BINARY:
                frame.errors.append(f"unusual binary datagram length {len(raw)}")
            return [frame]
        if body[:1] == b"X" and len(raw) == 32:
            return [Frame(raw=raw, ident=self._ident, errors=["X frame (alternative binary) skipped"])]
        return [Frame(raw=raw, ident=self._ident, errors=["datagram is not an H02 message"])]

    # --- commands ----------------------------------------------------------------------------

    def encode_command(self, name: str, properties: dict[str, Any], now: float) -> EncodedCommand:
        return encode(self._ident, name, properties, now, self._settings(self._ident).time_offset)

    # --- internals ---------------------------------------------------------------------------

    def _settings(self, ident: str | None) -> DeviceSettings:
        return self._lookup(ident) if ident else DEFAULT_SETTINGS

    def _length_hint(self, head: bytes) -> int | None:
        """The configured binary length for the device a binary frame (first 9 bytes) names.

        Asked only while the framer has no confirmed length; remembered per ident so that the
        settings lookup stays at about once per frame.
        """
        ident = self._ident or head[1:6].hex()
        if self._hint[0] == ident:
            return self._hint[1]
        length = self._lookup(ident).h02_binary_length
        if length is None and not self._ident and len(head) >= 9:
            length = self._lookup(head[1:9].hex()[:15]).h02_binary_length
        self._hint = (ident, length)
        return length

    def _times(self, now: float) -> tuple[str, str]:
        sec = int(now)
        cache = self._tcache
        if cache[0] != sec:
            tm = time.gmtime(sec)
            cache = (sec, time.strftime("%Y%m%d%H%M%S", tm), time.strftime("%H%M%S", tm))
            self._tcache = cache
        return cache[1], cache[2]

    def _text(self, raw: bytes, now: float) -> Frame:
        # framed: '*...#'; a datagram may lack the '#'
        s = raw[1:-1].decode("latin-1") if raw[-1] == 0x23 else raw.decode("latin-1").strip(_STRIP)[1:]
        # the fields a report's common layout reads one by one; the rest (STATUS's extras) in one
        p = s.split(",", 13)
        if len(p) < 3:
            return Frame(raw, self._ident, errors=["text frame with fewer than 3 fields"])
        dev = p[1].strip()
        typ = p[2] = p[2].strip()
        if not typ:  # '*HQ,garbage,,,#': no message, and it names no device
            return Frame(raw, None, errors=["text frame without a message type: not a message"])
        ident = dev or self._ident
        settings = self._lookup(ident) if ident else DEFAULT_SETTINGS
        replies: list[bytes] = []
        errors: list[str] = []
        if dev and (typ == "V0" or typ == "HTBT"):
            replies.append(f"*{p[0]},{p[1]},{typ}#".encode("latin-1"))
        offset = settings.time_offset
        offset_s = offset * 3600.0 if offset else 0.0
        decoder = _DISPATCH.get(typ)
        decoded = True
        if decoder is None:
            decoder, decoded = decoder_for(typ)
        # the common report layout first (same message, a fraction of the work), else the decoder
        try:
            fast = common_report(s, p, ident or "", typ, offset_s, p[0].lstrip("*")) \
                if decoder is decode_position and len(p) >= 13 and typ != "V4" else None
        except Exception:  # never expected; the decoder then decides and reports
            fast = None
        if fast is not None:
            msg = fast
        else:
            if len(p) == 14:  # split at every comma for the decoders
                p = s.split(",")
                p[2] = typ
            try:
                msg = decoder(p, ident or "", offset_s, now)
            except Exception as exc:  # a device must never break the connection: report, go on
                errors.append(f"{typ}: {type(exc).__name__}: {exc}")
                return Frame(raw, ident, [], replies, errors)
            msg["vendor.code"] = p[0].lstrip("*")  # the two-letter maker code (HQ, TH, ...)
        if not decoded and typ not in KNOWN_BARE:
            errors.append(f"message type {typ!r} not decoded")
        if not ident:
            errors.append("no device id in the frame and none known on this connection")
        elif self._ident is None:
            self._ident = ident  # the first ident a decoded frame names is the connection's
        if dev and decoded:
            if typ == "V1" or typ == "NBR":
                sec = int(now)
                v4 = self._v4
                if v4[2] != sec or v4[0] != dev or v4[1] != typ:
                    v4 = (dev, typ, sec, f"*HQ,{dev},V4,{typ},{self._times(now)[0]}#".encode("latin-1"))
                    self._v4 = v4
                replies.append(v4[3])
            elif settings.h02_ack and typ not in _NO_R12:
                replies.append(f"*HQ,{dev},R12,{self._times(now)[1]}#".encode("latin-1"))
        return Frame(raw, ident, [msg], replies, errors)

    def _binary(self, raw: bytes, now: float) -> Frame:
        long = long_id(raw)
        ident = binary_ident(raw, long)
        settings = self._lookup(ident)
        offset = settings.time_offset
        try:
            msg = decode_binary(raw, ident, offset * 3600.0 if offset else 0.0, long)
        except Exception as exc:  # see _text
            return Frame(raw, ident, errors=[f"binary: {type(exc).__name__}: {exc}"])
        if self._ident is None:
            self._ident = ident
        replies = [f"*HQ,{ident},R12,{self._times(now)[1]}#".encode("latin-1")] if settings.h02_ack else []
        return Frame(raw, ident, [msg], replies)


# Common types resolved without decoder_for().
_DISPATCH: Final = {t: decoder_for(t)[0] for t in ("V1", "V2", "V4", "V5", "V6", "V8", "V19", "NBR", "LINK",
                                                    "V3", "VP1", "V0", "HTBT", "SMS")}

_MSG: Final = "Command *V1, Command *V4, Command *V5, Command *V6"
# message names only H02 emits, for the parameter registry (via SPEC.params)
FIELDS: Final[tuple[Param, ...]] = (
    Param("fuel.level", "number", "percentage", "Fuel level", f"{_MSG} (6-field extension), Binary packet $ (46)"),
    Param("sensor.temperature", "number", "", "Temperature sensor value (H02 6-field extension; unit "
          "unconfirmed, presumably °C)", _MSG),
    Param("h02.battery.raw", "number", "", "H02 V3 battery field (4 hex digits) as sent; unit unknown", "V3"),
    Param("h02.mileage.raw", "number", "", "Counter at bytes 33-36 of the 45-byte H02 binary frame; "
          "probably mileage, unit unknown", "Binary packet $ (45)"),
)
