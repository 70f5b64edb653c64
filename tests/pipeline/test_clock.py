"""Clock trust (issue 10, item 7): a device clock off by whole hours is detected over real-time
reports, recorded, announced once and corrected; times ahead that no offset explains are flagged."""

from __future__ import annotations

from typing import Any

import pytest

from sinogate.pipeline.base import Context
from sinogate.pipeline.clock import Clock, clock_view
from sinogate.pipeline.filters import Filters
from sinogate.pipeline.runner import Pipeline
from sinogate.pipeline.time_sanity import TimeSanity
from sinogate.store.telemetry import TelemetryTable

T0 = 1_760_000_000.0


class Device:
    """One device's reports through time_sanity → clock → filters, with its state and telemetry."""

    def __init__(self, protocol: str = "h02", settings: dict[str, Any] | None = None, transport: str = "tcp") -> None:
        self.device = {"id": 7, "name": "unit", "settings": settings or {}}
        self.states: dict[str, Any] = {}
        self.protocol = protocol
        self.transport = transport
        self.pipeline = Pipeline([TimeSanity({}), Clock({}), Filters({})])
        self.telemetry = TelemetryTable()
        self.events: list[dict[str, Any]] = []

    def report(self, now: float, device_time: float, **fields: Any) -> dict[str, Any]:
        ctx = Context(self.protocol, self.transport, "1.2.3.4:5", now, self.device, 1, 1, self.states)
        message = {"ident": "4210051415", "timestamp": device_time, "device.id": 7, **fields}
        [out] = self.pipeline.run([message], ctx)
        self.events.extend(ctx.events)
        self.telemetry.apply(out)
        return out

    def latest(self, name: str = "timestamp") -> Any:
        return self.telemetry.get(7, [name])[name]["value"]


@pytest.mark.parametrize(("hours", "protocol"), [(8, "h02"), (-5, "h02"), (5.5, "h02"), (5.75, "h02"),
                                                 (-8, "jt808"), (3, "jt808")])
def test_offset_detected_after_three_real_time_reports_then_corrected(hours: float, protocol: str) -> None:
    dev = Device(protocol)
    shift = hours * 3600.0
    first = [dev.report(T0 + 30 * i, T0 + 30 * i - 4 + shift, **{"position.speed": 10.0}) for i in range(3)]
    ahead = shift > 300
    # until the third report the shift is not explained: ahead is flagged, behind is kept as sent
    assert [m.get("timestamp.flagged", False) for m in first[:2]] == [ahead, ahead]
    assert all("timestamp.corrected" not in m for m in first[:2])
    third = first[2]
    assert third["timestamp.corrected"] is True
    assert third["timestamp"] == pytest.approx(T0 + 60 - 4)
    assert third["timestamp.original"] == pytest.approx(T0 + 60 - 4 + shift)
    zone = 8.0 if protocol == "jt808" else 0.0
    assert third["clock.offset"] == pytest.approx(zone + hours)
    assert "timestamp.flagged" not in third
    [event] = dev.events
    assert event["type"] == "clock.offset" and event["clock.offset"] == pytest.approx(zone + hours)
    assert event["clock.offset.previous"] == pytest.approx(zone) and event["clock.correction"] == -shift
    # every later report is corrected, and telemetry follows the device's real time
    later = dev.report(T0 + 600, T0 + 590 + shift)
    assert later["timestamp"] == pytest.approx(T0 + 590) and later["timestamp.corrected"] is True
    assert dev.latest() == pytest.approx(T0 + 590)
    assert len(dev.events) == 1  # announced once
    view = clock_view(dev.states, dev.device)
    assert view["clock.offset"] == pytest.approx(zone + hours) and view["time_offset"] == "auto"
    assert view["clock.correction"] == -shift and view["clock.offset.detected"] == T0 + 60


