"""Calculators (flespi's "calcs"): what the ``calcs`` pipeline handler turns into intervals.

Six are built in and exist from the first start, with fixed ids; their options are handler
options (the server config's ``handlers`` table, overridden per device by its ``settings``):

==  ================  ==========================================================================
id  name              intervals
==  ================  ==========================================================================
1   trips             moving: ``position.speed`` ≥ ``trip_speed`` km/h (or, with the setting
                      ``trip_use_ignition``, while ``engine.ignition.status`` is on); ends after
                      ``stop_min_duration`` s stopped or a gap > ``trip_max_gap`` s; shorter
                      than ``trip_min_distance`` km is no trip
2   stops             between trips, at least ``stop_min_duration`` s
3   geofence-visits   one per fence the accepted fix is inside (``geofence.id``, ``geofence.name``)
4   overspeed         ``position.speed`` above the speed limit (device ``speed_limit`` or the
                      geofence's) for at least ``overspeed_min_duration`` s
5   ignition          ``engine.ignition.status`` on (engine hours); a gap > ``trip_max_gap`` ends it
6   offline           device-time gaps between messages longer than ``offline_after`` s
==  ================  ==========================================================================

A user calc is ``{"name", "selector": <filter expression>, "min_duration", "max_gap",
"counters": [{"name", "type", "parameter"?}], "devices"?: <device selector>}``: an interval is
open while the expression holds on the device's live messages. Definitions live in the store's
key-value role (namespace ``calcs``), so every store keeps them.
"""

from __future__ import annotations

import asyncio
import math
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sinogate.analytics.intervals import COUNTER_TYPES, INTERVAL_KEYS, PARAMETER_COUNTERS, Counter, Rule
from sinogate.api.filter import Filter, FilterSyntaxError, wildcard_match
from sinogate.api.selectors import Selector, SelectorError
from sinogate.jsonenc import dumps_bytes
from sinogate.store.base import KeyValueStore, NotFound, StoreError

NAMESPACE = "calcs"
SEQUENCE = ("calcs.sequence", "next")  # kv namespace, key: the next user calc id
FIRST_USER_ID = 100
MAX_USER_CALCS = 1000

TRIPS, STOPS, GEOFENCE_VISITS, OVERSPEED, IGNITION, OFFLINE = 1, 2, 3, 4, 5, 6

# Handler options of the built-in calcs (server defaults; a device's settings override them).
OPTIONS: Mapping[str, Any] = {
    "trip_speed": 5.0,
    "trip_use_ignition": False,
    "stop_min_duration": 300.0,
    "trip_max_gap": 3600.0,
    "trip_min_distance": 0.5,
    "overspeed_min_duration": 15.0,
    "offline_after": 600.0,
}


class CalcError(StoreError):
    """A calc definition the registry refuses (the reason says why)."""


@dataclass(frozen=True, slots=True)
class Calc:
    id: int
    name: str
    kind: str  # trips, stops, geofences, overspeed, ignition, offline, expression
    selector: str | None = None
    min_duration: float = 0.0
    max_gap: float = 0.0
    counters: tuple[Counter, ...] = ()
    devices: str | None = None
    options: tuple[str, ...] = ()  # built-ins: the handler options that configure them
    filter: Filter | None = field(default=None, compare=False, repr=False)
    device_selector: Selector | None = field(default=None, compare=False, repr=False)
    rule: Rule = field(default=Rule(), compare=False, repr=False)  # user calcs: how their intervals go
    # Changes whenever the definition does (open intervals of an older definition restart).
    version: int = field(default=0, compare=False, repr=False)

    @property
    def builtin(self) -> bool:
        return self.kind != "expression"

    def applies(self, device: Mapping[str, Any]) -> bool:
        return self.device_selector is None or self.device_selector.matches(dict(device))

    def as_json(self, option_values: Mapping[str, Any] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "name": self.name, "builtin": self.builtin}
        if self.builtin:
            values = option_values or OPTIONS
            out["options"] = {name: values.get(name, OPTIONS[name]) for name in self.options}
        else:
            out.update(selector=self.selector, min_duration=self.min_duration, max_gap=self.max_gap,
                       devices=self.devices)
        out["counters"] = [c.as_json() for c in self.counters]
        return out

    def stored(self) -> dict[str, Any]:
        """The definition as kept in the key-value store."""
        return {"name": self.name, "selector": self.selector, "min_duration": self.min_duration,
                "max_gap": self.max_gap, "counters": [c.as_json() for c in self.counters], "devices": self.devices}


