"""Message plugins (flespi's word; Traccar's computed attributes): small per-device transformations
of every message before it is stored, configured through ``/gw/plugins``.

A plugin is ``{"id", "type", "name"?, "devices": <device selector, default "all">, "order": <number,
default 0>, "validate"?: <expression>, ...type fields}``; plugins run by ascending ``order`` (then
id), each only on messages where its ``validate`` expression is true. Types:

- ``expression``: ``{"name": <parameter>, "expression": <filter-language expression>, "unit"?}`` sets
  the parameter to the expression's value (``previous('param')`` is the device's value of a
  parameter before this message); a null result (an error, a missing parameter) leaves it unset and
  counts as an error of the plugin, never drops the message.
- ``erase``: ``{"params": ["gsm.*", ...]}`` removes matching parameters (wildcards ``*`` ``?``);
  the fields sinogate needs (``PROTECTED``) are never erased.
- ``carry-forward``: ``{"params": ["battery.level", ...]}`` fills listed parameters a message lacks
  with the device's last value of each.
- ``lbs``: a message without a valid fix but with ``gsm.mcc/mnc/lac/cellid`` gets its position from
  the imported cell database (``sinogate cells import``), with ``position.accuracy`` (m) and
  ``position.source`` ``"lbs"``; ``position.valid`` stays false, so analytics keep ignoring it.
- ``address``: ``position.address`` and ``address.city``/``address.state``/``address.country``/
  ``address.country_code`` from an offline dataset (city level), or from a Nominatim-compatible
  ``url`` (street level; cached, rate-limited, looked up in the background — see ``address.py``).

Validation raises ``PluginError`` with a reason (the API answers 400 with it).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from sinogate.api.filter import PREVIOUS_PREFIX, Filter, FilterSyntaxError, wildcard_match
from sinogate.api.selectors import Selector, SelectorError

Message = dict[str, Any]

TYPES = ("expression", "erase", "carry-forward", "lbs", "address")
PROTECTED = frozenset({"ident", "timestamp", "server.timestamp", "device.id", "device.name", "protocol.name",
                       "protocol.id", "channel.id", "peer", "transport"})
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*(\.[A-Za-z0-9_\-]+)*$")
MAX_PARAMS = 100
MAX_PLUGINS = 500


class PluginError(ValueError):
    """A plugin definition that cannot work; the message says which field and why."""


class CellLookup(Protocol):
    def locate(self, mcc: int, mnc: int, lac: int, cell: int) -> tuple[float, float, float] | None: ...


class AddressLookup(Protocol):
    def address(self, lat: float, lon: float, url: str | None) -> dict[str, Any] | None: ...


class _Scope(Mapping[str, Any]):
    """The message, plus ``previous:<param>`` keys for ``previous('param')``."""

    __slots__ = ("_message", "_previous")

    def __init__(self, message: Message, previous: Mapping[str, Any]) -> None:
        self._message = message
        self._previous = previous

    def __getitem__(self, key: str) -> Any:
        if key.startswith(PREVIOUS_PREFIX):
            return self._previous.get(key[len(PREVIOUS_PREFIX):])
        return self._message[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._message)

    def __len__(self) -> int:
        return len(self._message)


@dataclass(eq=False)
class Plugin:
    """One compiled plugin; ``applied`` / ``errors`` count its work since the start."""

    id: int
    type: str
    definition: dict[str, Any]
    selector: Selector
    validate: Filter | None
    expression: Filter | None = None
    patterns: tuple[str, ...] = ()
    applied: int = 0
    errors: int = 0
    last_error: str | None = field(default=None)

    @property
    def order(self) -> float:
        return float(self.definition.get("order", 0))

    def status(self) -> dict[str, Any]:
        return {"applied": self.applied, "errors": self.errors, "last_error": self.last_error}


def _string_list(value: Any, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise PluginError(f"{what} must be a non-empty list of parameter names")
    if len(value) > MAX_PARAMS:
        raise PluginError(f"{what} lists more than {MAX_PARAMS} names")
    return tuple(value)


def compile_plugin(plugin_id: int, definition: Mapping[str, Any]) -> Plugin:
    """Checks a definition and compiles its expressions; raises ``PluginError``."""
    if not isinstance(definition, Mapping):
        raise PluginError("a plugin must be an object")
    kind = definition.get("type")
    if kind not in TYPES:
        raise PluginError(f"type must be one of {', '.join(TYPES)}")
    devices = definition.get("devices", "all")
    try:
        selector = Selector.parse(str(devices)) if isinstance(devices, str) else None
    except SelectorError as exc:
        raise PluginError(f"bad devices selector: {exc}") from exc
    if selector is None:
        raise PluginError("devices must be a device selector string such as 'all' or '1,2'")
    order = definition.get("order", 0)
    if isinstance(order, bool) or not isinstance(order, int | float):
        raise PluginError("order must be a number")
    validate = None
    if definition.get("validate") is not None:
        try:
            validate = Filter(definition["validate"])
        except FilterSyntaxError as exc:
            raise PluginError(f"bad validate expression: {exc}") from exc
    plugin = Plugin(plugin_id, str(kind), dict(definition), selector, validate)
    if kind == "expression":
        name = definition.get("name")
        if not isinstance(name, str) or not _NAME.match(name) or name in PROTECTED:
            raise PluginError("name must be a parameter name like speed.mph (and not one sinogate sets itself)")
        try:
            plugin.expression = Filter(definition.get("expression"))  # type: ignore[arg-type]
        except FilterSyntaxError as exc:
            raise PluginError(f"bad expression: {exc}") from exc
        unit = definition.get("unit", "")
        if not isinstance(unit, str):
            raise PluginError("unit must be a string")
    elif kind in ("erase", "carry-forward"):
        plugin.patterns = _string_list(definition.get("params"), "params")
    elif kind == "lbs":
        accuracy = definition.get("accuracy")
        if accuracy is not None and (isinstance(accuracy, bool) or not isinstance(accuracy, int | float)):
            raise PluginError("accuracy must be a number of metres")
    elif kind == "address":
        url = definition.get("url")
        if url is not None and (not isinstance(url, str) or not url.startswith(("http://", "https://"))):
            raise PluginError("url must be an http(s) URL of a Nominatim-compatible service")
    return plugin


class PluginRunner:
    """Applies the plugins to one message; per-device memory lives in the handler's state."""

    def __init__(self, cells: CellLookup | None, addresses: AddressLookup | None) -> None:
        self._cells = cells
        self._addresses = addresses

    def apply(self, plugin: Plugin, message: Message, state: dict[str, Any]) -> None:
        kind = plugin.type
        if kind == "expression":
            assert plugin.expression is not None
            value = plugin.expression.value(_Scope(message, state.get("previous", {})))
            if value is None:
                raise PluginError("the expression gave no value (a missing parameter or an error)")
            message[plugin.definition["name"]] = value
        elif kind == "erase":
            for key in [k for k in message if k not in PROTECTED]:
                if any(wildcard_match(p, key) for p in plugin.patterns):
                    del message[key]
        elif kind == "carry-forward":
            carried: dict[str, Any] = state.setdefault("carry", {})
            for name in plugin.patterns:
                if name in message:
                    carried[name] = message[name]
                elif name in carried:
                    message[name] = carried[name]
        elif kind == "lbs":
            self._lbs(plugin, message)
        elif kind == "address":
            self._address(plugin, message)

    def _lbs(self, plugin: Plugin, message: Message) -> None:
        if message.get("position.valid") is True and "position.latitude" in message:
            return
        keys = ("gsm.mcc", "gsm.mnc", "gsm.lac", "gsm.cellid")
        if self._cells is None or not all(isinstance(message.get(k), int) for k in keys):
            return
        found = self._cells.locate(*(int(message[k]) for k in keys))
        if found is None:
            raise PluginError("cell not in the database")
        lat, lon, accuracy = found
        message["position.latitude"] = lat
        message["position.longitude"] = lon
        message["position.accuracy"] = float(plugin.definition.get("accuracy") or accuracy)
        message["position.source"] = "lbs"
        message.setdefault("position.valid", False)

    def _address(self, plugin: Plugin, message: Message) -> None:
        lat, lon = message.get("position.latitude"), message.get("position.longitude")
        if self._addresses is None or not isinstance(lat, int | float) or not isinstance(lon, int | float):
            return
        found = self._addresses.address(float(lat), float(lon), plugin.definition.get("url"))
        if found is None:
            raise PluginError("no address for this position")
        message.update(found)


