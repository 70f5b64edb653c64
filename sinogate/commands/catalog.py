"""The command catalog: what a user can send to a device of each protocol.

Built from each protocol's spec: ``ProtocolSpec.commands`` (name → JSON schema of the properties)
and ``ProtocolSpec.command_examples``. Every entry is ``{name, description, address, schema,
examples}``; ``address`` lists ``connection`` and, when an SMS text exists for the command
(``sms.sms_text``), ``sms``.
"""

from __future__ import annotations

import re
from typing import Any

from sinogate import codecs
from sinogate.commands import sms


class CommandError(Exception):
    """A command the gateway refuses (unknown name, invalid properties); ``reason`` goes to the API."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def codec_commands(protocol: str) -> dict[str, dict[str, Any]]:
    """The protocol's commands, name → JSON schema (empty for an unknown protocol)."""
    found = codecs.SPECS.get(protocol)
    return dict(found.commands) if found is not None else {}


def schema_for(protocol: str, name: str) -> dict[str, Any]:
    commands = codec_commands(protocol)
    schema = commands.get(name)
    if schema is None:
        known = ", ".join(sorted(commands)) or "none"
        raise CommandError(f"unknown command {name!r} for protocol {protocol}; known: {known}")
    return schema


def catalog_for(protocol: str) -> list[dict[str, Any]]:
    """The device object's ``commands`` field: one entry per command the protocol supports."""
    found = codecs.SPECS.get(protocol)
    examples_of = found.command_examples if found is not None else {}
    out = []
    for name, schema in sorted(codec_commands(protocol).items()):
        address = ["connection"]
        if sms.supports(protocol, name):
            address.append("sms")
        description = str(schema.get("description", ""))
        note = sms.note(protocol, name)
        if note:
            description = f"{description} SMS: {note}".strip()
        examples = examples_of.get(name) or (_default_example(schema),)
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