BUILTINS: tuple[Calc, ...] = (
    Calc(TRIPS, "trips", "trips",
         options=("trip_speed", "trip_use_ignition", "stop_min_duration", "trip_max_gap", "trip_min_distance")),
    Calc(STOPS, "stops", "stops", options=("trip_speed", "trip_use_ignition", "stop_min_duration", "trip_max_gap",
                                           "trip_min_distance")),
    Calc(GEOFENCE_VISITS, "geofence-visits", "geofences"),
    Calc(OVERSPEED, "overspeed", "overspeed", options=("overspeed_min_duration", "trip_max_gap"),
         counters=(Counter("speed.limit", "last", "speed.limit"),)),
    Calc(IGNITION, "ignition", "ignition", options=("trip_max_gap",)),
    Calc(OFFLINE, "offline", "offline", options=("offline_after",)),
)
BUILTIN_IDS = frozenset(c.id for c in BUILTINS)
# Calcs computed by one machine: recalculating one rebuilds the others.
COUPLED: Mapping[int, frozenset[int]] = {TRIPS: frozenset({TRIPS, STOPS}), STOPS: frozenset({TRIPS, STOPS})}

CALC_KEYS = ("name", "selector", "min_duration", "max_gap", "counters", "devices")
RESERVED = frozenset(INTERVAL_KEYS) | {"geofence.id", "geofence.name", "speed.limit"}


def _seconds(body: Mapping[str, Any], key: str) -> float:
    value = body.get(key, 0)
    if value is None:
        value = 0
    if value.__class__ is bool or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise CalcError(f"{key} must be a number of seconds ≥ 0")
    if value > 366 * 86400:
        raise CalcError(f"{key} must be at most a year")
    return float(value)