def remember_previous(plugins: list[Plugin], message: Message, state: dict[str, Any]) -> None:
    """Keeps, after the message, the values ``previous('...')`` will see on the next one."""
    names = {name for p in plugins if p.expression is not None for name in p.expression.previous}
    if names:
        previous: dict[str, Any] = state.setdefault("previous", {})
        for name in names:
            if name in message:
                previous[name] = message[name]


class KeyValue(Protocol):
    async def kv_get(self, namespace: str, key: str) -> Any | None: ...

    async def kv_set(self, namespace: str, key: str, value: Any) -> None: ...

    async def kv_delete(self, namespace: str, key: str) -> None: ...

    async def kv_list(self, namespace: str) -> dict[str, Any]: ...


NAMESPACE = "plugins"
_COUNTER = "next_id"


class PluginSet:
    """The configured plugins, compiled, kept in the store's key-value role (namespace
    ``plugins``, key = id). A change applies to the next message: the pipeline asks ``for_device``
    on every message, which is a cached list per device."""

    def __init__(self, store: KeyValue) -> None:
        self._store = store
        self._plugins: dict[int, Plugin] = {}
        self._by_device: dict[int, list[Plugin]] = {}

    async def load(self) -> None:
        plugins: dict[int, Plugin] = {}
        for key, definition in (await self._store.kv_list(NAMESPACE)).items():
            if key == _COUNTER:
                continue
            try:
                plugins[int(key)] = compile_plugin(int(key), definition)
            except (PluginError, ValueError) as exc:  # kept in the store, reported, not run
                plugins[int(key)] = Plugin(int(key), str(definition.get("type")), dict(definition),
                                           Selector("", ids=()), None, errors=1, last_error=str(exc))
        self._plugins = plugins
        self._by_device.clear()

    def all(self) -> list[Plugin]:
        return sorted(self._plugins.values(), key=lambda p: (p.order, p.id))

    def get(self, plugin_id: int) -> Plugin | None:
        return self._plugins.get(plugin_id)

    def for_device(self, device: Mapping[str, Any]) -> list[Plugin]:
        found = self._by_device.get(device["id"])
        if found is None:
            found = self._by_device[device["id"]] = [p for p in self.all() if p.selector.matches(dict(device))]
        return found

    def device_changed(self, _device_id: int | None = None) -> None:
        """A device was renamed or re-identified: selectors may now match differently."""
        self._by_device.clear()

    async def create(self, definition: Mapping[str, Any]) -> Plugin:
        if len(self._plugins) >= MAX_PLUGINS:
            raise PluginError(f"at most {MAX_PLUGINS} plugins")
        compile_plugin(0, definition)  # check before an id is taken
        plugin_id = int(await self._store.kv_get(NAMESPACE, _COUNTER) or 0) + 1
        await self._store.kv_set(NAMESPACE, _COUNTER, plugin_id)
        plugin = compile_plugin(plugin_id, definition)
        await self._store.kv_set(NAMESPACE, str(plugin_id), plugin.definition)
        self._plugins[plugin_id] = plugin
        self._by_device.clear()
        return plugin

    async def update(self, plugin_id: int, changes: Mapping[str, Any]) -> Plugin:
        old = self._plugins[plugin_id]
        definition = {**old.definition, **changes}
        plugin = compile_plugin(plugin_id, definition)
        await self._store.kv_set(NAMESPACE, str(plugin_id), plugin.definition)
        self._plugins[plugin_id] = plugin
        self._by_device.clear()
        return plugin

    async def delete(self, plugin_id: int) -> None:
        await self._store.kv_delete(NAMESPACE, str(plugin_id))
        self._plugins.pop(plugin_id, None)
        self._by_device.clear()

    def params(self) -> list[dict[str, str]]:
        """The parameters expression plugins add, as the parameter registry lists them."""
        out = []
        for p in self.all():
            if p.type == "expression":
                out.append({"name": p.definition["name"], "type": "any", "unit": str(p.definition.get("unit", "")),
                            "meaning": f"Computed by plugin {p.id}: {p.definition.get('expression')}"})
        return out
