"""The command catalog: what a user can send to a device of each protocol.

Built from each codec's module-level ``COMMANDS`` (name → JSON schema of the properties). Every
entry is ``{name, description, address, schema, examples}``; ``address`` lists ``connection``
and, when an SMS text exists for the command (``sms.sms_text``), ``sms``.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

from sinogate.codecs import PROTOCOLS
from sinogate.commands import sms

# Examples shown in the catalog (properties only); the first one is what `commands list` prints.
_EXAMPLES: dict[str, dict[str, list[dict[str, Any]]]] = {
    "h02": {
        "custom": [{"payload": "S20,1,1"}, {"payload": "RCONF"}, {"payload": "CXZT"},
                   {"payload": "S71,22,30", "mode": "wrapped"}, {"payload": "8040000 1.2.3.4 5013", "mode": "raw"}],
        "interval.set": [{"seconds": 30}, {"seconds": 60, "alternative": True}],
        "server.set": [{"host": "1.2.3.4", "port": 5013}],
    },
    "jt808": {
        "custom": [{"payload": "RELAY,1#"}, {"payload": "STATUS#"}],
        "interval.set": [{"seconds": 30}],
        "params.set": [{"params": {"0x0029": 30, "0x0055": 120}}],
        "params.query": [{}, {"ids": ["0x0029", "0x0013"]}],
        "terminal.control": [{"command": 4}],
        "server.set": [{"host": "1.2.3.4", "port": 5015}],
    },
}


class CommandError(Exception):
    """A command the gateway refuses (unknown name, invalid properties); ``reason`` goes to the API."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def codec_commands(protocol: str) -> dict[str, dict[str, Any]]:
    """The codec's ``COMMANDS`` dict (empty while a codec does not define one)."""
    if protocol not in PROTOCOLS:
        return {}
    try:
        module = importlib.import_module(f"sinogate.codecs.{protocol}")
    except ImportError:
        return {}
    commands = getattr(module, "COMMANDS", None)
    return dict(commands) if isinstance(commands, dict) else {}


def schema_for(protocol: str, name: str) -> dict[str, Any]:
    commands = codec_commands(protocol)
    schema = commands.get(name)
    if schema is None:
        known = ", ".join(sorted(commands)) or "none"
        raise CommandError(f"unknown command {name!r} for protocol {protocol}; known: {known}")
    return schema


def catalog_for(protocol: str) -> list[dict[str, Any]]:
    """The device object's ``commands`` field: one entry per command the protocol supports."""
    out = []
    for name, schema in sorted(codec_commands(protocol).items()):
        address = ["connection"]
        if sms.supports(protocol, name):
            address.append("sms")
        description = str(schema.get("description", ""))
        note = sms.note(protocol, name)
        if note:
            description = f"{description} SMS: {note}".strip()
        examples = _EXAMPLES.get(protocol, {}).get(name) or [_default_example(schema)]
        out.append({
            "name": name,
            "description": description,
            "address": address,
            "schema": schema,
            "examples": [{"name": name, "properties": props} for props in examples],
        })
    return out


def _default_example(schema: dict[str, Any]) -> dict[str, Any]:
    props: dict[str, Any] = {}
    for key in schema.get("required", ()):
        spec = schema.get("properties", {}).get(key, {})
        props[key] = _sample(spec)
    return props


def _sample(spec: dict[str, Any]) -> Any:
    kind = spec.get("type")
    if isinstance(kind, list):
        kind = kind[0]
    if "default" in spec:
        return spec["default"]
    if "enum" in spec:
        return spec["enum"][0]
    return {"integer": spec.get("minimum", 1), "number": 1, "boolean": True, "array": [], "object": {}}.get(
        str(kind), "text"
    )


# --- a small JSON-schema validator (the subset the codecs use) ----------------------------------

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}


def _is_type(value: Any, kind: str) -> bool:
    types = _TYPES.get(kind)
    if types is None:
        return True
    if kind in ("integer", "number") and isinstance(value, bool):
        return False
    if kind == "integer" and isinstance(value, float) and value.is_integer():
        return True
    return isinstance(value, types)


def validate(schema: dict[str, Any], value: Any, path: str = "properties") -> None:
    """Raises ``CommandError`` naming the first problem found."""
    kind = schema.get("type")
    if kind is not None:
        kinds = kind if isinstance(kind, list) else [kind]
        if not any(_is_type(value, k) for k in kinds):
            raise CommandError(f"{path} must be {' or '.join(kinds)}, got {value!r}")
    if "enum" in schema and value not in schema["enum"]:
        raise CommandError(f"{path} must be one of {', '.join(map(repr, schema['enum']))}, got {value!r}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            raise CommandError(f"{path} must be >= {schema['minimum']}, got {value!r}")
        if "maximum" in schema and value > schema["maximum"]:
            raise CommandError(f"{path} must be <= {schema['maximum']}, got {value!r}")
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            raise CommandError(f"{path} must be at least {schema['minLength']} characters long")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            raise CommandError(f"{path} must be at most {schema['maxLength']} characters long")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            raise CommandError(f"{path} does not match {schema['pattern']}")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for key in schema.get("required", ()):
            if key not in value:
                raise CommandError(f"{path}: missing required property {key!r}")
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if key in props:
                validate(props[key], item, f"{path}.{key}")
            elif extra is False:
                known = ", ".join(sorted(props)) or "none"
                raise CommandError(f"{path}: unknown property {key!r} (known: {known})")
            elif isinstance(extra, dict):
                validate(extra, item, f"{path}.{key}")
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            validate(schema["items"], item, f"{path}[{i}]")


def check(protocol: str, name: str, properties: Any) -> dict[str, Any]:
    """Validates a command request; returns the properties (``{}`` for ``None``)."""
    if not isinstance(name, str) or not name:
        raise CommandError("command 'name' must be a non-empty string")
    schema = schema_for(protocol, name)
    if properties is None:
        properties = {}
    if not isinstance(properties, dict):
        raise CommandError("'properties' must be an object")
    validate({**schema, "type": "object"}, properties)
    return properties
