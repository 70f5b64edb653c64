"""JT/T 808 platform commands: JSON schemas and body encoders.

``build(name, properties, version, model)`` returns a ``Built``: the message id and body to frame,
or (custom hex) a complete frame to send verbatim, plus what kind of device reply closes it.

Model hints (``DeviceSettings.model``): a model starting with ``JC`` (Jimi) gets ``custom`` text
as 0x8900 pass-through type 0xF0; a model containing ``seeworld`` or ``w15l`` gets engine
stop/resume as 0x8105 command word 0x64/0x65 instead of Traccar's 0xF0/0xF1.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sinogate.codecs.base import CodecError
from sinogate.codecs.jt808.params import BYTE, DWORD, SIZES, STRING, WORD, param_type
from sinogate.codecs.sinotrack import EXAMPLES as TEXT_EXAMPLES
from sinogate.codecs.sinotrack import TEXT_COMMANDS, text_of

_HEX_FRAME = re.compile(r"^7e(?:[0-9a-f]{2})+7e$", re.IGNORECASE)

COMMANDS: dict[str, dict[str, Any]] = {
    "custom": {
        "type": "object",
        "description": "Text command (0x8300 text message, flag 0x01; 0x8900 type 0xF0 for JC* models), "
                       "or a complete hex frame starting with 7e sent verbatim.",
        "properties": {
            "payload": {"type": "string", "description": "Command text, e.g. RELAY,1# (alias: text, data)"},
            "text": {"type": "string", "description": "Alias of payload"},
            "hex": {"type": "boolean", "description": "payload is hex bytes to send verbatim"},
        },
    },
    "engine.stop": {
        "type": "object",
        "description": "Cut the fuel/relay: 0x8105 command word 0xF0 (0x64 for SeeWorld models).",
        "properties": {},
    },
    "engine.resume": {
        "type": "object",
        "description": "Restore the fuel/relay: 0x8105 command word 0xF1 (0x65 for SeeWorld models).",
        "properties": {},
    },
    "interval.set": {
        "type": "object",
        "description": "Set the default report interval (0x8103 parameter 0x0029, seconds).",
        "properties": {"seconds": {"type": "integer", "minimum": 1, "description": "Report interval, s"}},
        "required": ["seconds"],
    },
    "params.set": {
        "type": "object",
        "description": "Set terminal parameters (0x8103); values typed by the known parameter table.",
        "properties": {
            "params": {
                "type": "object",
                "description": 'Parameter id (hex string like "0x0029" or integer) → value',
                "additionalProperties": {"type": ["integer", "string"]},
            },
        },
        "required": ["params"],
    },
    "params.query": {
        "type": "object",
        "description": "Query all parameters (0x8104) or the given ids (0x8106); the answer is 0x0104.",
        "properties": {
            "ids": {"type": "array", "items": {"type": ["integer", "string"]},
                    "description": "Parameter ids to query (optional)"},
        },
    },
    "terminal.control": {
        "type": "object",
        "description": "0x8105 terminal control with a command word and an optional parameter string.",
        "properties": {
            "command": {"type": "integer", "minimum": 0, "maximum": 255, "description": "Command word"},
            "parameter": {"type": "string", "description": "Parameter string (fields separated by ';')"},
        },
        "required": ["command"],
    },
    "reboot": {
        "type": "object",
        "description": "Reset the terminal (0x8105 command word 4).",
        "properties": {},
    },
    "server.set": {
        "type": "object",
        "description": "Set the main server (0x8103 parameters 0x0013 host and 0x0018 TCP port).",
        "properties": {
            "host": {"type": "string", "description": "IP address or domain"},
            "port": {"type": "integer", "minimum": 1, "maximum": 65535, "description": "TCP port"},
        },
        "required": ["host", "port"],
    },
}


# Sinotrack settings (``codecs.sinotrack``) as 0x8300 text messages: Sinotrack units in JT/T 808 mode
# run them like the SMS; other terminals answer 0x0001 with result 3 (not supported) or ignore them.
COMMANDS.update({
    name: {**entry.schema, "description": f"{entry.schema['description']} Sent as a 0x8300 text (Sinotrack units "
                                          f"in JT/T 808 mode run it like the SMS)."}
    for name, entry in TEXT_COMMANDS.items()
})

# Example properties per command for the catalog; the first one is what `commands list` prints.
EXAMPLES: dict[str, tuple[dict[str, Any], ...]] = {
    "custom": ({"payload": "STATUS#"}, {"payload": "PARAM#"}),  # not RELAY,1#: on many units it cuts the engine
    "interval.set": ({"seconds": 30},),
    "params.set": ({"params": {"0x0029": 30, "0x0055": 120}},),
    "params.query": ({}, {"ids": ["0x0029", "0x0013"]}),
    "terminal.control": ({"command": 4},),
    "server.set": ({"host": "1.2.3.4", "port": 5015},),
    **TEXT_EXAMPLES,
}


@dataclass(slots=True)
class Built:
    msg_id: int
    body: bytes
    expects: tuple[str, ...]
    verbatim: bytes | None = None


def _param_id(key: Any) -> int:
    try:
        pid = int(key, 0) if isinstance(key, str) else int(key)
    except (TypeError, ValueError):
        raise CodecError(f"bad parameter id {key!r}: use an integer or a hex string like 0x0029") from None
    if not 0 <= pid <= 0xFFFFFFFF:
        raise CodecError(f"parameter id {key!r} out of range")
    return pid


def _param_item(pid: int, value: Any) -> bytes:
    kind = param_type(pid)
    if kind is None:
        kind = STRING if isinstance(value, str) else DWORD
    if kind == STRING:
        if not isinstance(value, str):
            raise CodecError(f"parameter 0x{pid:04X} takes a string, got {value!r}")
        raw = value.encode("gbk")
        if len(raw) > 255:
            raise CodecError(f"parameter 0x{pid:04X}: value longer than 255 bytes")
    else:
        if isinstance(value, bool) or not isinstance(value, int):
            raise CodecError(f"parameter 0x{pid:04X} takes an integer ({kind}), got {value!r}")
        size = SIZES[kind]
        if not 0 <= value < 1 << (8 * size):
            raise CodecError(f"parameter 0x{pid:04X} ({kind}) value {value} out of range")
        raw = value.to_bytes(size, "big")
    return pid.to_bytes(4, "big") + bytes((len(raw),)) + raw


def params_body(items: list[tuple[int, Any]]) -> bytes:
    if not 1 <= len(items) <= 255:
        raise CodecError("params: give between 1 and 255 parameters")
    return bytes((len(items),)) + b"".join(_param_item(pid, v) for pid, v in items)


def _int(props: dict[str, Any], key: str, lo: int, hi: int) -> int:
    value = props.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise CodecError(f"property {key!r} must be an integer between {lo} and {hi}, got {value!r}")
    return value


def _custom(props: dict[str, Any], version: int | None, model: str) -> Built:
    payload = props.get("payload", props.get("text", props.get("data")))
    if not isinstance(payload, str) or not payload:
        raise CodecError("custom: property 'payload' (or 'text') must be a non-empty string")
    compact = payload.replace(" ", "")
    if props.get("hex") is True or _HEX_FRAME.match(compact):
        try:
            data = bytes.fromhex(compact)
        except ValueError:
            raise CodecError("custom: payload is not valid hex") from None
        return Built(0, b"", ("general", "text"), verbatim=data)
    try:
        text = payload.encode("gbk")
    except UnicodeEncodeError:
        raise CodecError("custom: payload cannot be encoded as GBK") from None
    if model.upper().startswith("JC"):
        return Built(0x8900, b"\xf0" + text, ("general", "text"))
    head = b"\x01\x01" if version is not None else b"\x01"
    return Built(0x8300, head + text, ("general", "text"))


def build(name: str, props: dict[str, Any], version: int | None, model: str | None) -> Built:
    if not isinstance(props, dict):
        raise CodecError("properties must be an object")
    model = model or ""
    if name == "custom":
        return _custom(props, version, model)
    if name in TEXT_COMMANDS:
        try:
            return _custom({"payload": text_of(name, props)}, version, model)
        except ValueError as exc:
            raise CodecError(f"{name}: {exc}") from exc
    if name in ("engine.stop", "engine.resume"):
        seeworld = "seeworld" in model.lower() or "w15l" in model.lower()
        word = (0x64 if seeworld else 0xF0) if name == "engine.stop" else (0x65 if seeworld else 0xF1)
        return Built(0x8105, bytes((word,)), ("general",))
    if name == "reboot":
        return Built(0x8105, b"\x04", ("general",))
    if name == "terminal.control":
        word = _int(props, "command", 0, 255)
        parameter = props.get("parameter", "")
        if not isinstance(parameter, str):
            raise CodecError("terminal.control: 'parameter' must be a string")
        return Built(0x8105, bytes((word,)) + parameter.encode("gbk"), ("general",))
    if name == "interval.set":
        seconds = _int(props, "seconds", 1, 0xFFFFFFFF)
        return Built(0x8103, params_body([(0x0029, seconds)]), ("general",))
    if name == "server.set":
        host = props.get("host")
        if not isinstance(host, str) or not host:
            raise CodecError("server.set: 'host' must be a non-empty string")
        port = _int(props, "port", 1, 65535)
        return Built(0x8103, params_body([(0x0013, host), (0x0018, port)]), ("general",))
    if name == "params.set":
        params = props.get("params")
        if not isinstance(params, dict) or not params:
            raise CodecError("params.set: 'params' must be a non-empty object of id → value")
        return Built(0x8103, params_body([(_param_id(k), v) for k, v in params.items()]), ("general",))
    if name == "params.query":
        ids = props.get("ids")
        if ids is None:
            return Built(0x8104, b"", ("params",))
        if not isinstance(ids, list) or not 1 <= len(ids) <= 255:
            raise CodecError("params.query: 'ids' must be a list of 1 to 255 parameter ids")
        body = bytes((len(ids),)) + b"".join(_param_id(i).to_bytes(4, "big") for i in ids)
        return Built(0x8106, body, ("params",))
    raise CodecError(f"unknown command {name!r}; known: {', '.join(sorted(COMMANDS))}")


__all__ = ["BYTE", "COMMANDS", "DWORD", "STRING", "WORD", "Built", "build", "params_body"]
