"""TelemetryTable.apply_many gives what apply, one message after the other, gives; and both give
what the rule says, written out here on its own: per parameter, the value with the newest device
time (a tie goes to the later message); flagged messages and messages without a device count not."""

from __future__ import annotations

import random
from typing import Any

from sinogate.store.telemetry import TelemetryTable


def _message(rng: random.Random, device_id: int | None, ts: float) -> dict[str, Any]:
    names = rng.sample(["a", "b", "c", "d", "e", "position.latitude", "battery.level"], rng.randint(1, 5))
    m: dict[str, Any] = {name: rng.randint(0, 9) for name in names}
    m["timestamp"] = ts
    if device_id is not None:
        m["device.id"] = device_id
    if rng.random() < 0.1:
        m["timestamp.flagged"] = True
    return m


def _batches(rng: random.Random) -> list[list[dict[str, Any]]]:
    out = []
    for _ in range(300):
        shape = rng.random()
        device = rng.choice([1, 2])
        start = rng.uniform(0, 100)
        if shape < 0.5:  # one device, in device-time order (the usual read), ties included
            times = sorted(round(start + rng.uniform(0, 20)) for _ in range(rng.randint(1, 6)))
            out.append([_message(rng, device, t) for t in times])
        elif shape < 0.8:  # one device, out of order (a blind-area batch among live reports)
            out.append([_message(rng, device, round(start + rng.uniform(0, 20))) for _ in range(rng.randint(2, 6))])
        else:  # several devices, or none
            out.append([_message(rng, rng.choice([1, 2, None]), round(start + rng.uniform(0, 20)))
                        for _ in range(rng.randint(1, 6))])
    return out


def _rule(expected: dict[int, dict[str, dict[str, Any]]], m: dict[str, Any]) -> None:
    device_id = m.get("device.id")
    if device_id is None or m.get("timestamp.flagged"):
        return
    values = expected.setdefault(device_id, {})
    for name, value in m.items():
        old = values.get(name)
        if old is None or old["ts"] <= m["timestamp"]:
            values[name] = {"value": value, "ts": m["timestamp"]}


def test_apply_many_equals_apply_in_order() -> None:
    late = 0
    for seed in range(20):
        rng = random.Random(seed)
        one, many = TelemetryTable(), TelemetryTable()
        expected: dict[int, dict[str, dict[str, Any]]] = {}
        for batch in _batches(rng):
            for m in batch:
                newest = max((v["ts"] for v in expected.get(m.get("device.id") or 0, {}).values()), default=None)
                late += newest is not None and m["timestamp"] < newest and not m.get("timestamp.flagged")
                _rule(expected, m)
            touched = set()
            for m in batch:
                device = one.apply(dict(m))
                if device is not None:
                    touched.add(device)
            assert many.apply_many([dict(m) for m in batch]) == touched
            for device_id in (1, 2):
                assert many.get(device_id) == one.get(device_id) == expected.get(device_id, {})
                assert many.snapshot(device_id) == one.snapshot(device_id)
            assert many._newest == one._newest  # what the next message is compared with
    assert late > 100  # the rule's other branch (older values fill in, never overwrite) ran too
