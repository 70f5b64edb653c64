"""Calculators: intervals (trips, stops, geofence visits, overspeed, ignition, offline, the user's
calcs) computed live from each device's messages, the machines of ``sinogate.analytics.intervals``.

Runs after ``geofencing`` and ``overspeed`` and reads their facts (``ctx.scratch["geofences"]``,
``ctx.scratch["speed_limit"]``). Only live messages count (a late batch is left to the
recalculation of its span); position-based calcs (trips, stops, visits, overspeed) take only the
fixes the filters accepted. Open intervals live in the device's state under the calc's id; a
closed interval goes to ``ctx.intervals`` and is stored in the batch's transaction, a newly
confirmed one goes there as ``"active": true`` (published, not stored). A confirmed trip fires
``trip.start``, its end ``trip.end`` (with its distance and duration).

The same handler, on a fresh state, rebuilds intervals from stored messages
(``sinogate.analytics.recalc``): the same messages in the same order give the same intervals.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from sinogate.analytics.calcs import (
    BUILTINS,
    GEOFENCE_VISITS,
    IGNITION,
    OFFLINE,
    OPTIONS,
    OVERSPEED,
    STOPS,
    TRIPS,
    Calc,
    CalcRegistry,
)
from sinogate.analytics.intervals import Change, Keyed, Machine, Motion, Rule, Stats, interval, offline_step
from sinogate.pipeline.base import Context, Handler, Message

_BUILTIN_KEYS = frozenset(str(c.id) for c in BUILTINS)
# Where each built-in keeps its state in the handler's (trips and stops share one machine).
_K_MOTION, _K_VISITS, _K_OVERSPEED, _K_IGNITION, _K_OFFLINE = (str(TRIPS), str(GEOFENCE_VISITS), str(OVERSPEED),
                                                              str(IGNITION), str(OFFLINE))
_OVERSPEED = next(c for c in BUILTINS if c.id == OVERSPEED)


def _sub(state: dict[str, Any], key: str) -> dict[str, Any]:
    """``state.setdefault(key, {})`` without building a dict when there is one (every message)."""
    sub: dict[str, Any] | None = state.get(key)
    if sub is None:
        sub = state[key] = {}
    return sub


_NUMBER = (int, float)


def _number(value: Any) -> float | None:
    if value.__class__ is float:  # the usual case
        return value if math.isfinite(value) else None
    if value.__class__ is bool or not isinstance(value, _NUMBER) or not math.isfinite(value):
        return None
    return float(value)


def record(calc_id: int, device_id: int, stats: Stats, active: bool, calc: Calc | None = None,
           **extra: Any) -> dict[str, Any]:
    """An interval as the API and the store show it (``id`` comes from the store)."""
    counters = calc.counters if calc is not None else ()
    return {"calc.id": calc_id, "device.id": device_id, **interval(stats, counters), "active": active, **extra}


class Calcs(Handler):
    name = "calcs"
    options: ClassVar[Mapping[str, Any]] = {**OPTIONS, "speed_limit": None}
    needs = ("calcs",)

    def __init__(self, config: Mapping[str, Any], calcs: CalcRegistry) -> None:
        super().__init__(config)
        self.calcs = calcs
        self._motions: dict[tuple[float, float, float], Motion] = {}
        self._machines: dict[Rule, Machine] = {}
        self._setups: dict[Any, Setup] = {}
        self._visits = Keyed(Rule())

    # options -------------------------------------------------------------------------------------
    def option(self, device: Mapping[str, Any] | None, key: str) -> Any:
        """The device's value of option ``key`` (its ``settings`` override the server default);
        a number that is not one falls back to the default."""
        default = self.defaults[key]
        settings = (device or {}).get("settings") or {}
        value = settings.get(key)
        if value is None:
            return default
        if isinstance(default, bool):
            return value if isinstance(value, bool) else default
        number = _number(value)
        return number if number is not None and number >= 0 else default

    def setup(self, device: Mapping[str, Any] | None) -> Setup:
        """The device's machines and options (built once per version of the device's dict)."""
        key = device["id"] if device is not None else None
        cached = self._setups.get(key)
        if cached is not None and cached.device is device:
            return cached
        if len(self._setups) > 100_000:
            self._setups.clear()
        setup = self._setups[key] = Setup(self, device)
        return setup

    def motion(self, device: Mapping[str, Any] | None) -> Motion:
        return self.setup(device).motion

    def machine(self, rule: Rule) -> Machine:
        machine = self._machines.get(rule)
        if machine is None:
            if len(self._machines) > 4096:
                self._machines.clear()
            machine = self._machines[rule] = Machine(rule)
        return machine

    # the handler -----------------------------------------------------------------------------------
    def handle(self, message: Message, ctx: Context) -> Message:
        scratch = ctx.scratch
        if scratch.get("late") or scratch.get("flagged"):  # not live
            return message
        state = ctx.state(self.name)
        device = ctx.device
        if state is None or device is None or _number(message.get("timestamp")) is None:
            return message
        device_id = int(device["id"])
        fix = bool(scratch.get("fix"))  # accepted (it is live)
        out = ctx.intervals
        setup = self.setup(device)

        gap = offline_step(_sub(state, _K_OFFLINE), message, fix, setup.offline_after)
        if gap is not None:
            out.append(record(OFFLINE, device_id, gap, False))

        ignition = message.get("engine.ignition.status")
        motion_state: dict[str, Any] = _sub(state, _K_MOTION)
        if ignition.__class__ is bool:
            motion_state["ign"] = ignition
            changes = setup.ignition.step(_sub(state, _K_IGNITION), message, fix, ignition)
            if changes:
                self._emit(ctx, device_id, IGNITION, None, changes)

        if fix:
            self._position(message, ctx, state, motion_state, device_id, setup)

        users = self.calcs.for_device(device)
        for calc in users:
            key = str(calc.id)
            st = state.get(key)
            version = calc.version
            if st is None or st.get("v") != version:
                st = state[key] = {"v": version}
            assert calc.filter is not None
            truth = calc.filter.matches(message)
            self._emit(ctx, device_id, calc.id, calc, self.machine(calc.rule).step(st, message, fix, truth))

        if users or not _BUILTIN_KEYS.issuperset(state):
            others = [k for k in state if k not in _BUILTIN_KEYS]
            if len(others) != len(users):  # a deleted calc, or one that no longer applies to the device
                keep = {str(c.id) for c in users}
                for key in others:
                    if key not in keep:
                        del state[key]
        return message

    def _position(self, message: Message, ctx: Context, state: dict[str, Any], motion_state: dict[str, Any],
                  device_id: int, setup: Setup) -> None:
        speed = _number(message.get("position.speed"))
        moving = speed is not None and speed >= setup.trip_speed
        if setup.use_ignition and isinstance(motion_state.get("ign"), bool):
            moving = bool(motion_state["ign"])
        for kind, change in setup.motion.step(motion_state, message, moving):
            calc_id = TRIPS if kind == "trip" else STOPS
            if change.kind == "drop":
                continue
            closed = change.kind == "close"
            item = record(calc_id, device_id, change.stats, not closed)
            ctx.intervals.append(item)
            if calc_id == TRIPS:
                fields = {"calc.id": TRIPS, "begin": item["begin"], "distance": item["distance"]}
                if closed:
                    fields.update({"end": item["end"], "duration": item["duration"], "max.speed": item["max.speed"],
                                   "avg.speed": item["avg.speed"]})
                ctx.emit("trip.end" if closed else "trip.start", message, **fields)

        limit = _number(ctx.scratch["speed_limit"]) if "speed_limit" in ctx.scratch else setup.speed_limit
        over = speed is not None and limit is not None and limit > 0 and speed > limit
        # The limit in force becomes the interval's speed.limit counter (its last value).
        seen = {**message, "speed.limit": limit} if over else message
        changes = setup.overspeed.step(_sub(state, _K_OVERSPEED), seen, True, over)
        if changes:
            self._emit(ctx, device_id, OVERSPEED, _OVERSPEED, changes)

        fences = ctx.scratch.get("geofences")
        visits = state.get(_K_VISITS)
        if fences is not None and (fences or (visits and visits.get("k"))):
            keys = {str(k): v for k, v in fences.items()}
            visits = state.setdefault(_K_VISITS, {})
            for key, fence_name, change in self._visits.step(visits, message, True, keys):
                if change.kind != "drop":
                    ctx.intervals.append(record(GEOFENCE_VISITS, device_id, change.stats, change.kind == "confirm",
                                                **_fence(key, fence_name)))

    @staticmethod
    def _emit(ctx: Context, device_id: int, calc_id: int, calc: Calc | None, changes: Iterable[Change]) -> None:
        for change in changes:
            if change.kind != "drop":
                ctx.intervals.append(record(calc_id, device_id, change.stats, change.kind == "confirm", calc))

    @staticmethod
    def open_since(states: Mapping[str, Any] | None, calc_ids: Iterable[int]) -> float | None:
        """The earliest begin of an interval of these calcs open in the device's state, confirmed
        or not (where a recalculation must start so the state it rebuilds matches)."""
        state = (states or {}).get(Calcs.name) or {}
        begins: list[float] = []
        for calc_id in set(calc_ids):
            if calc_id == OFFLINE:
                continue
            st = state.get(str(TRIPS if calc_id == STOPS else calc_id)) or {}
            if calc_id in (TRIPS, STOPS):
                subs = [st.get("trip") or {}]
                stop = st.get("stop")
                if stop is not None and stop["n"]:
                    begins.append(float(stop["b"]))
            elif calc_id == GEOFENCE_VISITS:
                subs = list((st.get("k") or {}).values())
            else:
                subs = [st]
            begins += [float(sub["open"]["b"]) for sub in subs if sub.get("open") is not None]
        return min(begins, default=None)

    # active intervals ------------------------------------------------------------------------------
    def active(self, states: Mapping[str, Any] | None, device: Mapping[str, Any], now: float) -> list[dict[str, Any]]:
        """The intervals open now (``"active": true``), from the device's handler states."""
        state = (states or {}).get(self.name) or {}
        device_id = int(device["id"])
        out: list[dict[str, Any]] = []
        motion_state = state.get(str(TRIPS)) or {}
        trip, stop = self.motion(device).active(motion_state)
        if trip is not None:
            out.append(record(TRIPS, device_id, trip, True))
        if stop is not None:
            out.append(record(STOPS, device_id, stop, True))
        for key, fence_name, stats in self._visits.active(state.get(_K_VISITS) or {}):
            out.append(record(GEOFENCE_VISITS, device_id, stats, True, **_fence(key, fence_name)))
        overspeed = Machine.active(state.get(str(OVERSPEED)) or {})
        if overspeed is not None:
            out.append(record(OVERSPEED, device_id, overspeed, True, _OVERSPEED))
        ignition = Machine.active(state.get(str(IGNITION)) or {})
        if ignition is not None:
            out.append(record(IGNITION, device_id, ignition, True))
        offline = state.get(str(OFFLINE)) or {}
        last = offline.get("last")
        if last is not None and now - last > self.setup(device).offline_after:
            out.append({"calc.id": OFFLINE, "device.id": device_id, "begin": last, "end": now,
                        "duration": round(now - last, 3), "active": True, "distance": 0.0, "max.speed": None,
                        "avg.speed": None, "begin.position.latitude": (offline.get("lp") or [None])[0],
                        "begin.position.longitude": (offline.get("lp") or [None, None])[1],
                        "end.position.latitude": None, "end.position.longitude": None})
        for calc in self.calcs.for_device(device):
            st = state.get(str(calc.id)) or {}
            current = Machine.active(st) if st.get("v") == calc.version else None
            if current is not None:
                out.append(record(calc.id, device_id, current, True, calc))
        return out


