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
    queue: asyncio.Queue[Event] = field(default_factory=lambda: asyncio.Queue(maxsize=10000))
    dropped: int = 0

    async def get(self) -> Event:
        return await self.queue.get()


class EventBus:
    def __init__(self) -> None:
        self._subs: set[Subscription] = set()

    def subscribe(self, accept: Callable[[Event], bool] = lambda _e: True, *, viewer: bool = False) -> Subscription:
        """A bounded queue of the events ``accept`` takes; ``viewer`` marks a person watching (the
        live stream), which a cluster node tells the others so they send their messages too."""
        sub = Subscription(accept, viewer)
        self._subs.add(sub)
        return sub

    @property
    def viewers(self) -> int:
        return sum(1 for sub in self._subs if sub.viewer)

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.discard(sub)

    @property
    def active(self) -> bool:
        return bool(self._subs)

    def publish(self, event: Event) -> None:
        """Offers ``event`` to every subscriber that accepts it; never blocks."""
        for sub in self._subs:
            if not sub.accept(event):
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
        if not bus.active:
            return
        device_id, protocol, ident = batch.device_id, batch.source.protocol, batch.ident
        for m in batch.messages:
            bus.publish({"type": "message", "device_id": device_id, "protocol": protocol, "ident": ident, "data": m})
        for e in batch.events:
            bus.publish({"type": "event", "device_id": device_id, "protocol": protocol, "ident": ident, "data": e})
