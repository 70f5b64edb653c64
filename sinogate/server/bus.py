"""In-process event bus for live views (SSE stream, console, MQTT bridge).

Publishing never blocks ingest: each subscriber has a bounded queue and a slow subscriber loses
events (and is told how many) rather than slowing the devices down.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from sinogate.ingest import Committed
from sinogate.model.device import BusEvent

Event = BusEvent


@dataclass(eq=False)
class Subscription:
    accept: Callable[[Event], bool]
    viewer: bool = False  # a person watching (stream, console), not an integration
    types: frozenset[str] | None = None  # the event types offered to ``accept`` (None: every type)
    queue: asyncio.Queue[Event] = field(default_factory=lambda: asyncio.Queue(maxsize=10000))
    dropped: int = 0

    async def get(self) -> Event:
        return await self.queue.get()


class EventBus:
    def __init__(self) -> None:
        self._subs: set[Subscription] = set()
        self._wanted: dict[str, bool] = {}  # event type → some subscriber may take it (cleared on changes)

    def subscribe(self, accept: Callable[[Event], bool] = lambda _e: True, *, viewer: bool = False,
                  types: frozenset[str] | None = None) -> Subscription:
        """A bounded queue of the events ``accept`` takes; ``viewer`` marks a person watching (the
        live stream), which a cluster node tells the others so they send their messages too.
        ``types``, when given, are the only event types offered to ``accept``; publishers skip
        building the others (a message event per stored message) when nobody takes them."""
        sub = Subscription(accept, viewer, types)
        self._subs.add(sub)
        self._wanted.clear()
        return sub

    @property
    def viewers(self) -> int:
        return sum(1 for sub in self._subs if sub.viewer)

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.discard(sub)
        self._wanted.clear()

    def wants(self, kind: str) -> bool:
        """Whether some subscriber may take events of type ``kind`` (publishers ask before building
        one: a message event per stored message, a packet's hex per read)."""
        wanted = self._wanted.get(kind)
        if wanted is None:
            wanted = self._wanted[kind] = any(sub.types is None or kind in sub.types for sub in self._subs)
        return wanted

    def publish(self, event: Event) -> None:
        """Offers ``event`` to every subscriber of its type that accepts it; never blocks."""
        kind = event["type"]
        for sub in self._subs:
            if (sub.types is not None and kind not in sub.types) or not sub.accept(event):
                continue
            try:
                sub.queue.put_nowait(event)
            except asyncio.QueueFull:
                sub.dropped += 1


class MessageEvents:
    """After-commit publisher: every stored message becomes a ``message`` event on the bus, every
    analytics event an ``event`` event."""

    name = "stream"

    def __init__(self, bus: EventBus) -> None:
        self._bus = bus

    def committed(self, batch: Committed) -> None:
        bus = self._bus
        device_id, protocol, ident = batch.device_id, batch.source.protocol, batch.ident
        if batch.messages and bus.wants("message"):
            for m in batch.messages:
                bus.publish({"type": "message", "device_id": device_id, "protocol": protocol, "ident": ident,
                             "data": m})
        if batch.events and bus.wants("event"):
            for e in batch.events:
                bus.publish({"type": "event", "device_id": device_id, "protocol": protocol, "ident": ident,
                             "data": e})
