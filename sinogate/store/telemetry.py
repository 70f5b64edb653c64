"""The telemetry rule, shared by every store: per device, the latest value of each parameter.

"Latest" is by *device* time (``timestamp``), not by arrival: a late message (a JT/T 808 0x0704
blind-area batch, an H02 unit replaying its buffer) fills in what is older than it but never
overwrites a value with a newer device time. A message with ``timestamp.flagged`` (a device time
that cannot be right) or without ``device.id`` never touches telemetry. Pure: no I/O, no clock.
"""

from __future__ import annotations

from typing import Any

Message = dict[str, Any]


class TelemetryTable:
    """In-memory telemetry of every device; a store persists ``snapshot`` and reloads with ``load``."""

    __slots__ = ("_entries", "_newest")

    def __init__(self) -> None:
        self._entries: dict[int, tuple[dict[str, Any], dict[str, float]]] = {}  # values, device times
        self._newest: dict[int, float] = {}

    def apply(self, message: Message) -> int | None:
        """Applies one message; returns the device id it changed, or ``None`` when it may not."""
        device_id = message.get("device.id")
        if device_id is None or message.get("timestamp.flagged"):
            return None
        ts = message.get("timestamp") or 0.0
        self._put(device_id, message, dict.fromkeys(message, ts), ts, ts)
        return device_id  # type: ignore[no-any-return]

    def apply_many(self, messages: list[Message]) -> set[int]:
        """Applies ``messages`` in order, as ``apply`` one by one would; returns the devices changed.

        A batch of one device's messages in device-time order (what one read brings) is merged
        first, later values over earlier ones (in C), and the rule then runs once per parameter
        instead of once per parameter and message."""
        run: list[tuple[Message, Any]] = []
        device_id = None
        previous = float("-inf")
        for m in messages:
            d = m.get("device.id")
            if d is None or m.get("timestamp.flagged"):
                continue
            ts = m.get("timestamp") or 0.0
            if (device_id is not None and d != device_id) or ts < previous:
                run = []  # not one device's run in order: one message at a time
                break
            device_id, previous = d, ts
            run.append((m, ts))
        if len(run) < 2:
            touched = set()
            for m in messages:
                changed = self.apply(m)
                if changed is not None:
                    touched.add(changed)
            return touched
        assert device_id is not None
        merged: dict[str, Any] = {}
        merged_times: dict[str, Any] = {}
        last, last_ts = run[-1]
        for m, ts in run[:-1]:
            if m.keys() <= last.keys():
                continue  # the last message overrides every parameter of this one (the usual case)
            merged.update(m)
            merged_times.update(dict.fromkeys(m, ts))
        merged.update(last)
        merged_times.update(dict.fromkeys(last, last_ts))
        self._put(device_id, merged, merged_times, run[0][1], previous)
        return {device_id}

    def _put(self, device_id: int, values_in: Message, times_in: dict[str, Any], oldest: float,
             newest: float) -> None:
        """The rule: ``values_in`` (device times ``times_in``, from ``oldest`` to ``newest``) replace
        what the device has unless what it has is newer."""
        entry = self._entries.get(device_id)
        if entry is None:
            entry = self._entries[device_id] = ({}, {})
        values, times = entry
        kept = self._newest.get(device_id, float("-inf"))
        if oldest >= kept:  # the usual case: nothing kept is newer, whole-dict updates in C
            values.update(values_in)
            times.update(times_in)
        else:
            for name, value in values_in.items():
                ts = times_in[name]
                old = times.get(name)
                if old is None or old <= ts:
                    values[name] = value
                    times[name] = ts
        if newest >= kept:
            self._newest[device_id] = newest

    def get(self, device_id: int, names: list[str] | None = None) -> dict[str, dict[str, Any]]:
        """``{name: {"value": v, "ts": device time}}`` for all names or the listed ones present."""
        values, times = self._entries.get(device_id, ({}, {}))
        wanted = values if names is None else [n for n in names if n in values]
        return {name: {"value": values[name], "ts": times[name]} for name in wanted}

    def forget(self, device_id: int, names: list[str] | None = None) -> int:
        """Removes all or the named values of a device; returns how many were removed."""
        values, times = self._entries.get(device_id, ({}, {}))
        doomed = list(values) if names is None else [n for n in names if n in values]
        for name in doomed:
            del values[name]
            del times[name]
        self._newest[device_id] = max(times.values(), default=float("-inf"))
        return len(doomed)

    def drop(self, device_id: int) -> None:
        """Forgets a deleted device entirely."""
        self._entries.pop(device_id, None)
        self._newest.pop(device_id, None)

    def snapshot(self, device_id: int) -> dict[str, Any]:
        """The persisted form of one device: ``{"values": {...}, "times": {...}}``."""
        values, times = self._entries.get(device_id, ({}, {}))
        return {"values": values, "times": times}

    def load(self, device_id: int, saved: dict[str, Any]) -> None:
        """Restores one device from its ``snapshot``."""
        values, times = dict(saved.get("values") or {}), dict(saved.get("times") or {})
        self._entries[device_id] = (values, times)
        self._newest[device_id] = max(times.values(), default=0.0)

    def devices(self) -> list[int]:
        return list(self._entries)
