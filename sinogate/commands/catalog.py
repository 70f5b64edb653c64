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
        entry: dict[str, Any] = {
            "name": name,
            "description": description,
            "address": address,
            "schema": schema,
            "examples": [{"name": name, "properties": props} for props in examples],
            "destructive": name in DESTRUCTIVE,
        }
        if name in DESTRUCTIVE:
            entry["warning"] = DESTRUCTIVE[name]
        elif name in DESTRUCTIVE_WHEN:
            entry["warning"] = f"destructive when {DESTRUCTIVE_WHEN[name]}"
        out.append(entry)
    return out


# --- destructive commands ---------------------------------------------------------------------------

DESTRUCTIVE: dict[str, str] = {
    "engine.stop": "cuts fuel/power to the vehicle",
    "server.set": "points the device at another server: a wrong address loses it",
    "reboot": "restarts the device",
    "factory.reset": "erases every setting (server, APN, intervals, password)",
    "password.set": "changes the SMS password: a mistake locks you out of SMS commands",
}
"""Commands that are destructive whatever their properties: name → why (the API's 400 says it)."""

DESTRUCTIVE_WHEN: dict[str, str] = {
    "custom": "its text cuts the engine, changes the server or password, reboots or resets the unit",
    "mode.set": "mode is 'sms' (the unit stops reporting over GPRS)",
    "terminal.control": "the command word stops the engine, shuts down, resets or disconnects the terminal",
    "params.set": "it changes the server address or port (0x0013, 0x0017, 0x0018, 0x0019)",
}
"""Commands that are destructive for some properties: name → when."""

_TEXT_RULES: tuple[tuple[re.Pattern[str], str, bool], ...] = (
    (re.compile(r"^940\d{4,8}$"), "cuts fuel/power to the vehicle (940<password>)", True),
    (re.compile(r"(^|,)S20,(\d{6},)?1,1#?$"), "cuts fuel/power to the vehicle (S20,1,1)", True),
    (re.compile(r"^RELAY,1#?$"), "cuts fuel/power to the vehicle (RELAY,1)", True),
    (re.compile(r"^804\d{4,8}\s"), "points the device at another server (804<password>)", False),
    (re.compile(r"(^|,)S23,"), "points the device at another server (S23)", False),
    (re.compile(r"^700\d{4,8}$"), "switches the unit to SMS mode: no more GPRS reports (700<password>)", False),
    (re.compile(r"^777\d{8,}$"), "changes the SMS password (777<new><old>)", False),
    (re.compile(r"^(RESTART|CQ|RESET|REBOOT)$"), "restarts the device", False),
    (re.compile(r"^FORMAT$"), "erases every setting (factory reset)", False),
)
_ENGINE_WORDS = {0xF0: "cuts fuel/power to the vehicle", 0x64: "cuts fuel/power to the vehicle"}
_TERMINAL_WORDS = {2: "connects the terminal to another server", 3: "shuts the terminal down",
                   4: "resets the terminal", 5: "restores the terminal's factory settings",
                   6: "closes the terminal's data connection", 7: "closes every wireless connection of the terminal"}
_SERVER_PARAMS = {0x0013, 0x0017, 0x0018, 0x0019}


def _text_of(properties: dict[str, Any]) -> str:
    text = properties.get("payload", properties.get("text", properties.get("data")))
    return text.strip().upper() if isinstance(text, str) else ""


def _param_ids(params: Any) -> set[int]:
    out = set()
    for key in params if isinstance(params, dict) else ():
        try:
            out.add(int(key, 0) if isinstance(key, str) else int(key))
        except (TypeError, ValueError):
            continue
    return out


def destructive(protocol: str, name: str, properties: dict[str, Any] | None) -> str | None:
    """Why this command (with these properties) is destructive, or ``None`` when it is not."""
    props = properties or {}
    if name in DESTRUCTIVE:
        return DESTRUCTIVE[name]
    if name == "custom":
        text = _text_of(props)
        return next((why for rule, why, _engine in _TEXT_RULES if rule.search(text)), None)
    if name == "mode.set" and props.get("mode") == "sms":
        return "switches the unit to SMS mode: it stops reporting over GPRS"
    if name == "terminal.control":
        word = props.get("command")
        return _ENGINE_WORDS.get(word) or _TERMINAL_WORDS.get(word) if isinstance(word, int) else None
    if name == "params.set" and _param_ids(props.get("params")) & _SERVER_PARAMS:
        return "changes the server address or port"
    return None


def stops_engine(protocol: str, name: str, properties: dict[str, Any] | None) -> bool:
    """Whether the command cuts the engine (held while the vehicle moves faster than
    ``engine_stop_max_speed`` unless forced)."""
    props = properties or {}
    if name == "engine.stop":
        return True
    if name == "custom":
        text = _text_of(props)
        return any(engine and rule.search(text) for rule, _why, engine in _TEXT_RULES)
    if name == "terminal.control":
        return props.get("command") in _ENGINE_WORDS
    return False


def check_confirmed(protocol: str, name: str, properties: dict[str, Any] | None, confirm: Any) -> None:
    """Raises ``CommandError`` for a destructive command without ``"confirm": true``."""
    why = destructive(protocol, name, properties)
    if why is not None and confirm is not True:
        raise CommandError(f"command {name!r} is destructive ({why}): send it again with \"confirm\": true")


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
