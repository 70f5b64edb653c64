"""Recalculation: a device's intervals rebuilt from its stored messages.

The stored messages go, in device-time order, through the same phase-1 handlers as live ones
(from ``filters`` on: the filters, the odometer, geofencing, overspeed, the calcs; not those that
only annotate a message at reception, whose output is stored with it, nor those that only fire
events) on a fresh per-device state. Live processing of in-order messages is exactly this, so
recalculating gives what live processing gave; messages that arrived late are simply in their
place this time.

Where it starts: at the requested ``begin``, moved back to the begin of any interval of the calcs
that spans it (stored or open in the device's state) until none does, so every rebuilt interval
starts from the same clean state as the live one did. A few earlier messages warm up the filters
and the odometer (the last accepted fix). Where it ends: at the device's newest message, because
what follows a change depends on it (a trip that now started earlier, a stop that is now longer);
the rebuilt state of the calcs then replaces the live one inside the device's turn, together with
the intervals from the start on (``IntervalStore.replace_intervals``), and the changes go out on
the bus.

Jobs run one at a time in the background (``work``), from a bounded queue; a second request for a
device that is still queued widens the queued job. ``watch`` turns the spans the filters marked
for late messages (``state["filters"]["recalc"]``) into jobs.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sinogate.analytics.calcs import BUILTINS, COUPLED, OFFLINE, STOPS, TRIPS, CalcRegistry
from sinogate.analytics.publish import IntervalEvents
from sinogate.ingest import IngestService
from sinogate.pipeline.base import Context, Handler, Message
from sinogate.pipeline.calcs import Calcs
from sinogate.pipeline.state import DeviceStates
from sinogate.store.base import Store, StoreError, TimeQuery

log = logging.getLogger("sinogate.recalc")

# Handlers that only fire events about the present: nothing a calc reads.
REPLAY_SKIP = frozenset({"edges", "presence"})
# What the handlers from the filters on added to a stored message; the replay derives it afresh.
DERIVED = ("message.late", "position.filtered", "position.filter.reason", "odometer.step", "odometer.computed")
WARMUP = 20  # messages before the start that set the filters' and the odometer's last fix
CHUNK = 1000
MAX_WIDEN = 64


class RecalcBusy(StoreError):
    """The queue of recalculations is full."""


class DeviceLookup(Protocol):
    def all(self) -> list[dict[str, Any]]: ...


@dataclass(eq=False)
class Job:
    id: int
    device: Mapping[str, Any]
    calc_ids: set[int] | None  # None: every calc of the device
    begin: float
    end: float | None
    reason: str  # "api", "late" or "resume"
    created: float = field(default_factory=time.time)
    status: str = "queued"  # queued, running, done, failed
    result: dict[str, Any] | None = None
    error: str | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "device.id": self.device["id"], "status": self.status,
                               "begin": self.begin, "end": self.end, "reason": self.reason,
                               "calcs": None if self.calc_ids is None else sorted(self.calc_ids)}
        if self.result is not None:
            out.update(self.result)
        if self.error is not None:
            out["error"] = self.error
        return out


def state_key(calc_id: int) -> str:
    """Where a calc's machine lives in the calcs handler's state (trips and stops share one)."""
    return str(TRIPS if calc_id == STOPS else calc_id)


class Recalculator:
    """Rebuilds intervals from stored messages; the background worker of recalculation jobs."""

    def __init__(self, store: Store, handlers: Sequence[Handler], calcs: CalcRegistry,
                 ingest: IngestService, states: DeviceStates, devices: DeviceLookup, publisher: IntervalEvents,
                 max_jobs: int = 256) -> None:
        self._store = store
        handler = next((h for h in handlers if isinstance(h, Calcs)), None)
        if handler is None:
            raise ValueError("recalculation needs the calcs handler in the pipeline")
        self.handler: Calcs = handler
        names = [h.name for h in handlers]
        start = names.index("filters") if "filters" in names else 0
        self._replay = [h for h in handlers[start:] if h.name not in REPLAY_SKIP]
        self._warmup = [h for h in self._replay if h is not handler]
        self._calcs = calcs
        self._ingest = ingest
        self._states = states
        self._devices = devices
        self._publisher = publisher
        self._queue: asyncio.Queue[Job] = asyncio.Queue(maxsize=max_jobs)
        self._queued: dict[int, Job] = {}  # by device id
        self._jobs: dict[int, Job] = {}  # recent jobs by id
        self._ids = itertools.count(1)
        self.failures = 0  # handler exceptions during replays (each logged)
        self.messages = 0  # replayed so far

    # jobs ------------------------------------------------------------------------------------------
    def submit(self, device: Mapping[str, Any], calc_ids: Iterable[int] | None, begin: float,
               end: float | None = None, reason: str = "api") -> Job:
        """Queues a recalculation (or widens the one queued for the device); ``RecalcBusy``."""
        wanted = None if calc_ids is None else set(calc_ids)
        job = self._queued.get(device["id"])
        if job is not None:
            job.begin = min(job.begin, begin)
            job.end = None if job.end is None or end is None else max(job.end, end)
            job.calc_ids = None if job.calc_ids is None or wanted is None else job.calc_ids | wanted
            job.device = device
            return job
        job = Job(next(self._ids), device, wanted, begin, end, reason)
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            raise RecalcBusy(f"{self._queue.maxsize} recalculations are waiting; try again later") from None
        self._queued[device["id"]] = job
        self._jobs[job.id] = job
        if len(self._jobs) > 1000:
            for old in [j for j in self._jobs.values() if j.done.is_set()][:100]:
                del self._jobs[old.id]
        return job

    def room_for(self, devices: Iterable[Mapping[str, Any]]) -> bool:
        """Whether jobs for all these devices fit in the queue (a device already queued takes none)."""
        needed = sum(1 for d in devices if d["id"] not in self._queued)
        return needed <= self._queue.maxsize - self._queue.qsize()

    def active(self, device: Mapping[str, Any], now: float) -> list[dict[str, Any]]:
        """The device's open intervals (read on the event loop, between two of its messages)."""
        return self.handler.active(self._states.peek(device["id"]), device, now)

    def job(self, job_id: int) -> Job | None:
        return self._jobs.get(job_id)

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    async def work(self) -> None:
        """Runs queued jobs one after the other, forever."""
        while True:
            job = await self._queue.get()
            if self._queued.get(job.device["id"]) is job:
                del self._queued[job.device["id"]]
            job.status = "running"
            try:
                job.result = await self.recalculate(job.device, job.calc_ids, job.begin, job.end)
                job.status = "done"
            except asyncio.CancelledError:
                job.status, job.error = "failed", "server shutdown"
                job.done.set()
                raise
            except Exception as exc:
                log.exception("recalculation %s of device %s failed", job.id, job.device["id"])
                job.status, job.error = "failed", f"{type(exc).__name__}: {exc}"
            job.done.set()

    async def sweep(self) -> int:
        """Queues a job for every device whose filters marked a span of late messages; returns
        how many it queued."""
        queued = 0
        for device in self._devices.all():
            state = self._states.peek(device["id"])
            if not state or not (state.get("filters") or {}).get("recalc"):
                continue
            if self._queue.full() and device["id"] not in self._queued:
                break  # the spans stay marked for the next sweep

            def take(states: dict[str, Any]) -> Any:
                return (states.get("filters") or {}).pop("recalc", None)

            span = await self._ingest.with_state(device["id"], take)
            if span:
                self.submit(device, None, float(span[0]), float(span[1]), "late")
                queued += 1
        return queued

    async def resume(self) -> int:
        """At start: queues a job for every device whose stored messages go further than its calcs
        state (handler state is saved every few seconds, messages at once: after a crash the state
        may lag behind). Waits for room in the queue; returns how many it queued."""
        queued = 0
        for device in self._devices.all():
            state = (self._states.peek(device["id"]) or {}).get(Calcs.name) or {}
            last = (state.get(str(OFFLINE)) or {}).get("last")
            if last is None:
                continue  # never processed by the calcs: nothing to resume
            newest = await self._store.messages([device["id"]], TimeQuery(last, None, 8, True))
            if not any(m.get("timestamp", last) > last and not m.get("timestamp.flagged") for m in newest):
                continue
            while self._queue.full() and device["id"] not in self._queued:
                await asyncio.sleep(0.5)
            self.submit(device, None, float(last), None, "resume")
            queued += 1
        if queued:
            log.info("recalculating %d device(s) whose calcs state lagged behind their messages", queued)
        return queued

    async def watch(self, interval: float) -> None:
        """Sweeps for late spans every ``interval`` seconds, forever."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.sweep()
            except StoreError as exc:
                log.warning("late-message sweep failed: %s", exc)

    # the replay ------------------------------------------------------------------------------------
    def _ids_for(self, device: Mapping[str, Any], calc_ids: Iterable[int] | None) -> set[int]:
        if calc_ids is None:
            return {c.id for c in BUILTINS} | {c.id for c in self._calcs.for_device(device)}
        out: set[int] = set()
        for calc_id in calc_ids:
            out |= COUPLED.get(calc_id, frozenset({calc_id}))
        return out

    async def start_of(self, device_id: int, ids: set[int], begin: float) -> float:
        """``begin`` moved back until no interval of the calcs (stored, or open now) spans it."""
        start = begin
        for _ in range(MAX_WIDEN):
            # An interval that ends at the start spans it too (the replay would open it again at its
            # last message), except a trip: its last message is the stop's first, where a replay
            # starting afresh finds the vehicle stopped, as the live state had it once the trip ended.
            spanning = [float(i["begin"]) for i in await self._store.intervals(sorted(ids), [device_id],
                                                                               TimeQuery(start, start))
                        if i["begin"] < start and (i["end"] > start or i["calc.id"] != TRIPS)]
            open_since = Calcs.open_since(self._states.peek(device_id), ids)
            if open_since is not None and open_since < start:
                spanning.append(open_since)
            if not spanning:
                break
            start = min(spanning)
        return start

    def _step(self, message: Message, ctx: Context, handlers: Sequence[Handler]) -> None:
        for key in DERIVED:
            message.pop(key, None)
        ctx.scratch = {}
        current: Message | None = message
        for handler in handlers:
            try:
                current = handler.handle(current, ctx)  # type: ignore[arg-type]
            except Exception:
                self.failures += 1
                log.exception("handler %s failed replaying %r; skipped", handler.name, current)
                continue
            if current is None:
                return

    @staticmethod
    def _collect(ctx: Context, ids: set[int], closed: dict[int, list[dict[str, Any]]]) -> None:
        for item in ctx.intervals:
            if not item["active"] and item["calc.id"] in ids:
                closed.setdefault(item["calc.id"], []).append(item)
        ctx.intervals.clear()
        ctx.events.clear()  # what the handlers fire about the past is not news

    async def recalculate(self, device: Mapping[str, Any], calc_ids: Iterable[int] | None, begin: float,
                          end: float | None = None) -> dict[str, Any]:
        """Rebuilds the intervals of ``calc_ids`` (None: all the device's) from ``begin`` on
        (see the module's description; ``end`` is where the caller's interest ends: the rebuild
        goes on to the newest message). Returns a summary."""
        started = time.monotonic()
        device_id = int(device["id"])
        ids = self._ids_for(device, calc_ids)
        start = await self.start_of(device_id, ids, float(begin))
        states: dict[str, Any] = {}
        ctx = Context(str(device.get("protocol") or ""), "replay", "", time.time(), device, 0, 0, states)
        before = await self._store.messages([device_id], TimeQuery(None, start, WARMUP * 2, True))
        for message in [m for m in reversed(before) if m.get("timestamp", start) < start][-WARMUP:]:
            self._step(message, ctx, self._warmup)
        self._collect(ctx, set(), {})
        closed: dict[int, list[dict[str, Any]]] = {}
        fed = same = 0
        last_ts: float | None = None
        async for message in self._store.iter_messages(device_id, TimeQuery(start, None), CHUNK):
            ts = message.get("timestamp")
            same = same + 1 if ts == last_ts else 1
            last_ts = ts
            self._step(message, ctx, self._replay)
            fed += 1
            if fed % CHUNK == 0:
                self._collect(ctx, ids, closed)
                await asyncio.sleep(0)
        async with self._ingest.device_turn(device_id) as live:
            # What arrived meanwhile (the device's turn holds off more), then the swap.
            if last_ts is not None:
                skip = same
                async for message in self._store.iter_messages(device_id, TimeQuery(last_ts, None), CHUNK):
                    if skip and message.get("timestamp") == last_ts:
                        skip -= 1
                        continue
                    self._step(message, ctx, self._replay)
                    fed += 1
            self._collect(ctx, ids, closed)
            deleted: list[dict[str, Any]] = []
            created: list[dict[str, Any]] = []
            for calc_id in sorted(ids):
                items = closed.get(calc_id, [])
                gone = await self._store.replace_intervals(calc_id, device_id, start, None, items)
                deleted += [{"id": i, "calc.id": calc_id} for i in gone]
                created += items
            rebuilt = states.get(Calcs.name) or {}
            current = live.setdefault(Calcs.name, {})
            for key in {state_key(i) for i in ids}:
                if key in rebuilt:
                    current[key] = rebuilt[key]
                else:
                    current.pop(key, None)
        self.messages += fed
        self._publisher.replaced(device, deleted, created)
        return {"device.id": device_id, "calcs": sorted(ids), "begin": start, "requested": [begin, end],
                "messages": fed, "intervals": len(created), "deleted": len(deleted),
                "seconds": round(time.monotonic() - started, 3)}
