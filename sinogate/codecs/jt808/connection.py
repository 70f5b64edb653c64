"""JT/T 808 ``Connection``: ``0x7E`` framing, sub-package reassembly, decoding, replies and commands
for one terminal connection (reference ``jt808.md`` §1-§3; the helpers are the package's other modules).

Replies: 0x8100 (result 0, auth code = the terminal number as its BCD digit string) for 0x0100;
0x8001 (answered serial, answered id, result 0) for every other uplink, each packet of a
split message included, except the ids in ``NO_REPLY``. Replies use the header layout of the
frame they answer and a per-connection serial counter starting at 0.

Never acknowledge what was not decoded. A frame is *broken* when its body is shorter than the
header's length field (cut, e.g. by an unescaped 0x7E inside it or in transit), when
the checksum fails and the body does not decode soundly (``location_sound`` for 0x0200, a decoder
error otherwise), when a 0x0200 body is shorter than its 28 fixed bytes, or when its decoder
fails. A broken frame becomes no message; it is answered 0x8001 with result 2 (message error) so
that the terminal sends it again (nothing for ``NO_REPLY`` ids and 0x0100), and its errors say
why. Where the length field and a wrong checksum show that a stray 0x7E cut the frame, the
framer first tries to join it with what follows up to the next 0x7E(s) (it waits for those bytes
on a stream); a join whose length and checksum then agree is decoded normally. Frames that decode
fully stay lenient: a wrong checksum, or a body longer than its length field, is reported in
``errors`` but the message is kept and acknowledged (``jt808_strict`` drops them, unanswered).

Plain-text sentences on the same port (``(<id>,1,001,ELOCK,3,…)``, Jointech e-locks) become
``text`` messages carrying the sentence in ``command.response`` (they may answer a command).

Idents: the first decoded frame binds the connection to its terminal (``ident``); a frame from
another terminal number reports that ident in ``Frame.ident`` without rebinding: the session
decides (refuse, or ``follow``).
"""

from __future__ import annotations

from typing import Any, ClassVar

from sinogate.codecs.base import (
    CodecError,
    EncodedCommand,
    Frame,
    Message,
    SettingsLookup,
    default_lookup,
)
from sinogate.codecs.jt808.commands import COMMANDS, Built, build
from sinogate.codecs.jt808.frame import (
    Header,
    ReplyEncoder,
    decode_ident,
    encode_frame,
    escape,
    parse_header,
    phone_from_ident,
    unescape,
    xor_checksum,
)
from sinogate.codecs.jt808.location import location_report, location_sound
from sinogate.codecs.jt808.messages import DECODERS, Ctx
from sinogate.codecs.limits import CodecLimits, Reassembly

MAX_FRAME = 4096  # escaped bytes between delimiters; a 1023-byte body escapes to < 2100
MAX_ASCII = 512  # Jointech "( … )" sentences
MAX_PARTIAL = 4  # split messages being reassembled at once per connection (codecs.limits)
MAX_PACKETS = 128  # packets per split message (128 × 1023 bytes; codecs.limits)
DEFAULT_TZ_HOURS = 8.0
"""Terminal clock offset from UTC when ``time_offset`` is unset: the standard's 0x0200 time is GMT+8
(reference ``jt808.md`` §4 0x0200; many export firmwares send UTC and need ``time_offset`` 0)."""
_DEFAULT_TZ_SECONDS = DEFAULT_TZ_HOURS * 3600.0

# no reply for these uplink ids (reference §3; 0x5501/0x5502 are Jointech with their own ack)
NO_REPLY = frozenset({0x0001, 0x0701, 0x0702, 0x1300, 0x2070, 0x5501, 0x5502})
RESULT_MESSAGE_ERROR = 2  # 0x8001 result: the terminal sends the message again
MAX_JOINS = 4  # stray 0x7e bytes re-joined within one frame

_TYPE_NAMES: dict[int, str] = {}


def _type_name(msg_id: int) -> str:
    name = _TYPE_NAMES.get(msg_id)
    if name is None:
        name = f"0x{msg_id:04X}"
        if len(_TYPE_NAMES) < 1024:
            _TYPE_NAMES[msg_id] = name
    return name


def encode_command_frame(name: str, properties: dict[str, Any], phone: bytes, serial: int,
                         version: int | None = None, model: str | None = None) -> EncodedCommand:
    """Encode a command for a given terminal number / header version / serial (no connection)."""
    return _encoded(build(name, properties, version, model), phone, serial, version)


