"""Calcs on synthetic tracks, without a server: the interval engine and the calcs handler."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from sinogate.analytics.calcs import (
    GEOFENCE_VISITS,
    IGNITION,
    OFFLINE,
    OVERSPEED,
    STOPS,
    TRIPS,
    CalcError,
    parse_calc,
)
from sinogate.analytics.intervals import Counter, Machine, Rule, add, interval, merge, new_stats
from sinogate.pipeline.base import Context, Handler, Message
from tests.analytics.tracks import T0, Route, Track, registry


def spans(items: list[dict[str, Any]]) -> list[tuple[float, float]]:
    return [(i["begin"] - T0, i["end"] - T0) for i in items]


def day() -> list[Message]:
    """Parked 10 min, 20 km in 20 min, parked 15 min, a 330 m hop, parked 15 min, 40 km, parked."""
    r = Route()
    return (r.park(600) + r.drive(1200, 60) + r.park(900) + r.drive(60, 20) + r.park(900) + r.drive(1800, 80)
            + r.park(1200))


def test_trips_and_stops_of_a_day() -> None:
    track = Track()
    track.feed(day())
    trips, stops = track.closed(TRIPS), track.closed(STOPS)
    # A trip departs from the last parked fix and ends at the first parked one.
    assert spans(trips) == [(600, 1860), (3660, 5520)]
    assert [t["distance"] for t in trips] == pytest.approx([20.0, 40.0], rel=0.002)
    assert [t["duration"] for t in trips] == [1260, 1860]
    assert [t["max.speed"] for t in trips] == [60.0, 80.0]
    assert trips[0]["begin.position.latitude"] == 52.0 and trips[0]["end.position.latitude"] > 52.17
    # The 330 m hop is no trip: the stop goes on through it.
    assert spans(stops) == [(60, 600), (1860, 3660)]
    assert stops[1]["duration"] == 1800 and stops[1]["distance"] == pytest.approx(0.333, abs=0.002)
    [active] = track.active()
    assert (active["calc.id"], active["active"], active["begin"] - T0, active["end"] - T0) == (STOPS, True, 5520, 6660)
    assert "id" not in active
    for item in trips + stops:
        assert item["device.id"] == 7 and item["active"] is False


def test_trip_events_carry_distance_and_duration() -> None:
    track = Track()
    track.feed(day())
    starts = [e for e in track.events if e["type"] == "trip.start"]
    ends = [e for e in track.events if e["type"] == "trip.end"]
    # Confirmed once 0.5 km are driven; ended once parked for 300 s.
    assert [e["timestamp"] - T0 for e in starts] == [660, 3690]
    assert [e["begin"] - T0 for e in starts] == [600, 3660]
    assert [e["timestamp"] - T0 for e in ends] == [2160, 5820]
    assert [e["duration"] for e in ends] == [1260, 1860]
    assert [e["distance"] for e in ends] == pytest.approx([20.0, 40.0], rel=0.002)
    assert ends[0]["position.latitude"] == pytest.approx(52.18, abs=0.001)


def test_a_short_hop_alone_is_no_trip() -> None:
    r = Route()
    track = Track()
    track.feed(r.park(600) + r.drive(90, 15) + r.park(600))  # 375 m
    assert track.closed(TRIPS) == [] and [e for e in track.events if e["type"].startswith("trip")] == []
    [stop] = track.active(r.t)
    assert (stop["calc.id"], stop["begin"] - T0, stop["end"] - T0) == (STOPS, 60, 1290)


def test_a_data_gap_ends_the_trip_at_its_last_message() -> None:
    r = Route()
    track = Track()
    messages = r.park(600) + r.drive(600, 60)
    r.silence(2 * 3600)  # longer than trip_max_gap
    messages += r.drive(600, 60) + r.park(600)
    track.feed(messages)
    trips = track.closed(TRIPS)
    # The first trip ends at its last fix before the gap; after the gap the next one does not
    # depart from a fix two hours old but from the first one after it.
    assert spans(trips) == [(600, 1200), (8430, 9060)]
    assert [t["distance"] for t in trips] == pytest.approx([10.0, 9.5], rel=0.002)
    assert spans(track.closed(OFFLINE)) == [(1200, 8430)]


def test_a_stop_survives_a_gap_where_the_vehicle_stays() -> None:
    r = Route()
    track = Track()
    messages = r.park(600) + r.drive(600, 60) + r.park(600)
    r.silence(10 * 3600)  # overnight, no reports
    messages += r.park(600) + r.drive(600, 60)
    track.feed(messages)
    # Parked at 1260 s, silent from 1800 s to 37860 s, the next trip departs at 38400 s.
    assert spans(track.closed(STOPS)) == [(60, 600), (1260, 38400)]
    assert spans(track.closed(OFFLINE)) == [(1800, 37860)]


def test_a_stop_ends_at_a_gap_after_which_the_vehicle_is_elsewhere() -> None:
    r = Route()
    track = Track()
    messages = r.park(600)
    r.silence(7200)
    r.lat += 0.1  # 11 km away, parked again
    messages += r.park(600)
    track.feed(messages)
    assert spans(track.closed(STOPS)) == [(60, 600)]
    assert track.active(r.t)[0]["begin"] - T0 == 600 + 7200 + 60


def test_ignition_trips_with_the_setting() -> None:
    def crawl() -> list[Message]:
        r = Route()
        ign = {"engine.ignition.status": True}
        # Ignition on, crawling at 4 km/h (below trip_speed) for 10 min: 0.67 km.
        return (r.park(300, **{"engine.ignition.status": False}) + r.drive(600, 4, **ign)
                + r.park(600, **{"engine.ignition.status": False}))

    speed_only = Track()
    speed_only.feed(crawl())
    assert speed_only.closed(TRIPS) == []
    by_ignition = Track(settings={"trip_use_ignition": True})
    by_ignition.feed(crawl())
    [trip] = by_ignition.closed(TRIPS)
    assert (trip["begin"] - T0, trip["end"] - T0) == (300, 960)
    assert trip["distance"] == pytest.approx(0.667, abs=0.005)
    # The ignition calc is there either way: engine hours.
    [on] = speed_only.closed(IGNITION)
    assert (on["begin"] - T0, on["end"] - T0, on["duration"]) == (330, 900, 570)


def test_trip_options_are_handler_options_overridden_per_device() -> None:
    messages = Route().park(600)
    r = Route(T0 + 600)
    messages += r.drive(600, 60) + r.park(200) + r.drive(600, 60) + r.park(400)
    default = Track()
    default.feed(messages)
    assert len(default.closed(TRIPS)) == 1  # a 200 s stop does not end a trip
    short_stops = Track(config={"stop_min_duration": 120.0})
    short_stops.feed(messages)
    assert len(short_stops.closed(TRIPS)) == 2
    device_says = Track(settings={"stop_min_duration": 600}, config={"stop_min_duration": 120.0})
    device_says.feed(messages)
    assert device_says.closed(TRIPS) == [] and len(device_says.active(r.t)) == 1  # still driving, by its rule


def test_overspeed_needs_15_seconds_above_the_limit() -> None:
    r = Route()
    track = Track(settings={"speed_limit": 90})
    track.feed(r.drive(300, 80, every=10) + r.drive(10, 120, every=10) + r.drive(60, 80, every=10)
               + r.drive(60, 130, every=10) + r.drive(120, 80, every=10))
    [episode] = track.closed(OVERSPEED)
    assert (episode["begin"] - T0, episode["end"] - T0) == (380, 430)
    assert episode["max.speed"] == 130.0 and episode["speed.limit"] == 90.0


def test_geofence_visits_one_interval_per_fence() -> None:
    class Fences(Handler):
        """Stands in for geofencing: depot north of 52.05°, yard south of 52.02°."""

        name = "fences"

        def handle(self, message: Message, ctx: Context) -> Message:
            if ctx.accepted:
                lat = message["position.latitude"]
                ctx.scratch["geofences"] = {**({1: "depot"} if lat > 52.05 else {}),
                                            **({2: "yard"} if lat < 52.02 else {})}
            return message

    r = Route()
    track = Track(extra=[Fences({})])
    track.feed(r.park(300) + r.drive(1200, 30) + r.park(300))  # 52.0 → 52.09
    visits = track.closed(GEOFENCE_VISITS)
    assert [(v["geofence.id"], v["geofence.name"]) for v in visits] == [(2, "yard")]
    assert visits[0]["begin"] - T0 == 60
    [depot] = [a for a in track.active(r.t) if a["calc.id"] == GEOFENCE_VISITS]
    assert (depot["geofence.id"], depot["geofence.name"], depot["end"] - T0) == (1, "depot", 1800)


def test_offline_gaps_in_device_time() -> None:
    r = Route()
    track = Track()
    messages = r.park(300)
    r.silence(900)
    messages += r.park(120)
    track.feed(messages)
    [gap] = track.closed(OFFLINE)
    assert (gap["begin"] - T0, gap["end"] - T0, gap["duration"]) == (300, 1260, 960)
    assert track.active(r.t + 100) == [a for a in track.active(r.t + 100) if a["calc.id"] == STOPS]
    assert any(a["calc.id"] == OFFLINE for a in track.active(r.t + 601))


def test_a_user_calc_with_an_expression_and_counters() -> None:
    calcs = registry()
    user = asyncio.run(calcs.create({
        "name": "hot engine", "selector": "engine.temperature > 90", "min_duration": 60, "max_gap": 300,
        "counters": [{"name": "temp.max", "type": "max", "parameter": "engine.temperature"},
                     {"name": "temp.avg", "type": "avg", "parameter": "engine.temperature"},
                     {"name": "temp.first", "type": "first", "parameter": "engine.temperature"},
                     {"name": "temp.last", "type": "last", "parameter": "engine.temperature"},
                     {"name": "fuel", "type": "sum", "parameter": "fuel.used"},
                     {"name": "km", "type": "distance"}, {"name": "seconds", "type": "duration"}],
    }))
    assert user.id == 100
    r = Route()
    temps = [80, 95, 100, 105, 100, 85, 95, 85, 92, 93, 94, 95]
    messages = [m | {"engine.temperature": t, "fuel.used": 0.5} for m, t in zip(r.drive(360, 60), temps, strict=True)]
    r.silence(600)  # longer than max_gap: the interval open at 92..95 closes at its last message
    messages += [m | {"engine.temperature": 99} for m in r.drive(60, 60)]
    track = Track(calcs=calcs)
    track.feed(messages)
    closed = track.closed(user.id)
    # 95..100 (4 messages, 90 s), 95 (one message, dropped: under 60 s), 92..95 (90 s), then 99 99 (30 s).
    assert spans(closed) == [(60, 150), (270, 360)]
    first = closed[0]
    assert (first["temp.max"], first["temp.avg"], first["temp.first"], first["temp.last"]) == (105, 100, 95, 100)
    assert first["fuel"] == 2.0 and first["seconds"] == 90 and first["km"] == first["distance"]
    assert first["distance"] == pytest.approx(1.5, rel=0.002)
    assert closed[1]["temp.avg"] == 93.5
    assert [a["calc.id"] for a in track.active(r.t)] == [TRIPS]  # 30 s of 99: not confirmed yet


def test_a_changed_or_deleted_calc_restarts_or_leaves_the_state() -> None:
    calcs = registry()
    user = asyncio.run(calcs.create({"name": "fast", "selector": "position.speed > 50"}))
    r = Route()
    track = Track(calcs=calcs)
    track.feed(r.drive(120, 60))
    assert [a["calc.id"] for a in track.active(r.t)] == [TRIPS, user.id]
    asyncio.run(calcs.update(user.id, {"selector": "position.speed > 100"}))
    track.feed(r.drive(60, 60))
    assert [a["calc.id"] for a in track.active(r.t)] == [TRIPS]
    asyncio.run(calcs.delete(user.id))
    track.feed(r.drive(30, 60))
    assert str(user.id) not in track.states["calcs"]


@pytest.mark.parametrize("body", [
    {"name": "x"},
    {"name": "x", "selector": "position.speed >"},
    {"name": "x", "selector": "a > 1", "min_duration": -1},
    {"name": "x", "selector": "a > 1", "counters": [{"name": "c", "type": "median", "parameter": "a"}]},
    {"name": "x", "selector": "a > 1", "counters": [{"name": "c", "type": "max"}]},
    {"name": "x", "selector": "a > 1", "counters": [{"name": "distance", "type": "distance"}]},
    {"name": "x", "selector": "a > 1", "devices": "nonsense"},
    {"name": "x", "selector": "a > 1", "colour": "red"},
])
def test_bad_calc_definitions_say_why(body: dict[str, Any]) -> None:
    with pytest.raises(CalcError) as refused:
        parse_calc(100, body)
    assert str(refused.value)


def test_the_same_messages_give_the_same_intervals_whatever_the_batches_and_restarts() -> None:
    messages = day()
    one = Track()
    one.feed(messages)
    batched = Track()
    batched.feed(messages, batch=17)
    restarted = Track()
    for i in range(0, len(messages), 25):
        restarted.feed(messages[i:i + 25])
        restarted.states = json.loads(json.dumps(restarted.states))  # saved and loaded, as the runtime does
    for track in (batched, restarted):
        assert track.changes == one.changes
        assert track.active(T0) == one.active(T0)


def test_a_late_batch_fires_nothing_and_marks_its_span() -> None:
    r = Route()
    early = r.park(600) + r.drive(600, 60)
    later = r.drive(300, 60) + r.park(600)
    track = Track()
    track.feed(later)
    before = list(track.changes)
    track.feed(early, batch=10)  # a blind-area batch: device times older than what came before
    assert track.changes == before
    assert track.states["filters"]["recalc"] == [T0 + 60, later[-1]["timestamp"]]


def test_statistics_merge_like_one_run() -> None:
    counters = (Counter("t", "avg", "t"), Counter("f", "first", "t"), Counter("l", "last", "t"),
                Counter("lo", "min", "t"))
    messages = [{"timestamp": T0 + i, "position.latitude": 52.0 + i / 1000, "position.longitude": 13.0,
                 "position.speed": 10.0 * i, "odometer.step": 0.1 * i, "t": i % 4} for i in range(10)]
    whole = new_stats()
    for m in messages:
        add(whole, m, True, counters)
    left, right = new_stats(), new_stats()
    for m in messages[:4]:
        add(left, m, True, counters)
    for m in messages[4:]:
        add(right, m, True, counters)
    assert interval(merge(left, right, counters), counters) == interval(whole, counters)


def test_a_machine_without_hysteresis_ends_at_the_last_true_message() -> None:
    machine = Machine(Rule(min_duration=10))
    st: dict[str, Any] = {}
    kinds = []
    for i, truth in enumerate([False, True, True, True, False, True, False]):
        kinds += [(c.kind, c.stats["b"], c.stats["e"]) for c in machine.step(st, {"timestamp": i * 5.0}, False, truth)]
    assert kinds == [("confirm", 5.0, 15.0), ("close", 5.0, 15.0), ("drop", 25.0, 25.0)]


def test_calcs_without_the_odometer_is_a_config_error() -> None:
    from sinogate.config import Config, ConfigError
    from sinogate.runtime import build_pipeline

    with pytest.raises(ConfigError, match="odometer"):
        build_pipeline(Config(handlers_disabled=["odometer"]))
