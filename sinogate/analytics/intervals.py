"""Intervals of calculators (flespi's shape), computed by pure state machines over messages.

An interval is a span of a device's messages during which something held: a trip, a stop, a
visit of a geofence, an overspeed episode, the ignition on, a user's expression true. The
machines here know nothing about stores, clocks or handlers: a message (flat dict with
``timestamp``) and a verdict go in, changes come out, and the per-device state they keep is a
plain JSON-serializable dict. The same messages in the same order always give the same
intervals, whether they arrive live or are replayed from the store for a recalculation.

Rules (``Rule``):

- An interval opens at the first message for which the predicate holds and spans the messages
  while it holds; without hysteresis it ends at the last such message.
- ``max_gap`` (s, 0 = none): a gap between two messages longer than this closes the open interval
  at its last message; the message after the gap starts afresh.
- ``linger`` (s, hysteresis, used for trips): the interval closes only once the predicate stayed
  false this long; it then ends at the first message where it turned false (the vehicle's stop),
  and if the predicate holds again before that, the interval simply goes on.
- ``lead`` (trips): the interval begins at the message before the first one where the predicate
  holds (where the vehicle departed from), unless a gap longer than ``max_gap`` lies between.
- ``min_duration`` (s) and ``min_distance`` (km): an interval that never reaches both is
  dropped. It is *confirmed* (shown as active, announced) from the message where it reached them.
- ``distance`` sums ``odometer.step`` (km, from the odometer handler) of the interval's fixes
  after its first message; ``max.speed``/``avg.speed`` come from ``position.speed`` of its fixes;
  positions only from fixes (messages the filters accepted).

Counters (``Counter``): ``first``, ``last``, ``min``, ``max``, ``avg``, ``sum`` of a parameter over
the interval's messages that carry it, and ``distance`` / ``duration`` of the interval.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sinogate.analytics.geo import distance_km

Message = Mapping[str, Any]
Stats = dict[str, Any]
State = dict[str, Any]

COUNTER_TYPES = ("first", "last", "min", "max", "avg", "sum", "distance", "duration")
PARAMETER_COUNTERS = frozenset({"first", "last", "min", "max", "avg", "sum"})

# Every interval has these keys (plus its calc's counters, plus geofence.id/name for visits).
INTERVAL_KEYS = (
    "id", "calc.id", "device.id", "begin", "end", "duration", "active", "distance", "max.speed", "avg.speed",
    "begin.position.latitude", "begin.position.longitude", "end.position.latitude", "end.position.longitude",
)


@dataclass(frozen=True, slots=True)
class Counter:
    """``name`` is the key in the interval; ``parameter`` the message parameter it reads (for the
    types that read one)."""

    name: str
    type: str
    parameter: str | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type}
        if self.parameter is not None:
            out["parameter"] = self.parameter
        return out


@dataclass(frozen=True, slots=True)
class Rule:
    min_duration: float = 0.0
    max_gap: float = 0.0
    linger: float = 0.0
    min_distance: float = 0.0
    counters: tuple[Counter, ...] = ()
    lead: bool = False


@dataclass(frozen=True, slots=True)
class Change:
    """What a step did: ``confirm`` (an interval reached its minimums: it is now active),
    ``close`` (a confirmed interval ended: store it), ``drop`` (an unconfirmed one ended: forget
    it). ``tail``: for a hysteresis close, the messages from the first false one on."""

    kind: str
    stats: Stats
    tail: Stats | None = None


_NUMBER = (int, float)


def _number(value: Any) -> float | None:
    if value.__class__ is bool or not isinstance(value, _NUMBER):
        return None
    return float(value)


# --- statistics of an interval -----------------------------------------------------------------------

def new_stats() -> Stats:
    return {"b": None, "e": None, "n": 0, "d": 0.0, "d0": 0.0, "bp": None, "ep": None, "vmax": None, "vs": 0.0,
            "vn": 0, "c": {}}


def add(s: Stats, m: Message, fix: bool, counters: tuple[Counter, ...] = ()) -> Stats:
    """Adds message ``m`` (a fix the filters accepted when ``fix``) to the statistics ``s``."""
    ts = float(m["timestamp"])
    n = s["n"]
    if n == 0:
        s["b"] = ts
    s["e"] = ts
    s["n"] = n + 1
    if fix:  # (runs for every fix of every open interval: kept to plain operations)
        step = m.get("odometer.step")
        step = (float(step) if step.__class__ is float or step.__class__ is int else _number(step)) or 0.0
        if n == 0:
            s["d0"] = step
        else:
            s["d"] += step
        position = [m["position.latitude"], m["position.longitude"]]
        if s["bp"] is None:
            s["bp"] = position
        s["ep"] = position
        speed = m.get("position.speed")
        speed = float(speed) if speed.__class__ is float or speed.__class__ is int else _number(speed)
        if speed is not None:
            vmax = s["vmax"]
            s["vmax"] = speed if vmax is None else max(vmax, speed)
            s["vs"] += speed
            s["vn"] += 1
    if counters:
        _count(s["c"], m, counters)
    return s


def _count(c: dict[str, Any], m: Message, counters: tuple[Counter, ...]) -> None:
    for counter in counters:
        kind = counter.type
        if kind not in PARAMETER_COUNTERS or counter.parameter is None:
            continue
        value = m.get(counter.parameter)
        if value is None:
            continue
        name = counter.name
        if kind == "first":
            if name not in c:
                c[name] = value
        elif kind == "last":
            c[name] = value
        else:
            number = _number(value)
            if number is None:
                continue
            old = c.get(name)
            if kind == "min":
                c[name] = number if old is None else min(old, number)
            elif kind == "max":
                c[name] = number if old is None else max(old, number)
            elif kind == "sum":
                c[name] = number if old is None else old + number
            else:  # avg: [sum, count], replaced (never changed in place) so shallow copies stay apart
                c[name] = [number, 1] if old is None else [old[0] + number, old[1] + 1]


def merge(a: Stats, b: Stats, counters: tuple[Counter, ...] = ()) -> Stats:
    """``a`` followed by ``b`` (both non-empty), into ``a``."""
    if b["n"] == 0:
        return a
    if a["n"] == 0:
        a.update(copy(b))
        return a
    a["e"] = b["e"]
    a["n"] += b["n"]
    a["d"] += b["d0"] + b["d"]
    if a["bp"] is None:
        a["bp"] = b["bp"]
    if b["ep"] is not None:
        a["ep"] = b["ep"]
    if b["vmax"] is not None:
        a["vmax"] = b["vmax"] if a["vmax"] is None else max(a["vmax"], b["vmax"])
    a["vs"] += b["vs"]
    a["vn"] += b["vn"]
    ca, cb = a["c"], b["c"]
    for counter in counters:
        name, kind = counter.name, counter.type
        if name not in cb:
            continue
        if name not in ca or kind == "last":
            ca[name] = cb[name]
        elif kind == "first":
            continue
        elif kind == "min":
            ca[name] = min(ca[name], cb[name])
        elif kind == "max":
            ca[name] = max(ca[name], cb[name])
        elif kind == "sum":
            ca[name] = ca[name] + cb[name]
        elif kind == "avg":
            ca[name] = [ca[name][0] + cb[name][0], ca[name][1] + cb[name][1]]
    return a


def copy(s: Stats) -> Stats:
    return {**s, "c": dict(s["c"])}


def duration(s: Stats) -> float:
    return 0.0 if s["n"] == 0 else float(s["e"]) - float(s["b"])


def interval(s: Stats, counters: tuple[Counter, ...] = (), **extra: Any) -> dict[str, Any]:
    """The interval (without ``id``, ``calc.id``, ``device.id``, ``active``) the statistics describe."""
    bp, ep = s["bp"], s["ep"]
    out: dict[str, Any] = {
        "begin": s["b"], "end": s["e"], "duration": round(duration(s), 3), "distance": round(s["d"], 3),
        "max.speed": s["vmax"], "avg.speed": round(s["vs"] / s["vn"], 2) if s["vn"] else None,
        "begin.position.latitude": bp[0] if bp else None, "begin.position.longitude": bp[1] if bp else None,
        "end.position.latitude": ep[0] if ep else None, "end.position.longitude": ep[1] if ep else None,
    }
    c = s["c"]
    for counter in counters:
        kind = counter.type
        if kind == "distance":
            out[counter.name] = out["distance"]
        elif kind == "duration":
            out[counter.name] = out["duration"]
        elif kind == "avg":
            value = c.get(counter.name)
            out[counter.name] = round(value[0] / value[1], 6) if value else None
        else:
            out[counter.name] = c.get(counter.name)
    out.update(extra)
    return out


# --- one interval at a time --------------------------------------------------------------------------

_LEAD_KEYS = ("timestamp", "position.latitude", "position.longitude", "position.speed", "odometer.step")


class Machine:
    """Intervals of one predicate under a ``Rule``. State keys: ``last`` (time of the last message
    stepped), ``open`` (statistics of the open interval), ``ok`` (it is confirmed), ``xs`` (with
    hysteresis: the first message where the predicate turned false, as statistics), ``pend``
    (the messages after that one) and ``p`` (with ``lead``: the previous fix)."""

    __slots__ = ("rule",)

    def __init__(self, rule: Rule) -> None:
        self.rule = rule

    def step(self, st: State, m: Message, fix: bool, truth: bool) -> list[Change]:
        rule = self.rule
        if not truth and st.get("open") is None:  # the usual case of most machines: nothing open, nothing opens
            st["last"] = float(m["timestamp"])
            if rule.lead and fix:
                st["p"] = {key: m[key] for key in _LEAD_KEYS if key in m}
            return []
        out: list[Change] = []
        ts = float(m["timestamp"])
        last = st.get("last")
        if rule.max_gap and last is not None and ts - last > rule.max_gap and st.get("open") is not None:
            out.append(self.close(st))
        st["last"] = ts
        current = st.get("open")
        if truth:
            if current is None:
                current = st["open"] = new_stats()
                lead = st.get("p") if rule.lead else None
                if lead is not None and (not rule.max_gap or ts - lead["timestamp"] <= rule.max_gap):
                    add(current, lead, True, rule.counters)
                add(current, m, fix, rule.counters)
                st["ok"] = False
            else:
                st.pop("xs", None)
                pend = st.pop("pend", None)
                if pend is not None:
                    merge(current, pend, rule.counters)
                add(current, m, fix, rule.counters)
            self._confirm(st, current, out)
        elif current is not None:
            if not rule.linger:
                out.append(self.close(st))
            elif "xs" not in st:
                add(current, m, fix, rule.counters)  # the stop's first message ends the interval
                st["xs"] = add(new_stats(), m, fix, rule.counters)
                self._confirm(st, current, out)
            else:
                pend = st.get("pend")
                st["pend"] = add(new_stats() if pend is None else pend, m, fix, rule.counters)
                if ts - float(st["xs"]["b"]) >= rule.linger:
                    out.append(self.close(st))
        if rule.lead and fix:
            st["p"] = {key: m[key] for key in _LEAD_KEYS if key in m}
        return out

    def _confirm(self, st: State, current: Stats, out: list[Change]) -> None:
        if not st.get("ok") and duration(current) >= self.rule.min_duration and current["d"] >= self.rule.min_distance:
            st["ok"] = True
            out.append(Change("confirm", current))

    def close(self, st: State) -> Change:
        """Closes the open interval (there must be one) where it ends."""
        current = st.pop("open")
        ok = st.pop("ok", False)
        tail = st.pop("xs", None)
        pend = st.pop("pend", None)
        if tail is not None and pend is not None:
            merge(tail, pend, self.rule.counters)
        return Change("close" if ok else "drop", current, tail)

    @staticmethod
    def active(st: State) -> Stats | None:
        """The confirmed open interval, if any."""
        return st.get("open") if st.get("ok") else None


class Keyed:
    """One ``Machine`` per key (geofence visits: one interval per fence). State: ``{"k": {key:
    machine state, plus "nm": the key's name}}``; idle keys are forgotten."""

    __slots__ = ("machine",)

    def __init__(self, rule: Rule) -> None:
        self.machine = Machine(rule)

    def step(self, st: State, m: Message, fix: bool, keys: Mapping[str, Any]) -> list[tuple[str, Any, Change]]:
        """``keys``: key → name of the keys whose predicate holds. Returns (key, name, change)."""
        subs: dict[str, State] = st.setdefault("k", {})
        out: list[tuple[str, Any, Change]] = []
        if not subs and not keys:
            return out
        for key in sorted(set(subs) | set(keys)):
            sub = subs.get(key)
            if sub is None:
                sub = {"nm": keys[key]}
            elif key in keys:
                sub["nm"] = keys[key]
            for change in self.machine.step(sub, m, fix, key in keys):
                out.append((key, sub.get("nm"), change))
            if sub.get("open") is not None:
                subs[key] = sub
            else:
                subs.pop(key, None)
        return out

    def active(self, st: State) -> Iterable[tuple[str, Any, Stats]]:
        for key, sub in sorted((st.get("k") or {}).items()):
            current = Machine.active(sub)
            if current is not None:
                yield key, sub.get("nm"), current


class Motion:
    """Trips and stops of one vehicle, together (a stop is what lies between two trips).

    Trips are a hysteresis ``Machine`` over "moving" (a trip departs from the fix before the first
    moving one and ends at the first stopped fix once the vehicle stayed stopped
    ``stop_min_duration``, counting a silence that began stopped as stopped; a gap longer than
    ``max_gap`` ends it at its last fix; shorter than ``min_distance`` it is no trip). A stop
    begins where a trip ended or, with no trip before, at the first stopped fix; it ends where the
    next (confirmed) trip departs, so a short hop inside a stop does not split it. After a data
    gap longer than ``max_gap`` a stop goes on if the vehicle is still stopped within
    ``min_distance`` of where it was, otherwise it ends at its last message before the gap. A
    stop counts from ``stop_min_duration``.

    State: ``trip`` (the trip machine's), ``stop`` (statistics of the open stop), ``sok`` (the
    stop is confirmed), ``snap`` (the stop's statistics up to where the trip candidate
    departed: the stop ends there if that candidate becomes a trip)."""

    __slots__ = ("max_gap", "min_distance", "stop_min_duration", "trips")

    def __init__(self, stop_min_duration: float, max_gap: float, min_distance: float) -> None:
        self.trips = Machine(Rule(max_gap=max_gap, linger=stop_min_duration, min_distance=min_distance, lead=True))
        self.stop_min_duration = stop_min_duration
        self.max_gap = max_gap
        self.min_distance = min_distance

    def step(self, st: State, m: Message, moving: bool) -> list[tuple[str, Change]]:
        """Steps one accepted fix. Returns ("trip" | "stop", change) pairs in order."""
        out: list[tuple[str, Change]] = []
        trip: State | None = st.get("trip")
        if trip is None:
            trip = st["trip"] = {}
        ts = float(m["timestamp"])
        last = trip.get("last")
        if self.max_gap and last is not None and ts - last > self.max_gap:
            self._gap(st, trip, m, moving, out)
        elif "xs" in trip and last is not None and ts - last >= self.stop_min_duration:
            self._end_trip(st, trip, out)  # it fell silent while stopped: it stayed stopped that long
        if trip.get("ok") and trip.get("open") is not None:
            for change in self.trips.step(trip, m, True, moving):
                out.append(("trip", change))
                if change.kind == "close":
                    self._stop_from(st, change.tail)
        else:
            stop = st.get("stop")
            if trip.get("open") is None and moving:  # a trip candidate departs from the stop's last fix
                st["snap"] = None if stop is None else copy(stop)
            if stop is not None:
                add(stop, m, True)
            changes = self.trips.step(trip, m, True, moving)
            for change in changes:
                if change.kind == "confirm":
                    out.append(("trip", change))
                    snap = st.pop("snap", None)
                    self._end_stop(st, out, snap)
                else:  # a hop that was no trip: it stays part of the stop
                    st.pop("snap", None)
                    if st.get("stop") is None:
                        self._stop_from(st, change.tail)
        if trip.get("open") is None:
            if st.get("stop") is None and not moving:
                st["stop"] = add(new_stats(), m, True)
                st["sok"] = False
            stop = st.get("stop")
            if stop is not None and not st.get("sok") and duration(stop) >= self.stop_min_duration:
                st["sok"] = True
                out.append(("stop", Change("confirm", stop)))
        return out

    def _stop_from(self, st: State, tail: Stats | None) -> None:
        st["stop"] = tail
        st["sok"] = False
        st.pop("snap", None)

    def _end_stop(self, st: State, out: list[tuple[str, Change]], stats: Stats | None = None) -> None:
        stop = st.pop("stop", None)
        ok = st.pop("sok", False)
        st.pop("snap", None)
        stats = stats if stats is not None else stop
        if stats is not None:
            out.append(("stop", Change("close" if ok and duration(stats) >= self.stop_min_duration else "drop", stats)))

    def _end_trip(self, st: State, trip: State, out: list[tuple[str, Change]]) -> None:
        """Ends the open trip (or candidate) where it ends; the stop takes over from there."""
        change = self.trips.close(trip)
        if change.kind == "close":
            out.append(("trip", change))
            self._stop_from(st, change.tail)
        else:
            st.pop("snap", None)
            if st.get("stop") is None:
                self._stop_from(st, change.tail)

    def _gap(self, st: State, trip: State, m: Message, moving: bool, out: list[tuple[str, Change]]) -> None:
        if trip.get("open") is not None:
            self._end_trip(st, trip, out)
        stop = st.get("stop")
        if stop is not None:
            if not st.get("sok") and duration(stop) >= self.stop_min_duration:
                st["sok"] = True
                out.append(("stop", Change("confirm", stop)))
            ep = stop["ep"]
            far = ep is None or distance_km(ep[0], ep[1], m["position.latitude"], m["position.longitude"]) > \
                self.min_distance
            if moving or far:
                self._end_stop(st, out)

    def active(self, st: State) -> tuple[Stats | None, Stats | None]:
        """(the confirmed trip, the confirmed stop) open now."""
        trip = Machine.active(st.get("trip") or {})
        stop = st.get("stop") if st.get("sok") else None
        return trip, stop


def offline_step(st: State, m: Message, fix: bool, after: float) -> Stats | None:
    """The device was silent (device time) longer than ``after`` seconds before ``m``: returns the
    statistics of that gap (begin at the message before it, end at ``m``; ``distance`` is how far
    the device moved meanwhile). State: ``last`` (time), ``lp`` (the last fix)."""
    ts = float(m["timestamp"])
    last = st.get("last")
    out = None
    if last is not None and ts - last > after:
        out = new_stats()
        out.update(b=float(last), e=ts, n=2, bp=st.get("lp"))
        if fix:
            out["ep"] = [m["position.latitude"], m["position.longitude"]]
            out["d"] = _number(m.get("odometer.step")) or 0.0
    if last is None or ts >= last:
        st["last"] = ts
    if fix:
        st["lp"] = [m["position.latitude"], m["position.longitude"]]
    return out