def test_flagged_ahead_messages_never_become_telemetry_and_latest_recovers() -> None:
    dev = Device()
    dev.report(T0, T0 - 5, **{"position.latitude": 1.0})
    m = dev.report(T0 + 30, T0 + 30 + 8 * 3600, **{"position.latitude": 2.0})  # one stray report 8 h ahead
    assert m["timestamp.flagged"] is True
    assert dev.latest("position.latitude") == 1.0
    dev.report(T0 + 60, T0 + 58, **{"position.latitude": 3.0})
    assert dev.latest("position.latitude") == 3.0 and dev.latest() == T0 + 58
    assert dev.events == []


def test_a_few_seconds_early_is_fine_minutes_ahead_are_flagged() -> None:
    dev = Device()
    assert "timestamp.flagged" not in dev.report(T0, T0 + 40)
    assert dev.report(T0 + 10, T0 + 10 + 301)["timestamp.flagged"] is True
    strict = Device(settings={"clock_max_ahead": 30})
    assert strict.report(T0, T0 + 40)["timestamp.flagged"] is True


def test_fixed_time_offset_disables_detection() -> None:
    dev = Device(settings={"time_offset": 0})
    for i in range(5):
        m = dev.report(T0 + 30 * i, T0 + 30 * i + 8 * 3600)
        assert m["timestamp.flagged"] is True and "timestamp.corrected" not in m
    assert dev.events == [] and clock_view(dev.states, dev.device)["clock.offset"] is None


def test_server_stamped_and_blind_area_and_api_messages_are_not_evidence() -> None:
    dev = Device()
    for i in range(4):  # heartbeats without a device time: stamped with the server time by the codec
        now = T0 + 30 * i
        assert "timestamp.corrected" not in dev.report(now, now)
    for i in range(4):  # a blind-area batch
        dev.report(T0 + 200 + i, T0 + 200 + i - 3 * 3600, **{"position.blackbox": True})
    api = Device(transport="http")
    for i in range(4):
        api.report(T0 + 30 * i, T0 + 30 * i - 3 * 3600)
    assert dev.events == [] and api.events == []


def test_one_count_per_read_and_a_different_offset_restarts_the_run() -> None:
    dev = Device()
    shift = 2 * 3600.0
    for _ in range(3):  # three reports in one read (same server time): one observation
        dev.report(T0, T0 - 10 + shift)
    assert dev.events == []
    dev.report(T0 + 30, T0 + 25 + 3 * 3600)  # another offset: the run starts over
    dev.report(T0 + 60, T0 + 55 + shift)
    dev.report(T0 + 90, T0 + 85 + shift)
    assert dev.events == []
    m = dev.report(T0 + 120, T0 + 115 + shift)
    assert m["timestamp.corrected"] is True and dev.events[0]["clock.offset"] == 2.0


def test_buffered_reports_that_fit_no_quarter_hour_are_ignored() -> None:
    dev = Device()
    for i in range(5):  # 20 minutes old: 300 s off the nearest quarter hour
        dev.report(T0 + 30 * i, T0 + 30 * i - 1200)
    assert dev.events == []


def test_device_set_back_to_utc_is_followed() -> None:
    dev = Device()
    shift = 8 * 3600.0
    for i in range(3):
        dev.report(T0 + 30 * i, T0 + 30 * i + shift)
    assert dev.states["clock"]["hours"] == 8.0
    for i in range(3, 6):
        m = dev.report(T0 + 30 * i, T0 + 30 * i - 2)
    assert "timestamp.corrected" not in m and m["timestamp"] == T0 + 150 - 2
    assert m["clock.offset"] == 0.0
    assert [e["clock.offset"] for e in dev.events] == [8.0, 0.0]


def test_unknown_ident_is_flagged_but_not_corrected() -> None:
    ctx = Context("h02", "tcp", "p", T0, None, 1, 1, None)
    m = Clock({}).handle({"timestamp": T0 + 8 * 3600}, ctx)
    assert m["timestamp.flagged"] is True and "timestamp.corrected" not in m
