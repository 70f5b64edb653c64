"""JT/T 808 uplink bodies other than the plain 0x0200 location (which lives in ``location``).

Each decoder takes ``(base, body, ctx)`` and returns a list of messages. ``base`` already holds
``ident``, ``message.type`` and ``timestamp`` (= now); decoders copy it. 0x0200 is not here: the
connection decodes it directly with ``decode_location``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sinogate.codecs.base import Message
from sinogate.codecs.jt808.params import PARAMS, SIZES, STRING
from sinogate.model.param import Param
from tests.codecs.legacy.jt808.location import bcd_time, decode_location

RESULT_TEXT = {0: "ok", 1: "failed", 2: "bad message", 3: "not supported", 4: "alarm confirmed"}


@dataclass(slots=True)
class Ctx:
    version: int | None
    tz_seconds: float
    now: float


def _text(raw: bytes) -> str:
    return raw.split(b"\x00", 1)[0].decode("gbk", "replace").strip()


def _ascii(raw: bytes) -> str:
    """ASCII field padded with 0x00; non-printable content (binary ids) comes out as hex."""
    raw = raw.strip(b"\x00")
    if raw.isascii() and raw.decode("ascii").isprintable():
        return raw.decode("ascii").strip()
    return raw.hex()


def _u16(b: bytes, off: int) -> int:
    return (b[off] << 8) | b[off + 1]


def registration(base: Message, body: bytes, ctx: Ctx) -> list[Message]:
    """0x0100: 2019 (version byte) 11/30/30, 2013 5/20/7, 2011 (body < 37 bytes) 5/8/7."""
    m = dict(base)
    if len(body) < 4:
        return [m]
    m["province.id"] = _u16(body, 0)
    m["city.id"] = _u16(body, 2)
    if ctx.version is not None:
        sizes = (11, 30, 30)
    elif len(body) < 37:
        sizes = (5, 8, 7)
    else:
        sizes = (5, 20, 7)
    p = 4
    for name, size in zip(("manufacturer.code", "device.model", "manufacturer.device.code"), sizes, strict=True):
        if p + size > len(body):
            return [m]
        m[name] = _ascii(body[p:p + size])
        p += size
    if p < len(body):
        m["vehicle.plate.color"] = body[p]
        m["vehicle.plate.number"] = _text(body[p + 1:])
    return [m]


def authentication(base: Message, body: bytes, ctx: Ctx) -> list[Message]:
    """0x0102: 2013 = whole body is the code; 2019 = len BYTE + code + IMEI[15] + version[20]."""
    m = dict(base)
    n = len(body)
    if ctx.version is not None and n >= 1 and 1 + body[0] + 15 <= n:
        k = body[0]
        m["auth.code"] = _ascii(body[1:1 + k])
        m["device.imei"] = _ascii(body[1 + k:16 + k])
        if n > 16 + k:
            m["device.software.version"] = _ascii(body[16 + k:36 + k])
    else:
        m["auth.code"] = _ascii(body)
    return [m]


def general_response(base: Message, body: bytes, ctx: Ctx) -> list[Message]:
    """0x0001 terminal general response: answered serial, answered msg id, result."""
    m = dict(base)
    if len(body) >= 5:
        m["command.serial"] = _u16(body, 0)
        m["command.code"] = f"0x{_u16(body, 2):04X}"
        m["command.result.code"] = body[4]
        m["command.response"] = RESULT_TEXT.get(body[4], f"result {body[4]}")
    return [m]


def _param_value(kind: str | None, raw: bytes) -> int | str:
    if kind == STRING or (kind is None and len(raw) not in (1, 2, 4)):
        return raw.split(b"\x00", 1)[0].decode("gbk", "replace")
    if kind is not None and len(raw) != SIZES[kind]:
        return raw.hex()
    return int.from_bytes(raw, "big")


def params_response(base: Message, body: bytes, ctx: Ctx) -> list[Message]:
    """0x0104: answered serial WORD, count BYTE, items (id DWORD, len BYTE, value)."""
    m = dict(base)
    m["command.code"] = "0x8104"
    if len(body) < 3:
        return [m]
    m["command.serial"] = _u16(body, 0)
    parts = []
    p = 3
    while p + 5 <= len(body):
        pid = int.from_bytes(body[p:p + 4], "big")
        ln = body[p + 4]
        raw = body[p + 5:p + 5 + ln]
        p += 5 + ln
        kind, name = PARAMS.get(pid, (None, None))
        value = _param_value(kind, raw)
        parts.append(f"0x{pid:04X}={value}")
        if name:
            m[name] = value
    m["command.response"] = ";".join(parts)
    return [m]


def text_report(base: Message, body: bytes, ctx: Ctx) -> list[Message]:
    """0x6006: encoding BYTE + GBK/ASCII text."""
    m = dict(base)
    if body:
        m["command.response"] = _text(body[1:])
    return [m]


def _is_text(raw: bytes) -> bool:
    if not raw or not raw.isascii():
        return False
    return all(c.isprintable() or c in "\r\n\t" for c in raw.decode("ascii"))


def passthrough(base: Message, body: bytes, ctx: Ctx) -> list[Message]:
    """0x0900: type BYTE + content; ASCII content becomes ``command.response``."""
    m = dict(base)
    if body:
        m["passthrough.type"] = body[0]
        content = body[1:]
        if _is_text(content):
            m["command.response"] = content.decode("ascii").strip()
        else:
            m["passthrough.data"] = content.hex()
    return [m]


def waybill(base: Message, body: bytes, ctx: Ctx) -> list[Message]:
    """0x0701 as a command answer: DWORD length + text."""
    m = dict(base)
    if len(body) >= 4:
        n = int.from_bytes(body[:4], "big")
        m["command.response"] = _text(body[4:4 + n])
    return [m]


def sms_response(base: Message, body: bytes, ctx: Ctx) -> list[Message]:
    """0x1300: answered serial WORD + UTF-16BE text."""
    m = dict(base)
    if len(body) >= 2:
        m["command.serial"] = _u16(body, 0)
        text = body[2:]
        if len(text) % 2:
            text = text[:-1]
        m["command.response"] = text.decode("utf-16-be", "replace").rstrip("\x00").strip()
    return [m]


def location_answer(base: Message, body: bytes, ctx: Ctx) -> list[Message]:
    """0x0201 / 0x0500: answered serial WORD + 0x0200 body."""
    m = dict(base)
    if len(body) >= 2:
        m["command.serial"] = _u16(body, 0)
        m = decode_location(m, body, 2, len(body), ctx.tz_seconds, ctx.now) or m
    return [m]


def batch(base: Message, body: bytes, ctx: Ctx) -> list[Message]:
    """0x0704: count WORD, type BYTE, then items (WORD length + 0x0200 body); parse while bytes remain."""
    if len(body) < 3:
        return [dict(base)]
    blackbox = body[2] == 1
    out = []
    p = 3
    n = len(body)
    while p + 2 <= n:
        ln = _u16(body, p)
        end = min(p + 2 + ln, n)
        m = decode_location(base, body, p + 2, end, ctx.tz_seconds, ctx.now)
        if m is not None:
            m["position.blackbox"] = blackbox
            out.append(m)
        p += 2 + ln
    return out or [dict(base)]


def vendor_batch(base: Message, body: bytes, ctx: Ctx) -> list[Message]:
    """0x0210: the short form of battery trackers (``battery_report``), else items prefixed by a BYTE
    length, no count/type header."""
    if len(body) < 29:  # no room for one location item
        short = battery_report(base, body, ctx)
        if short is not None:
            return [short]
    out = []
    p = 0
    n = len(body)
    while p + 1 <= n:
        ln = body[p]
        end = min(p + 1 + ln, n)
        m = decode_location(base, body, p + 1, end, ctx.tz_seconds, ctx.now)
        if m is not None:
            out.append(m)
        p += 1 + ln
    return out or [dict(base)]


def battery_report(base: Message, body: bytes, ctx: Ctx) -> Message | None:
    """0x0210 short form (battery trackers reporting hourly): battery % BYTE + BCD YYMMDDhhmmss
    (terminal time); ``None`` when the body is not that."""
    if len(body) < 7 or body[0] > 100:
        return None
    ts = bcd_time(body[1:7], ctx.tz_seconds)
    if ts is None:
        return None
    m = dict(base)
    m["timestamp"] = ts
    m["battery.level"] = body[0]
    return m


# 0x0107 layouts: (maker, model, terminal id) widths; 2019 (maker 11, as in 0x0100), 2013, 2019 with
# the 2013 maker width (as sinogate read every 2019 body before)
_ATTRIBUTE_LAYOUTS: tuple[tuple[int, int, int], ...] = ((11, 30, 30), (5, 20, 7), (5, 30, 30))


def _attribute_layout(body: bytes, version: int | None) -> tuple[int, int, int] | None:
    """The layout whose fields end exactly where the body ends (type, maker, model, id, ICCID[10],
    HW version len+text, FW version len+text, GNSS BYTE, network BYTE); the header's version
    picks the order they are tried in. ``None`` when none fits."""
    order = _ATTRIBUTE_LAYOUTS if version is not None else (_ATTRIBUTE_LAYOUTS[1], *_ATTRIBUTE_LAYOUTS[::2])
    n = len(body)
    for layout in order:
        p = 2 + sum(layout) + 10
        if p >= n:
            continue
        p += 1 + body[p]  # hardware version
        if p >= n:
            continue
        p += 1 + body[p]  # firmware version
        if p + 2 == n or p + 1 == n or p == n:  # GNSS and network bytes (some terminals omit them)
            return layout
    return None


def attributes(base: Message, body: bytes, ctx: Ctx) -> list[Message]:
    """0x0107: type WORD, maker[5 | 11], model[20 | 30], id[7 | 30], ICCID BCD[10], hardware and
    firmware versions (BYTE length + text each), GNSS BYTE, network BYTE. The body length tells
    the layouts apart (2013: 102 bytes with typical versions, 2019: 127); a body that fits none is
    read as the header's version says, without the versions."""
    m = dict(base)
    layout = _attribute_layout(body, ctx.version)
    exact = layout is not None
    if layout is None:
        layout = (11, 30, 30) if ctx.version is not None else (5, 20, 7)
    maker_len, model_len, id_len = layout
    p = 2
    if len(body) < p + maker_len + model_len + id_len + 10:
        return [m]
    fields: list[tuple[str, str]] = []
    for name, size in (("manufacturer.code", maker_len), ("device.model", model_len),
                       ("manufacturer.device.code", id_len)):
        fields.append((name, _ascii(body[p:p + size])))
        p += size
    fields.append(("gsm.sim.iccid", body[p:p + 10].hex().rstrip("f")))
    p += 10
    if exact:
        for name in ("device.hardware.version", "device.firmware.version"):
            size = body[p]
            fields.append((name, _text(body[p + 1:p + 1 + size])))
            p += 1 + size
    m.update((name, value) for name, value in fields if value)  # all-zero fields are unset, not ""
    return [m]


DECODERS: dict[int, Callable[[Message, bytes, Ctx], list[Message]]] = {
    0x0100: registration,
    0x0102: authentication,
    0x0001: general_response,
    0x0104: params_response,
    0x6006: text_report,
    0x0900: passthrough,
    0x0701: waybill,
    0x1300: sms_response,
    0x0201: location_answer,
    0x0500: location_answer,
    0x0704: batch,
    0x0210: vendor_batch,
    0x0107: attributes,
}

# message names of these bodies, for the parameter registry (via SPEC.params)
FIELDS: tuple[Param, ...] = (
    Param("device.hardware.version", "string", "", "Hardware version the terminal reports", "Message ID 0x0107"),
    Param("passthrough.type", "number", "", "JT/T 808 0x0900 pass-through type byte", "Message ID 0x0900"),
    Param("passthrough.data", "string", "", "JT/T 808 0x0900 binary pass-through content (hex)",
          "Message ID 0x0900"),
)
