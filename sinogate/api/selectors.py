"""flespi-style item selectors: ``all``, ``1,2,3``, ``configuration.ident=35*``, ``name=truck?,enabled=true``
(comma-separated field matches are AND-ed) and full expressions in braces ``{name=='a*' || id==3}``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sinogate.api.filter import Filter, FilterSyntaxError, wildcard_match
from sinogate.codecs import PROTOCOL_IDS

# Field names a selector may use, and how to read them from a registry device dict.
_FIELDS: dict[str, str] = {
    "id": "id",
    "name": "name",
    "ident": "ident",
    "configuration.ident": "ident",
    "phone": "phone",
    "configuration.phone": "phone",
    "protocol": "protocol",
    "protocol_name": "protocol",
    "protocol.name": "protocol",
    "model": "model",
    "enabled": "enabled",
    "connected": "connected",
    "last_active": "last_active",
    "messages_ttl": "messages_ttl",
}
MAX_SELECTOR = 1024


class SelectorError(ValueError):
    pass


def flat_device(device: dict[str, Any]) -> dict[str, Any]:
    """The device as a flat mapping for field matches and ``{...}`` expressions."""
    out = {name: device.get(key) for name, key in _FIELDS.items()}
    out["protocol_id"] = PROTOCOL_IDS.get(str(device.get("protocol")))
    for key, value in (device.get("settings") or {}).items():
        out[f"settings.{key}"] = value
    return out


def _value_matches(actual: Any, wanted: str) -> bool:
    if isinstance(actual, bool):
        return wanted.lower() == ("true" if actual else "false")
    if actual is None:
        return wanted.lower() == "null"
    if isinstance(actual, float) and actual.is_integer():
        actual = int(actual)
    return wildcard_match(wanted, str(actual))


@dataclass(frozen=True)
class Selector:
    text: str
    ids: tuple[int, ...] | None = None  # an explicit id list
    matches_all: bool = False
    conditions: tuple[tuple[str, str], ...] = ()
    expression: Filter | None = None

    @classmethod
    def parse(cls, text: str) -> Selector:
        text = (text or "").strip()
        if not text:
            raise SelectorError("empty selector")
        if len(text) > MAX_SELECTOR:
            raise SelectorError(f"selector longer than {MAX_SELECTOR} characters")
        if text == "all":
            return cls(text, matches_all=True)
        if text.startswith("{"):
            if not text.endswith("}"):
                raise SelectorError("an expression selector must end with '}'")
            try:
                return cls(text, expression=Filter(text[1:-1]))
            except FilterSyntaxError as exc:
                raise SelectorError(f"bad selector expression: {exc}") from exc
        parts = [p.strip() for p in text.split(",")]
        if all(p.isascii() and p.isdigit() for p in parts):  # ("³".isdigit() is true, int("³") fails)
            ids = tuple(dict.fromkeys(int(p) for p in parts))
            if any(i > 2**62 for i in ids):
                raise SelectorError("id out of range")
            return cls(text, ids=ids)
        conditions = []
        for part in parts:
            name, eq, value = part.partition("=")
            name = name.strip()
            if not eq:
                raise SelectorError(
                    f"bad selector part {part!r}: expected 'all', an id list or field=value"
                )
            if name not in _FIELDS and not name.startswith("settings."):
                raise SelectorError(f"unknown selector field {name!r}; known: {', '.join(sorted(_FIELDS))}")
            conditions.append((name, value.strip()))
        return cls(text, conditions=tuple(conditions))

    def exact_ident(self) -> str | None:
        """The ident when the selector is only ``configuration.ident=<literal>``: resolvable by
        lookup instead of a scan of every device."""
        if len(self.conditions) == 1:
            name, wanted = self.conditions[0]
            if _FIELDS.get(name) == "ident" and "*" not in wanted and "?" not in wanted:
                return wanted
        return None

    def matches(self, device: dict[str, Any]) -> bool:
        if self.matches_all:
            return True
        if self.ids is not None:
            return device.get("id") in self.ids
        flat = flat_device(device)
        if self.expression is not None:
            return self.expression.matches(flat)
        return all(_value_matches(flat.get(name), wanted) for name, wanted in self.conditions)