class Setup:
    """What the calcs handler needs for one device: its options and the machines they make."""

    __slots__ = ("device", "ignition", "motion", "offline_after", "overspeed", "speed_limit", "trip_speed",
                 "use_ignition")

    def __init__(self, handler: Calcs, device: Mapping[str, Any] | None) -> None:
        option = handler.option
        self.device = device
        gap = float(option(device, "trip_max_gap"))
        key = (float(option(device, "stop_min_duration")), gap, float(option(device, "trip_min_distance")))
        motion = handler._motions.get(key)
        if motion is None:
            motion = handler._motions[key] = Motion(*key)
        self.motion = motion
        self.overspeed = handler.machine(Rule(min_duration=float(option(device, "overspeed_min_duration")),
                                              max_gap=gap, counters=_OVERSPEED.counters))
        self.ignition = handler.machine(Rule(max_gap=gap))
        self.trip_speed = float(option(device, "trip_speed"))
        self.use_ignition = bool(option(device, "trip_use_ignition"))
        self.offline_after = float(option(device, "offline_after"))
        self.speed_limit = _number(option(device, "speed_limit"))


def _fence(key: str, name: Any) -> dict[str, Any]:
    return {"geofence.id": int(key) if key.isascii() and key.isdigit() else key, "geofence.name": name}
