"""Recalculation rebuilds from stored messages exactly what live processing computed, and puts
late messages in their place."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from sinogate.analytics.calcs import OFFLINE, STOPS, TRIPS
from sinogate.analytics.recalc import RecalcBusy, Recalculator
from sinogate.pipeline.base import Context, Handler, Message
from tests.analytics.harness import Analytics, without_ids
from tests.analytics.tracks import T0, Route


class Depot(Handler):
    """Stands in for geofencing: a depot fence south of 52.01°."""

    name = "depot"

    def handle(self, message: Message, ctx: Context) -> Message:
        if ctx.accepted:
            ctx.scratch["geofences"] = {5: "depot"} if message["position.latitude"] < 52.01 else {}
        return message


def days(n: int = 3) -> list[Message]:
    """``n`` days: out of the depot and back, a hop, speeding, a silent night, ignition."""
    r = Route()
    out: list[Message] = []
    for day in range(n):
        r.t = T0 + day * 86400
        r.lat = 52.0
        on, off = {"engine.ignition.status": True}, {"engine.ignition.status": False}
        out += r.park(1800, **off) + r.drive(1800, 60, **on) + r.drive(300, 120, **on) + r.park(600, **on)
        out += r.drive(60, 20, **on) + r.park(1200, **off)
        r.lat = 52.0 + 0.05
        out += r.drive(900, 50, **on) + r.park(900, **off)
    return [{**m, "engine.temperature": 80 + (i % 30)} for i, m in enumerate(out)]


USER_CALC = {"name": "hot", "selector": "engine.temperature > 100", "min_duration": 30,
             "counters": [{"name": "t.max", "type": "max", "parameter": "engine.temperature"},
                          {"name": "t.avg", "type": "avg", "parameter": "engine.temperature"}]}


async def live_run(messages: list[Message], batch: int = 7) -> tuple[Analytics, dict[str, Any]]:
    analytics = await Analytics.open(extra=[Depot({})])
    await analytics.calcs.create(USER_CALC)
    device = await analytics.device(speed_limit=100)
    await analytics.feed(device, messages, batch)
    return analytics, device


def test_recalculating_over_history_gives_what_live_gave() -> None:
    async def main() -> None:
        messages = days()
        analytics, device = await live_run(messages)
        live = without_ids(await analytics.intervals(device))
        now = messages[-1]["timestamp"]
        active = analytics.active(device, now)
        kinds = {i["calc.id"] for i in live}
        assert {TRIPS, STOPS, 3, 4, 5, OFFLINE, 100} <= kinds  # every calc made intervals
        starts = [T0, T0 + 2000, T0 + 3700, T0 + 86400 + 5000, messages[-1]["timestamp"] - 100, T0 - 86400]
        for begin in starts:
            summary = await analytics.recalc.recalculate(device, None, begin)
            assert summary["begin"] <= begin or begin < T0
            assert without_ids(await analytics.intervals(device)) == live, begin
            assert analytics.active(device, now) == active, begin
        # One calc alone, trips with its stops.
        summary = await analytics.recalc.recalculate(device, [TRIPS], T0 + 86400)
        assert summary["calcs"] == [TRIPS, STOPS]
        assert without_ids(await analytics.intervals(device)) == live

    asyncio.run(main())


def test_after_a_recalculation_live_processing_goes_on_unchanged() -> None:
    async def main() -> None:
        messages = days(2)
        whole, device = await live_run(messages)
        expected = without_ids(await whole.intervals(device))
        half = len(messages) // 2 + 3
        analytics, other = await live_run(messages[:half])
        await analytics.recalc.recalculate(other, None, T0 + 3600)
        await analytics.feed(other, messages[half:], 5)
        assert without_ids(await analytics.intervals(other)) == expected
        assert analytics.active(other, messages[-1]["timestamp"]) == whole.active(device, messages[-1]["timestamp"])

    asyncio.run(main())


def test_a_late_batch_is_put_in_its_place_by_the_sweep() -> None:
    async def main() -> None:
        messages = days(2)
        in_order, device = await live_run(messages)
        expected = without_ids(await in_order.intervals(device))
        # A blind area: the second morning's trip reaches the server only after the newer data
        # (JT/T 808 0x0704); the live run stores it but computes nothing from it.
        blind = [m for m in messages if T0 + 86400 + 1800 <= m["timestamp"] < T0 + 86400 + 4000]
        arrived = [m for m in messages if m not in blind]
        cut = arrived.index(next(m for m in arrived if m["timestamp"] >= T0 + 86400 + 4000)) + 20
        analytics, late = await live_run(arrived[:cut])
        await analytics.feed(late, blind, 50)
        await analytics.feed(late, arrived[cut:], 5)
        assert without_ids(await analytics.intervals(late)) != expected
        events = analytics.bus.subscribe()
        assert await analytics.recalc.sweep() == 1
        worker = asyncio.create_task(analytics.recalc.work())
        job = analytics.recalc.job(1)
        assert job is not None and job.reason == "late"
        await asyncio.wait_for(job.done.wait(), 30)
        worker.cancel()
        assert job.status == "done" and job.result is not None and job.result["begin"] <= blind[0]["timestamp"]
        assert without_ids(await analytics.intervals(late)) == expected
        assert analytics.active(late, messages[-1]["timestamp"]) == in_order.active(device, messages[-1]["timestamp"])
        assert analytics.states.peek(late["id"])["filters"].get("recalc") is None  # the span was taken
        changes = []
        while not events.queue.empty():
            changes.append(events.queue.get_nowait())
        assert {c["data"]["change"] for c in changes} == {"deleted", "created"}
        assert all(c["type"] == "interval" and c["device_id"] == late["id"] for c in changes)

    asyncio.run(main())


def test_jobs_for_one_device_merge_and_the_queue_is_bounded() -> None:
    async def main() -> None:
        analytics = await Analytics.open()
        analytics.recalc = Recalculator(analytics.store, analytics.pipeline.handlers, analytics.calcs,
                                        analytics.ingest, analytics.states, analytics.devices, analytics.publisher,
                                        max_jobs=2)
        a, b, c = [await analytics.device(ident) for ident in "abc"]
        first = analytics.recalc.submit(a, [TRIPS], T0 + 100, T0 + 200)
        assert analytics.recalc.submit(a, [OFFLINE], T0 + 50, T0 + 150) is first
        assert (first.begin, first.end, first.calc_ids) == (T0 + 50, T0 + 200, {TRIPS, OFFLINE})
        analytics.recalc.submit(b, None, T0)
        with pytest.raises(RecalcBusy):
            analytics.recalc.submit(c, None, T0)
        worker = asyncio.create_task(analytics.recalc.work())
        await asyncio.wait_for(first.done.wait(), 10)
        worker.cancel()
        assert first.status == "done" and first.as_json()["calcs"] == [TRIPS, STOPS, OFFLINE]  # trips bring stops

    asyncio.run(main())


def test_interval_changes_go_out_on_the_bus_after_the_commit() -> None:
    async def main() -> None:
        analytics = await Analytics.open()
        device = await analytics.device()
        events = analytics.bus.subscribe(lambda e: e["type"] == "interval" and e["data"]["calc.id"] == TRIPS)
        r = Route()
        await analytics.feed(device, r.park(600) + r.drive(600, 60) + r.park(600), 4)
        changes = []
        while not events.queue.empty():
            changes.append(events.queue.get_nowait())
        assert [(c["data"]["change"], c["data"]["active"]) for c in changes] == [("created", True), ("updated", False)]
        created, updated = (c["data"] for c in changes)
        assert "id" not in created and created["begin"] == updated["begin"] == T0 + 600
        [stored] = await analytics.intervals(device, [TRIPS])
        assert updated["id"] == stored["id"] and {k: v for k, v in updated.items() if k != "change"} == stored
        assert all((c["device_id"], c["protocol"], c["ident"]) == (device["id"], "h02", "7") for c in changes)

    asyncio.run(main())


def test_at_start_a_lagging_calcs_state_is_caught_up() -> None:
    async def main() -> None:
        messages = days(1)
        whole, device = await live_run(messages)
        expected = without_ids(await whole.intervals(device))
        analytics, other = await live_run(messages[:150])
        saved = json.loads(json.dumps(analytics.states.peek(other["id"])))
        await analytics.feed(other, messages[150:], 5)
        # A crash: the messages are stored, the handler state is the one saved earlier.
        analytics.states.peek(other["id"]).clear()
        analytics.states.peek(other["id"]).update(saved)
        assert await analytics.recalc.resume() == 1
        worker = asyncio.create_task(analytics.recalc.work())
        job = analytics.recalc.job(1)
        assert job is not None and job.reason == "resume"
        await asyncio.wait_for(job.done.wait(), 30)
        worker.cancel()
        assert without_ids(await analytics.intervals(other)) == expected
        assert analytics.active(other, messages[-1]["timestamp"]) == whole.active(device, messages[-1]["timestamp"])
        assert await analytics.recalc.resume() == 0  # nothing lags any more

    asyncio.run(main())


def test_room_for_jobs_counts_devices_already_queued() -> None:
    async def main() -> None:
        analytics = await Analytics.open()
        recalc = Recalculator(analytics.store, analytics.pipeline.handlers, analytics.calcs, analytics.ingest,
                              analytics.states, analytics.devices, analytics.publisher, max_jobs=2)
        a, b, c = [await analytics.device(ident) for ident in "abc"]
        assert recalc.room_for([a, b]) and not recalc.room_for([a, b, c])
        recalc.submit(a, None, T0)
        assert recalc.room_for([a, b]) and not recalc.room_for([b, c])

    asyncio.run(main())
