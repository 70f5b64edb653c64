"""The one ingest path: every source of messages (device sessions over TCP and UDP, the REST API,
imports; in a cluster each node its own devices) hands its decoded messages to ``IngestService.ingest``.

    digest (what the device sent) → phase 1: the pipeline (per-device state) → durable commit
    → phase 2: after-commit publishers (command matching, live stream, later MQTT/webhooks)

The caller acknowledges to the device only after ``ingest`` returned. Messages of one device go
through one at a time, in order of arrival (a per-device turn, like Traccar's per-device queues),
while different devices proceed concurrently.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Hashable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from sinogate.jsonenc import content_digest, device_digest
from sinogate.pipeline.base import Context, Message
from sinogate.pipeline.runner import Pipeline
from sinogate.pipeline.state import DeviceStates
from sinogate.store.base import IngestBatch

log = logging.getLogger("sinogate.ingest")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Source:
    """Where messages came from. ``transport`` is ``tcp``, ``udp``, ``http`` (REST), ``import``;
    ``channel_id`` the listener's id (0 for sources that are not a listener); ``conn_id`` the
    connection's id when there is one."""

    protocol: str
    transport: str
    peer: str
    channel_id: int
    protocol_id: int
    conn_id: int | None = None


@dataclass(frozen=True, slots=True)
class Committed:
    """What phase 2 sees: durable messages of one device (or of one unknown ident)."""

    source: Source
    device: Mapping[str, Any] | None
    ident: str | None
    messages: list[Message]
    now: float
    events: list[dict[str, Any]] = field(default_factory=list)  # analytics events (see pipeline.base.Context)
    intervals: list[dict[str, Any]] = field(default_factory=list)  # interval changes (see pipeline.calcs)

    @property
    def device_id(self) -> int | None:
        return None if self.device is None else int(self.device["id"])


class AfterCommit(Protocol):
    """A phase-2 publisher. ``committed`` runs on the event loop right after the commit and must
    not block: work that waits (network, disk) goes to the publisher's own bounded queue."""

    name: str

    def committed(self, batch: Committed) -> None: ...


class MessageWriter(Protocol):
    async def ingest(self, batch: IngestBatch) -> None: ...


class _Turns:
    """Turns per key, in order of arrival, like one ``asyncio.Lock`` per key but without creating
    one for a key nobody else waits for (the usual case: one read of a device at a time). A key is
    in ``_waiting`` while its turn is held; its list holds the futures of those waiting after it."""

    def __init__(self) -> None:
        self._waiting: dict[Hashable, list[asyncio.Future[None]]] = {}

    async def acquire(self, key: Hashable) -> None:
        waiting = self._waiting.get(key)
        if waiting is None:
            self._waiting[key] = []
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiting.append(future)
        try:
            await future  # resolved by release(): the turn is handed over, the key stays held
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release(key)  # handed over just as the waiter was cancelled: pass it on
            elif future in waiting:
                waiting.remove(future)
            raise

    def release(self, key: Hashable) -> None:
        waiting = self._waiting[key]
        while waiting:
            future = waiting.pop(0)
            if not future.done():
                future.set_result(None)
                return
        del self._waiting[key]

    @asynccontextmanager
    async def turn(self, key: Hashable) -> AsyncIterator[None]:
        await self.acquire(key)
        try:
            yield
        finally:
            self.release(key)

    def __len__(self) -> int:
        return len(self._waiting)


class IngestService:
    def __init__(self, store: MessageWriter, pipeline: Pipeline, states: DeviceStates,
                 publishers: Sequence[AfterCommit] = ()) -> None:
        self._store = store
        self.pipeline = pipeline
        self._states = states
        self._publishers: list[AfterCommit] = list(publishers)
        self._turns = _Turns()
        self.publisher_failures = 0

    def add_publisher(self, publisher: AfterCommit) -> None:
        """Appends a phase-2 publisher (the composition root does this while wiring)."""
        self._publishers.append(publisher)

    @property
    def publishers(self) -> list[str]:
        return [p.name for p in self._publishers]

    async def with_state(self, device_id: int, change: Callable[[dict[str, Any]], T]) -> T:
        """Runs ``change`` on a device's handler states inside the device's turn, so it never
        interleaves with the device's messages (setting the odometer, marking it offline)."""
        async with self._turns.turn(device_id), self._states.borrowed(device_id):
            await self._states.ensure(device_id)
            return change(self._states.for_device(device_id))

    @asynccontextmanager
    async def device_turn(self, device_id: int) -> AsyncIterator[dict[str, Any]]:
        """Holds the device's turn (none of its messages is processed meanwhile) and gives its
        handler states, for work that awaits while it must not interleave with the device's
        messages (a recalculation swapping in the state it rebuilt)."""
        async with self._turns.turn(device_id), self._states.borrowed(device_id):
            await self._states.ensure(device_id)
            yield self._states.for_device(device_id)

    async def record_events(self, source: Source, device: Mapping[str, Any], events: list[dict[str, Any]],
                            now: float) -> None:
        """Stores events no message caused (``device.offline``) and runs phase 2 for them."""
        if not events:
            return
        async with self._turns.turn(device["id"]):
            await self._store.ingest(IngestBatch(events=events))
            self._phase_two(Committed(source, device, device.get("ident"), [], now, events))

    def _phase_two(self, committed: Committed) -> None:
        for publisher in self._publishers:
            try:
                publisher.committed(committed)
            except Exception:
                self.publisher_failures += 1
                log.exception("after-commit publisher %s failed on %d message(s) and %d event(s) of %s",
                              publisher.name, len(committed.messages), len(committed.events), committed.ident)

    async def ingest(self, source: Source, device: Mapping[str, Any] | None, ident: str | None,
                     messages: list[Message], now: float, records: IngestBatch | None = None) -> list[Message]:
        """Runs ``messages`` (decoded, as the device sent them) through the pipeline, commits them
        together with ``records`` (packets, logs, idents of the same read) in one transaction,
        then runs phase 2. Returns the stored messages. Store errors propagate: nothing of the
        batch is stored and phase 2 does not run."""
        batch = records if records is not None else IngestBatch()
        if not messages:
            if batch:
                await self._store.ingest(batch)
            return []
        # Digest first: the dedup key is what the device sent, whatever the handlers add later.
        digests = [device_digest(m) for m in messages]
        key: Hashable = device["id"] if device is not None else (source.protocol, ident)
        turns = self._turns
        await turns.acquire(key)  # (not ``async with turn()``: this runs once per read)
        try:
            if device is not None and self._states.per_device:  # several nodes: read when it arrives
                await self._states.ensure(device["id"])
            states = self._states.for_device(device["id"]) if device is not None else None
            ctx = Context(source.protocol, source.transport, source.peer, now, device, source.channel_id,
                          source.protocol_id, states)
            kept = self.pipeline.run(messages, ctx)
            if len(kept) != len(messages):
                by_object = {id(m): d for m, d in zip(messages, digests, strict=True)}
                digests = [by_object[id(m)] if id(m) in by_object else content_digest(m) for m in kept]
            batch.messages = kept
            batch.digests = digests
            batch.events = ctx.events
            batch.intervals = [i for i in ctx.intervals if not i["active"]]  # open ones live in the state
            await self._store.ingest(batch)
            if kept or ctx.events or ctx.intervals:
                self._phase_two(Committed(source, device, ident, kept, now, ctx.events, ctx.intervals))
        finally:
            turns.release(key)
        return kept
