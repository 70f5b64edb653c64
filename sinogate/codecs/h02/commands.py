"""H02 server-to-device commands (reference §7).

Wrapped commands are ``*HQ,<ident>,<CMD>,<HHMMSS>[,<param>...]#``; HHMMSS is ``now`` in UTC shifted
by the device's ``time_offset`` when one is set (the device echoes it in its ``V4`` reply, so the
reply is matched on ``{"code", "time"}``). Raw commands (Sinotrack SMS command strings sent over
GPRS, e.g. ``RCONF``, ``RESTART``, ``8040000 1.2.3.4 5013``) go out as bare ASCII and are answered
with ``*HQ,<id>,SMS,<text>#``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any, Final

from sinogate.codecs.base import CodecError, EncodedCommand
from sinogate.codecs.sinotrack import EXAMPLES as TEXT_EXAMPLES
from sinogate.codecs.sinotrack import TEXT_COMMANDS, text_of

# an H02 command code: S20, D1, R12... alone or with parameters; letters-only codes (SCF) need a comma,
# so that bare SMS-style words (CQ, RCONF) stay raw
_CODE = re.compile(r"^(?:[A-Z]{1,3}\d{1,3}(?:,|$)|[A-Z]{2,3},)")
_WRAPPED_IN = re.compile(r"^\*[A-Za-z]{2},[^,#]*,([A-Z0-9]+),(\d{6})?")
_HOST = re.compile(r"^[A-Za-z0-9.\-]{1,253}$")

_TIME_NOTE = "HHMMSS is the current UTC time shifted by the device time_offset."

COMMANDS: Final[dict[str, dict[str, Any]]] = {
    "custom": {
        "type": "object",
        "description": (
            "Send any text. mode 'auto' (default): a payload starting with '*' goes out as is; one starting "
            "with an H02 command code (e.g. 'S20,1,1', 'S71,130305,22,30', 'D1,10', 'SCF,0,0') is wrapped as "
            "*HQ,<id>,<payload># with the current HHMMSS inserted after the code unless the second field "
            "already is a 6-digit time; anything else (RCONF, CXZT, RESTART, '8040000 1.2.3.4 5013') is "
            "sent as raw text and answered by an SMS message. 'wrapped' and 'raw' force either form."
        ),
        "properties": {
            "payload": {"type": "string", "minLength": 1, "description": "Command text (alias: text)"},
            "text": {"type": "string", "minLength": 1, "description": "Alias of payload"},
            "mode": {"type": "string", "enum": ["auto", "wrapped", "raw"], "default": "auto"},
        },
        "additionalProperties": False,
    },
    "engine.stop": {
        "type": "object",
        "description": "Cut fuel/power (S20,<t>,1,1); the device confirms with V4,S20.",
        "properties": {},
        "additionalProperties": False,
    },
    "engine.resume": {
        "type": "object",
        "description": "Restore fuel/power (S20,<t>,1,0); the device confirms with V4,S20.",
        "properties": {},
        "additionalProperties": False,
    },
    "alarm.arm": {
        "type": "object",
        "description": "Arm the alarm (SCF,<t>,0,0).",
        "properties": {},
        "additionalProperties": False,
    },
    "alarm.disarm": {
        "type": "object",
        "description": "Disarm the alarm (SCF,<t>,1,1).",
        "properties": {},
        "additionalProperties": False,
    },
    "interval.set": {
        "type": "object",
        "description": "Set the reporting interval: S71,<t>,22,<seconds>, or D1,<t>,<seconds> when alternative.",
        "properties": {
            "seconds": {"type": "integer", "minimum": 0, "maximum": 99999},
            "alternative": {"type": "boolean", "default": False, "description": "Use the D1 form"},
        },
        "required": ["seconds"],
        "additionalProperties": False,
    },
    "mileage.query": {
        "type": "object",
        "description": "Ask for the mileage (S32,<t>).",
        "properties": {},
        "additionalProperties": False,
    },
    "status.query": {
        "type": "object",
        "description": "Ask for the device status (S26,<t>); the device answers with LINK or V4.",
        "properties": {},
        "additionalProperties": False,
    },
    "reboot": {
        "type": "object",
        "description": "Reboot (raw text RESTART).",
        "properties": {},
        "additionalProperties": False,
    },
    "server.set": {
        "type": "object",
        "description": "Point the device at a server (raw text '804<password> <host> <port>').",
        "properties": {
            "host": {"type": "string", "minLength": 1, "description": "IP address or host name"},
            "port": {"type": "integer", "minimum": 1, "maximum": 65535},
            "password": {"type": "string", "pattern": "^[0-9]{4,8}$", "default": "0000"},
        },
        "required": ["host", "port"],
        "additionalProperties": False,
    },
}


# Sinotrack settings that exist only as SMS texts, sent raw over GPRS (``codecs.sinotrack``).
COMMANDS.update({name: entry.schema for name, entry in TEXT_COMMANDS.items()})

# Example properties per command for the catalog; the first one is what `commands list` prints.
EXAMPLES: Final[dict[str, tuple[dict[str, Any], ...]]] = {
    # no engine stop among the examples: people copy examples (it is engine.stop, destructive, confirmed)
    "custom": ({"payload": "RCONF"}, {"payload": "CXZT"}, {"payload": "S71,22,30", "mode": "wrapped"},
               {"payload": "8040000 1.2.3.4 5013", "mode": "raw"}),
    "interval.set": ({"seconds": 30}, {"seconds": 60, "alternative": True}),
    "server.set": ({"host": "1.2.3.4", "port": 5013},),
    **TEXT_EXAMPLES,
}


def command_time(now: float, offset_hours: float | None) -> str:
    """HHMMSS of ``now`` in UTC, shifted by the device offset when set."""
    t = now + (offset_hours or 0.0) * 3600.0
    return time.strftime("%H%M%S", time.gmtime(t))


def _check_props(name: str, props: dict[str, Any]) -> None:
    allowed = COMMANDS[name]["properties"]
    unknown = sorted(set(props) - set(allowed))
    if unknown:
        raise CodecError(f"{name}: unknown properties {', '.join(unknown)}")
    for req in COMMANDS[name].get("required", ()):
        if req not in props:
            raise CodecError(f"{name}: missing property {req!r}")


def _int_prop(name: str, props: dict[str, Any], key: str, lo: int, hi: int) -> int:
    v = props[key]
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise CodecError(f"{name}: {key} must be an integer {lo}..{hi}, got {v!r}")
    return v


def _ascii(name: str, text: str, extra_forbidden: str = "") -> bytes:
    if not text.isascii() or any(c < " " or c == "\x7f" or c in extra_forbidden for c in text):
        raise CodecError(f"{name}: text must be printable ASCII without {extra_forbidden or 'control chars'}")
    return text.encode("ascii")


def _wrapped(ident: str, code: str, t: str, params: tuple[str, ...] = ()) -> EncodedCommand:
    body = ",".join(("*HQ", ident, code, t, *params)) + "#"
    expects = ("link", "v4") if code == "S26" else ("v4",)
    return EncodedCommand(body.encode("ascii"), {"code": code, "time": t}, expects)


def _raw(data: bytes) -> EncodedCommand:
    # bare text carries no delimiter: two in one TCP read would be one unknown command to the device
    return EncodedCommand(data, {"raw": True}, ("sms",), one_at_a_time=True)


def _custom(ident: str, props: dict[str, Any], t: str) -> EncodedCommand:
    payload = props.get("payload", props.get("text"))
    if not isinstance(payload, str) or not payload.strip():
        raise CodecError("custom: property 'payload' (or 'text') must be a non-empty string")
    if "payload" in props and "text" in props and props["payload"] != props["text"]:
        raise CodecError("custom: give either 'payload' or 'text', not both")
    mode = props.get("mode", "auto")
    if mode not in ("auto", "wrapped", "raw"):
        raise CodecError(f"custom: mode must be auto, wrapped or raw, got {mode!r}")
    payload = payload.strip()
    if mode == "raw" or (mode == "auto" and not payload.startswith("*") and not _CODE.match(payload)):
        return _raw(_ascii("custom", payload))
    if payload.startswith("*"):
        data = _ascii("custom", payload)
        m = _WRAPPED_IN.match(payload)
        if m and m.group(2):
            return EncodedCommand(data, {"code": m.group(1), "time": m.group(2)}, ("v4",))
        return EncodedCommand(data, {"raw": True}, ("v4", "sms"))
    fields = payload.split(",")
    code = fields[0].strip()
    _ascii("custom", payload, "#*")
    if not code:
        raise CodecError("custom: wrapped payload needs a command code first")
    rest = fields[1:]
    if rest and len(rest[0]) == 6 and rest[0].isdigit():
        t, rest = rest[0], rest[1:]
    return _wrapped(ident, code, t, tuple(rest))


def _server_set(props: dict[str, Any]) -> EncodedCommand:
    host = props["host"]
    if not isinstance(host, str) or not _HOST.match(host):
        raise CodecError(f"server.set: bad host {host!r}")
    port = _int_prop("server.set", props, "port", 1, 65535)
    pwd = props.get("password", "0000")
    if not isinstance(pwd, str) or not pwd.isdigit() or not 4 <= len(pwd) <= 8 or not pwd.isascii():
        raise CodecError("server.set: password must be 4-8 digits")
    return _raw(f"804{pwd} {host} {port}".encode("ascii"))


def _interval(ident: str, props: dict[str, Any], t: str) -> EncodedCommand:
    seconds = _int_prop("interval.set", props, "seconds", 0, 99999)
    alternative = props.get("alternative", False)
    if not isinstance(alternative, bool):
        raise CodecError("interval.set: alternative must be a boolean")
    if alternative:
        return _wrapped(ident, "D1", t, (str(seconds),))
    return _wrapped(ident, "S71", t, ("22", str(seconds)))


_FIXED: Final[dict[str, tuple[str, tuple[str, ...]]]] = {
    "engine.stop": ("S20", ("1", "1")),
    "engine.resume": ("S20", ("1", "0")),
    "alarm.arm": ("SCF", ("0", "0")),
    "alarm.disarm": ("SCF", ("1", "1")),
    "mileage.query": ("S32", ()),
    "status.query": ("S26", ()),
}

_SPECIAL: Final[dict[str, Callable[[str, dict[str, Any], str], EncodedCommand]]] = {
    "custom": _custom,
    "interval.set": _interval,
    "reboot": lambda _i, _p, _t: _raw(b"RESTART"),
    "server.set": lambda _i, p, _t: _server_set(p),
}


def encode(ident: str | None, name: str, properties: dict[str, Any], now: float,
           offset_hours: float | None) -> EncodedCommand:
    if name not in COMMANDS:
        raise CodecError(f"unknown h02 command {name!r}; known: {', '.join(sorted(COMMANDS))}")
    if not ident:
        raise CodecError("device ident unknown on this connection; cannot address an H02 command")
    if not isinstance(properties, dict):
        raise CodecError(f"{name}: properties must be an object")
    _check_props(name, properties)
    t = command_time(now, offset_hours)
    fixed = _FIXED.get(name)
    if fixed is not None:
        return _wrapped(ident, fixed[0], t, fixed[1])
    if name in TEXT_COMMANDS:
        try:
            return _raw(_ascii(name, text_of(name, properties)))
        except ValueError as exc:
            raise CodecError(f"{name}: {exc}") from exc
    return _SPECIAL[name](ident, properties, t)