def _encoded(built: Built, phone: bytes, serial: int, version: int | None) -> EncodedCommand:
    if built.verbatim is not None:
        return EncodedCommand(built.verbatim, _verbatim_match(built.verbatim), built.expects)
    data = encode_frame(built.msg_id, phone, serial, built.body, version)
    return EncodedCommand(data, {"serial": serial, "msg_id": built.msg_id}, built.expects)


def _verbatim_match(data: bytes) -> dict[str, Any]:
    if len(data) >= 2 and data[0] == 0x7E and data[-1] == 0x7E:
        hdr = parse_header(unescape(data[1:-1])[0])
        if hdr is not None:
            return {"serial": hdr.serial, "msg_id": hdr.msg_id}
    return {}


class Connection:
    protocol: ClassVar[str] = "jt808"

    def __init__(self, settings: SettingsLookup = default_lookup, transport: str = "tcp",
                 limits: CodecLimits | None = None) -> None:
        self._settings = settings
        self.transport = transport
        self._buf = bytearray()
        self._ident: str | None = None
        self._phone: bytes | None = None
        self._version: int | None = None
        self._last: tuple[str, bytes, int | None] | None = None  # the last frame's terminal
        self._serial = 0
        # Split messages: bounded per connection and, through the shared pool, in total (codecs.limits).
        self._reassembly = Reassembly(limits.reassembly if limits is not None else None)
        self._replies = ReplyEncoder()

    # --- contract ---------------------------------------------------------------------------

    @property
    def ident(self) -> str | None:
        return self._ident

    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes, now: float) -> list[Frame]:
        self._buf += data
        frames, used = self._scan(self._buf, now, final=False)
        if used:
            del self._buf[:used]
        return frames

    def follow(self, ident: str) -> None:
        """Binds the connection to ``ident`` (the session follows a terminal that switched numbers)."""
        last = self._last
        if ident == self._ident:
            return
        self._ident = ident
        if last is not None and last[0] == ident:
            self._phone, self._version = last[1], last[2]
        else:
            self._phone = None

    def flush(self, now: float) -> list[Frame]:
        """Nothing waits for time in JT/T 808 framing (a cut frame waits for its next 0x7e)."""
        return []

    def close(self, now: float) -> list[Frame]:
        """The stream ended: what is still buffered is reported, never silently lost."""
        frames, _ = self._scan(self._buf, now, final=True)
        self._buf.clear()
        self._reassembly.release()  # incomplete split messages die with the connection
        return frames

    def datagram(self, data: bytes, now: float) -> list[Frame]:
        frames, _ = self._scan(data, now, final=True)
        return frames

    def encode_command(self, name: str, properties: dict[str, Any], now: float) -> EncodedCommand:
        if self._phone is None or self._ident is None:
            raise CodecError("device has not identified itself on this connection")
        model = self._settings(self._ident).model
        built = build(name, properties, self._version, model)
        # a verbatim frame carries its own serial: the connection's counter is not consumed
        serial = self._serial if built.verbatim is not None else self._next_serial()
        return _encoded(built, self._phone, serial, self._version)

    # --- framing ----------------------------------------------------------------------------

    def _scan(self, data: bytes | bytearray, now: float, final: bool) -> tuple[list[Frame], int]:
        buf = bytes(data)  # one copy; slices of bytes are bytes
        frames: list[Frame] = []
        pos = 0
        n = len(buf)
        while pos < n:
            first = buf[pos]
            if first == 0x7E:
                end = buf.find(b"\x7e", pos + 1)
                if end < 0:
                    if final or n - pos > MAX_FRAME:
                        why = f"input ended inside a frame ({n - pos} bytes)" if final else \
                            f"no closing 0x7e within {MAX_FRAME} bytes, dropped"
                        frames.append(Frame(raw=bytes(buf[pos:]), errors=[why]))
                        pos = n
                    break
                if end == pos + 1:  # "7e7e": boundary between frames, the 2nd 7e opens the next
                    pos = end
                    continue
                if end - pos - 1 > MAX_FRAME:
                    frames.append(Frame(raw=bytes(buf[pos:end]),
                                        errors=[f"frame longer than {MAX_FRAME} bytes, dropped"]))
                    pos = end
                    continue
                frame = self._frame(buf[pos:end + 1], now, True)
                if frame is None:  # cut short: a stray 0x7e inside, or a short body
                    joined = self._join(buf, pos, end, n, final)
                    if joined < 0:
                        break  # the rest of the frame has not arrived yet
                    if joined:
                        frame = self._frame(buf[pos:joined + 1], now, False)
                        if frame is not None:
                            frame.errors.append(f"unescaped 0x7e inside the frame: re-joined {joined - end} bytes")
                        end = joined
                    else:
                        frame = self._frame(buf[pos:end + 1], now, False)
                if frame is not None:  # never None when it may not be cut
                    frames.append(frame)
                pos = end + 1
            elif first == 0x28:  # "(" plain-text sentence on the same port (Jointech e-locks)
                close = buf.find(b")", pos + 1, pos + MAX_ASCII)
                start = buf.find(b"\x7e", pos + 1)
                if close >= 0 and (start < 0 or close < start):
                    frames.append(self._sentence(buf[pos:close + 1], now))
                    pos = close + 1
                elif start < 0 and close < 0 and n - pos <= MAX_ASCII and not final:
                    break
                else:
                    stop = n if start < 0 else start
                    frames.append(Frame(raw=bytes(buf[pos:stop]),
                                        errors=[f"{stop - pos} bytes outside a frame skipped"]))
                    pos = stop
            else:
                start = buf.find(b"\x7e", pos)
                paren = buf.find(b"(", pos)
                stop = min(i for i in (start, paren, n) if i >= 0)
                frames.append(Frame(raw=bytes(buf[pos:stop]),
                                    errors=[f"{stop - pos} bytes outside a frame skipped"]))
                pos = stop
        return frames, pos

    def _join(self, buf: bytes, pos: int, end: int, n: int, final: bool) -> int:
        """The frame at ``buf[pos:end+1]`` is shorter than its length field says and its checksum
        fails: a stray 0x7e may have cut it. Returns the index of the 0x7e that really closes it
        (length and checksum agree once joined), 0 when no join works, -1 to wait for more bytes."""
        if end + 1 < n and buf[end + 1] == 0x7E:
            return 0  # the next frame starts right here: nothing was cut off
        head = parse_header(unescape(buf[pos + 1:end])[0])
        if head is None:
            return 0
        cut = end
        for _ in range(MAX_JOINS):
            nxt = buf.find(b"\x7e", cut + 1)
            if nxt < 0:
                return 0 if final or n - pos > MAX_FRAME else -1
            inner = unescape(buf[pos + 1:nxt])[0]
            have = len(inner) - head.length - 1
            if have > head.body_length:
                return 0
            if have == head.body_length:
                hdr = parse_header(inner)
                ok = hdr is not None and hdr.body_length == head.body_length and not xor_checksum(inner)
                return nxt if ok else 0
            cut = nxt
        return 0

    def _sentence(self, raw: bytes, now: float) -> Frame:
        """``(<id>,…)``: a text message carrying the sentence; the connection's terminal, else the id."""
        text = raw[1:-1].decode("latin-1").strip()
        named = text.split(",", 1)[0].strip()
        ident = self._ident or (named.lstrip("0") or named if named.isdigit() and named.isascii() else None)
        message: Message = {"ident": ident or "", "message.type": "text", "timestamp": now,
                            "command.response": text}
        errors = [] if ident else ["text sentence without a device id on an unidentified connection"]
        return Frame(raw=bytes(raw), ident=ident, messages=[message], errors=errors)

    # --- one frame --------------------------------------------------------------------------

    def _next_serial(self) -> int:
        serial = self._serial
        self._serial = (serial + 1) & 0xFFFF
        return serial

    def _frame(self, raw: bytes, now: float, may_be_cut: bool) -> Frame | None:
        """One ``7e … 7e`` frame; ``None`` (only when ``may_be_cut``) when it looks cut short, before
        anything about the connection changed."""
        inner, bad = unescape(raw[1:-1])
        hdr = parse_header(inner)
        if hdr is None:
            short = [f"frame too short for a header ({len(inner)} bytes)"]
            if bad:
                short.append(f"{bad} invalid escape sequence(s)")
            return Frame(raw, None, [], [], short)
        residue = xor_checksum(inner)  # XOR over data + checksum is 0 when the checksum is right
        body = inner[hdr.length:-1]
        props = hdr.props
        declared = props & 0x03FF
        cut = len(body) < declared
        if cut and residue and may_be_cut:  # a stray 0x7e: the checksum byte is a body byte
            return None
        phone = hdr.phone
        ident = self._ident if phone == self._phone and self._ident is not None else decode_ident(phone)
        errors: list[str] = []
        if bad:
            errors.append(f"{bad} invalid escape sequence(s), dropped with the byte after 0x7d")
        if residue:
            errors.append(f"checksum mismatch: computed 0x{residue ^ inner[-1]:02x}, frame has 0x{inner[-1]:02x}")
        if len(body) != declared:
            errors.append(f"body length field {declared} but body has {len(body)} bytes")
        settings = self._settings(ident)
        if errors and settings.jt808_strict:
            errors.append("strict mode: frame dropped")
            return Frame(raw, ident, [], [], errors)
        version = hdr.version
        if phone == self._phone:
            self._version = version
        elif self._ident is None:  # the first terminal binds the connection
            self._ident, self._phone, self._version = ident, phone, version
        else:  # another terminal: reported, the session decides (``follow``)
            self._last = (ident, phone, version)
        msg_id = hdr.msg_id
        frame = Frame(raw, ident, [], [], errors)
        if cut:
            return self._broken(frame, hdr, "cut short (body shorter than its length field)")
        split = props & 0x2000
        if split:
            whole = self._reassemble(hdr, body, errors, now)
            self._reply(frame, hdr)
            if whole is None:
                return frame
            body = whole
        tz = settings.time_offset
        tz_seconds = _DEFAULT_TZ_SECONDS if tz is None else tz * 3600.0
        if msg_id == 0x0200:  # the hot path, without the generic dispatch
            if len(body) < 28:
                return self._broken(frame, hdr, f"0x0200 body too short ({len(body)} bytes)", split)
            if residue and not location_sound(body, 0, len(body)):
                return self._broken(frame, hdr, "0x0200 body cannot be trusted (checksum wrong, fields out of range)",
                                    split)
            try:
                msg = location_report(ident, "0x0200", version, body, tz_seconds, now)
            except Exception as exc:  # never break the stream
                msg = None
                errors.append(f"{exc!r}")
            if msg is None:
                return self._broken(frame, hdr, "0x0200 body not decoded", split)
            frame.messages.append(msg)
        else:
            base: Message = {"ident": ident, "message.type": _type_name(msg_id), "timestamp": now}
            if version is not None:
                base["protocol.version"] = version
            decoder = DECODERS.get(msg_id)
            if decoder is None:
                frame.messages.append(base)
            else:
                try:
                    frame.messages.extend(decoder(base, body, Ctx(version, tz_seconds, now)))
                except Exception as exc:  # a decoder bug must never break the stream
                    return self._broken(frame, hdr, f"0x{msg_id:04X} body not decoded: {exc!r}", split)
        if not split:  # a split packet was answered on arrival
            self._reply(frame, hdr)
        return frame

    def _broken(self, frame: Frame, hdr: Header, why: str, answered: int = 0) -> Frame:
        """A frame that was not decoded: no message; answered with result 2 (message error) so that
        the terminal sends it again, unless its id gets no answer or it was already answered (a
        packet of a split message is answered on arrival)."""
        frame.messages.clear()
        frame.errors.append(why)
        if answered:
            return frame
        if hdr.msg_id in NO_REPLY or hdr.msg_id == 0x0100:
            frame.errors.append("not acknowledged")
            return frame
        frame.replies.append(self._replies.ack(hdr.phone, hdr.version, self._next_serial(), hdr.serial, hdr.msg_id,
                                               RESULT_MESSAGE_ERROR))
        frame.errors.append("answered 0x8001 result 2 (message error), not acknowledged as received")
        return frame

    def _reply(self, frame: Frame, hdr: Header) -> None:
        msg_id = hdr.msg_id
        if msg_id in NO_REPLY:
            return
        serial = self._next_serial()
        if msg_id == 0x0100:
            body = hdr.serial.to_bytes(2, "big") + b"\x00" + hdr.phone.hex().encode()
            frame.replies.append(self._replies.encode(0x8100, hdr.phone, hdr.version, serial, body))
            return
        frame.replies.append(self._replies.ack(hdr.phone, hdr.version, serial, hdr.serial, msg_id))

    def _reassemble(self, hdr: Header, body: bytes, errors: list[str], now: float) -> bytes | None:
        declared = hdr.body_length
        if len(body) > declared:  # a part never holds more than its 10-bit length field says
            errors.append(f"sub-package body of {len(body)} bytes, longer than its length field {declared}: cut")
            body = body[:declared]
        return self._reassembly.add(hdr.msg_id, hdr.total, hdr.index, body, now, errors)


__all__ = [
    "COMMANDS",
    "DEFAULT_TZ_HOURS",
    "MAX_FRAME",
    "MAX_PARTIAL",
    "NO_REPLY",
    "Connection",
    "decode_ident",
    "encode_command_frame",
    "encode_frame",
    "escape",
    "phone_from_ident",
    "unescape",
    "xor_checksum",
]