def _counters(value: Any) -> tuple[Counter, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise CalcError("counters must be a list of {name, type, parameter}")
    if len(value) > 50:
        raise CalcError("at most 50 counters")
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise CalcError(f"counters[{i}] must be an object")
        unknown = set(item) - {"name", "type", "parameter"}
        if unknown:
            raise CalcError(f"counters[{i}]: unknown key(s) {', '.join(sorted(unknown))}")
        name, kind, parameter = item.get("name"), item.get("type"), item.get("parameter")
        if not isinstance(name, str) or not name.strip() or len(name) > 100:
            raise CalcError(f"counters[{i}].name must be a non-empty string (at most 100 characters)")
        if name in RESERVED:
            raise CalcError(f"counters[{i}].name {name!r} is an interval field")
        if kind not in COUNTER_TYPES:
            raise CalcError(f"counters[{i}].type must be one of {', '.join(COUNTER_TYPES)}")
        if kind in PARAMETER_COUNTERS:
            if not isinstance(parameter, str) or not parameter.strip():
                raise CalcError(f"counters[{i}]: type {kind} needs a parameter (a message parameter name)")
        elif parameter is not None:
            raise CalcError(f"counters[{i}]: type {kind} takes no parameter")
        out.append(Counter(name, kind, parameter))
    names = [c.name for c in out]
    if len(set(names)) != len(names):
        raise CalcError("two counters have the same name")
    return tuple(out)


def parse_calc(calc_id: int, body: Mapping[str, Any]) -> Calc:
    """A user calc from its JSON definition; ``CalcError`` with the reason when it is wrong."""
    if not isinstance(body, Mapping):
        raise CalcError("a calc is a JSON object")
    unknown = [k for k in body if k not in CALC_KEYS]
    if unknown:
        raise CalcError(f"unknown calc field(s) {', '.join(map(repr, unknown))}; known: {', '.join(CALC_KEYS)}")
    name = body.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        raise CalcError("name must be a non-empty string (at most 255 characters)")
    selector = body.get("selector")
    if not isinstance(selector, str) or not selector.strip():
        raise CalcError("selector must be a filter expression, e.g. \"position.speed > 90\"")
    try:
        compiled = Filter(selector)
    except FilterSyntaxError as exc:
        raise CalcError(f"bad selector: {exc}") from exc
    devices = body.get("devices")
    device_selector = None
    if devices is not None:
        if not isinstance(devices, str):
            raise CalcError("devices must be a device selector string, e.g. \"all\" or \"1,2\"")
        try:
            device_selector = Selector.parse(devices)
        except SelectorError as exc:
            raise CalcError(f"bad devices selector: {exc}") from exc
        if device_selector.matches_all:
            devices, device_selector = None, None
    min_duration, max_gap = _seconds(body, "min_duration"), _seconds(body, "max_gap")
    counters = _counters(body.get("counters"))
    version = zlib.crc32(dumps_bytes([selector, min_duration, max_gap, [c.as_json() for c in counters]]))
    return Calc(calc_id, name.strip(), "expression", selector, min_duration, max_gap, counters, devices, (), compiled,
                device_selector, Rule(min_duration=min_duration, max_gap=max_gap, counters=counters), version)


class CalcRegistry:
    """The calcs: the built-ins plus the user's, loaded from the key-value store at start and
    changed through it (the API). ``for_device`` is what the pipeline handler asks per message."""

    def __init__(self, store: KeyValueStore, options: Mapping[str, Any] | None = None) -> None:
        self._store = store
        self._user: dict[int, Calc] = {}
        self._lock = asyncio.Lock()
        self._cache: dict[int, tuple[Mapping[str, Any], tuple[Calc, ...]]] = {}
        self.options = {key: (options or {}).get(key, default) for key, default in OPTIONS.items()}
        self.version = 0

    async def load(self) -> None:
        loaded = {}
        for key, body in (await self._store.kv_list(NAMESPACE)).items():
            try:
                loaded[int(key)] = parse_calc(int(key), body)
            except (ValueError, CalcError):
                continue  # a definition this release cannot read is left alone, unused
        self._user = loaded
        self._changed()

    def _changed(self) -> None:
        self.version += 1
        self._cache.clear()

    def all(self) -> list[Calc]:
        return [*BUILTINS, *(self._user[i] for i in sorted(self._user))]

    def user(self) -> list[Calc]:
        return [self._user[i] for i in sorted(self._user)]

    def get(self, calc_id: int) -> Calc:
        for calc in BUILTINS:
            if calc.id == calc_id:
                return calc
        found = self._user.get(calc_id)
        if found is None:
            raise NotFound(f"calc {calc_id} not found")
        return found

    def for_device(self, device: Mapping[str, Any]) -> tuple[Calc, ...]:
        """The user calcs that apply to ``device`` (cached until the device or a calc changes)."""
        cached = self._cache.get(device["id"])
        if cached is not None and cached[0] is device:
            return cached[1]
        calcs = tuple(c for c in self.user() if c.applies(device))
        self._cache[device["id"]] = (device, calcs)
        return calcs

    def select(self, text: str) -> list[Calc]:
        """Calcs by selector: ``all``, ids (``1,100``), names (``trips,stops``, wildcards), or
        ``name=<pattern>``. Explicit ids must exist (``NotFound``)."""
        text = (text or "").strip()
        if not text:
            raise CalcError("empty calc selector")
        calcs = self.all()
        if text == "all":
            return calcs
        parts = [p.strip() for p in text.split(",") if p.strip()]
        if parts and all(p.isascii() and p.isdigit() for p in parts):
            return [self.get(int(p)) for p in dict.fromkeys(parts)]
        out: list[Calc] = []
        for part in parts:
            name, eq, pattern = part.partition("=")
            if eq and name.strip() not in ("name", "id"):
                raise CalcError(f"bad calc selector part {part!r}: expected all, ids, names or name=<pattern>")
            if eq and name.strip() == "id":
                matched = [c for c in calcs if str(c.id) == pattern.strip()]
            else:
                wanted = pattern.strip() if eq else part
                matched = [c for c in calcs if wildcard_match(wanted, c.name)]
            out += [c for c in matched if c not in out]
        return sorted(out, key=lambda c: c.id)

    async def create(self, body: Mapping[str, Any]) -> Calc:
        async with self._lock:
            if len(self._user) >= MAX_USER_CALCS:
                raise CalcError(f"at most {MAX_USER_CALCS} calcs")
            stored = await self._store.kv_get(*SEQUENCE)
            calc_id = max(int(stored or FIRST_USER_ID), max(self._user, default=FIRST_USER_ID - 1) + 1)
            calc = parse_calc(calc_id, body)
            await self._store.kv_set(*SEQUENCE, calc_id + 1)
            await self._store.kv_set(NAMESPACE, str(calc_id), calc.stored())
            self._user[calc_id] = calc
            self._changed()
            return calc

    async def update(self, calc_id: int, fields: Mapping[str, Any]) -> Calc:
        async with self._lock:
            current = self.get(calc_id)
            if current.builtin:
                raise CalcError(f"calc {calc_id} ({current.name}) is built in: configure it with handler options "
                                f"({', '.join(current.options) or 'none'})")
            if not isinstance(fields, Mapping):
                raise CalcError("the body must be a JSON object of calc fields")
            calc = parse_calc(calc_id, {**current.stored(), **fields})
            await self._store.kv_set(NAMESPACE, str(calc_id), calc.stored())
            self._user[calc_id] = calc
            self._changed()
            return calc

    async def delete(self, calc_id: int) -> Calc:
        async with self._lock:
            calc = self.get(calc_id)
            if calc.builtin:
                raise CalcError(f"calc {calc_id} ({calc.name}) is built in and cannot be deleted")
            await self._store.kv_delete(NAMESPACE, str(calc_id))
            del self._user[calc_id]
            self._changed()
            return calc
