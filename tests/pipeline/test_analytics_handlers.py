"""Filters, odometer and state edges on synthetic tracks, without a server."""

from __future__ import annotations

from typing import Any

import pytest

from sinogate.analytics.geo import distance_km
from sinogate.pipeline.base import Context, Message
from sinogate.pipeline.edges import StateEdges
from sinogate.pipeline.filters import Filters
from sinogate.pipeline.odometer import Odometer, set_odometer
from sinogate.pipeline.runner import Pipeline
from sinogate.pipeline.time_sanity import TimeSanity

T0 = 1_750_000_000.0
DEVICE: dict[str, Any] = {"id": 3, "name": "van", "settings": {}}


class Track:
    """One device's pipeline and state across batches, like the ingest service keeps them."""

    def __init__(self, device: dict[str, Any] = DEVICE, config: dict[str, Any] | None = None) -> None:
        cfg = config or {}
        self.pipeline = Pipeline([TimeSanity(cfg), Filters(cfg), Odometer(cfg), StateEdges(cfg)])
        self.device = device
        self.states: dict[str, Any] = {}
        self.events: list[dict[str, Any]] = []

    def feed(self, *messages: Message, now: float = T0 + 86_400) -> list[Message]:
        ctx = Context("h02", "tcp", "peer", now, self.device, 1, 1, self.states)
        out = self.pipeline.run([{"ident": "1", "device.id": self.device["id"], **m} for m in messages], ctx)
        self.events += ctx.events
        return out


def fix(ts: float, lat: float, lon: float, **extra: Any) -> Message:
    return {"timestamp": ts, "position.latitude": lat, "position.longitude": lon, "position.valid": True, **extra}


def test_a_gps_jump_is_flagged_and_moves_nothing() -> None:
    track = Track()
    a, jump, b = track.feed(fix(T0, 52.0, 13.0), fix(T0 + 10, 62.0, 13.0), fix(T0 + 20, 52.001, 13.0))
    assert "position.filtered" not in a
    assert jump["position.filtered"] is True and jump["position.filter.reason"] == "jump"  # 1,112 km in 10 s
    assert "position.filtered" not in b
    # The odometer went from the first fix to the third, never through the jump.
    assert b["odometer.computed"] == pytest.approx(distance_km(52.0, 13.0, 52.001, 13.0), abs=1e-3)
    assert "odometer.step" not in jump and jump["odometer.computed"] == 0.0


@pytest.mark.parametrize(("message", "reason"), [
    (fix(T0, 52.0, 13.0, **{"position.valid": False}), "invalid"),
    (fix(T0, 0.0, 0.0), "zero"),
])
def test_invalid_and_zero_fixes_are_flagged(message: Message, reason: str) -> None:
    [out] = Track().feed(message)
    assert out["position.filtered"] is True and out["position.filter.reason"] == reason


def test_the_jump_speed_is_a_setting() -> None:
    strict = Track(config={"filter_max_speed": 100.0})
    _, fast = strict.feed(fix(T0, 52.0, 13.0), fix(T0 + 60, 52.03, 13.0))  # 3.3 km in 60 s = 200 km/h
    assert fast["position.filter.reason"] == "jump"
    lenient_device = {**DEVICE, "settings": {"filter_max_speed": 250.0}}
    _, ok = Track(lenient_device, {"filter_max_speed": 100.0}).feed(fix(T0, 52.0, 13.0), fix(T0 + 60, 52.03, 13.0))
    assert "position.filtered" not in ok


def test_a_late_batch_is_stored_marked_fires_nothing_and_marks_the_span() -> None:
    track = Track()
    track.feed(fix(T0 + 600, 52.0, 13.0, **{"engine.ignition.status": False}))
    late = track.feed(fix(T0 + 100, 52.5, 13.5, **{"sos.alarm": True, "engine.ignition.status": True}),
                      fix(T0 + 200, 52.6, 13.6))
    assert [m.get("message.late") for m in late] == [True, True]
    assert track.events == []
    assert track.states["filters"]["recalc"] == [T0 + 100, T0 + 600]
    assert track.states["odometer"]["km"] == 0.0  # the past did not move the odometer


def test_messages_without_a_position_neither_are_late_nor_make_positions_late() -> None:
    """A heartbeat or a registration carries no device time (the codec stamps the server's): a
    device whose clock is 30 s behind the server's keeps its positions live after one."""
    track = Track()
    track.feed(fix(T0, 52.0, 13.0))
    [beat] = track.feed({"timestamp": T0 + 40, "message.type": "0x0002"})  # server time, 30 s ahead
    [after] = track.feed(fix(T0 + 10, 52.001, 13.0))  # device time: 10 s after the first fix
    assert "message.late" not in beat and "message.late" not in after
    assert after["odometer.step"] == pytest.approx(0.111, abs=0.001)
    [old] = track.feed(fix(T0 + 5, 52.0005, 13.0))  # a position older than the newest position is late
    assert old["message.late"] is True


def test_sos_fires_once_per_press_even_without_gps() -> None:
    track = Track()
    track.feed(fix(T0, 52.0, 13.0, **{"sos.alarm": False}))
    track.feed(fix(T0 + 10, 52.0, 13.0, **{"sos.alarm": True, "position.valid": False}))
    track.feed(fix(T0 + 20, 52.0, 13.0, **{"sos.alarm": True}))  # still pressed: no new event
    track.feed(fix(T0 + 30, 52.0, 13.0, **{"sos.alarm": False}))
    track.feed({"timestamp": T0 + 40, "sos.alarm": True, "power.cut.alarm": True, "crash.event": True})
    assert [(e["type"], e["alarm"], e["timestamp"]) for e in track.events] == [
        ("alarm", "sos", T0 + 10), ("alarm", "sos", T0 + 40), ("alarm", "power.cut", T0 + 40),
        ("alarm", "crash", T0 + 40)]
    first = track.events[0]
    assert first["device.id"] == 3 and first["position.latitude"] == 52.0 and first["sos.alarm"] is True


def test_an_ignition_cycle() -> None:
    track = Track()
    for i, on in enumerate([False, True, True, False, False, True]):
        track.feed(fix(T0 + i * 60, 52.0, 13.0, **{"engine.ignition.status": on}))
    assert [(e["type"], e["timestamp"]) for e in track.events] == [
        ("ignition.on", T0 + 60), ("ignition.off", T0 + 180), ("ignition.on", T0 + 300)]


def test_a_flagged_time_moves_nothing() -> None:
    track = Track()
    [out] = track.feed(fix(T0 + 10 * 86_400, 52.0, 13.0, **{"sos.alarm": True}), now=T0)
    assert out["timestamp.flagged"] is True and track.events == [] and "odometer.computed" not in out


def test_the_odometer_accumulates_and_can_be_set() -> None:
    track = Track()
    points = [(52.0, 13.0), (52.01, 13.0), (52.02, 13.0), (52.02, 13.02)]
    out = track.feed(*[fix(T0 + i * 60, lat, lon) for i, (lat, lon) in enumerate(points)])
    legs = [distance_km(*points[i], *points[i + 1]) for i in range(3)]
    assert [m["odometer.step"] for m in out] == pytest.approx([0.0, *legs], abs=1e-4)
    assert out[-1]["odometer.computed"] == pytest.approx(sum(legs), abs=1e-3)
    set_odometer(track.states, 12_345.0)
    [after] = track.feed(fix(T0 + 300, 52.03, 13.02))
    assert after["odometer.computed"] == pytest.approx(12_345.0 + distance_km(52.02, 13.02, 52.03, 13.02), abs=1e-3)
