"""Live events between nodes: what happens on one node shows on every node's stream and console.

A node sends its own bus events (commands, connects, analytics events, intervals, packets) to
``sinogate.events.<node>`` in batches; message events only while another node has somebody on its
live stream (a fleet's full message rate would otherwise cross the network for nobody). Events
from other nodes are published on the local bus with ``"node": <origin>``, so a local integration
that acts on events (the MQTT bridge, metrics) can leave them to the node where they happened.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from sinogate.cluster.node import ClusterNode
from sinogate.model.device import BusEvent
from sinogate.server.bus import EventBus

log = logging.getLogger("sinogate.cluster")

BATCH = 100  # events per NATS message at most (a JT/T 808 message event is a few KB; NATS takes 1 MB)


class EventRelay:
    """Local bus → NATS, NATS → local bus. ``on_remote(event)`` sees every relayed event first
    (the runtime keeps its device registry's connection marks current with it)."""

    def __init__(self, node: ClusterNode, bus: EventBus,
                 on_remote: Callable[[BusEvent], None] | None = None) -> None:
        self._node = node
        self._bus = bus
        self._on_remote = on_remote

    def _local(self, event: BusEvent) -> bool:
        if "node" in event:
            return False  # relayed from elsewhere: never sent back
        # Messages and raw packets (the fleet's full rate) only while somebody elsewhere watches.
        return event["type"] not in ("message", "packet") or self._node.others_watching()

    async def run(self) -> None:
        """Forwards local events until cancelled; also tells the node whether anyone watches here."""
        await self._node.subscribe_events(self._received)
        sub = self._bus.subscribe(self._local)
        try:
            while True:
                try:
                    first = await asyncio.wait_for(sub.get(), self._node.heartbeat)
                except TimeoutError:
                    self._node.set_watching(self._bus.viewers > 0)
                    continue
                batch: list[Any] = [first]
                while len(batch) < BATCH and not sub.queue.empty():
                    batch.append(sub.queue.get_nowait())
                self._node.set_watching(self._bus.viewers > 0)
                try:
                    await self._node.publish_events(batch)
                except Exception as exc:  # NATS away: live views elsewhere miss these; nothing stored is lost
                    log.warning("could not relay %d live event(s): %s", len(batch), exc)
        finally:
            self._bus.unsubscribe(sub)

    def _received(self, node: str, events: list[dict[str, Any]]) -> None:
        for raw in events:
            if not isinstance(raw, dict) or "type" not in raw:
                continue
            event: Any = {**raw, "node": node}
            if self._on_remote is not None:
                try:
                    self._on_remote(event)
                except Exception:
                    log.exception("handling a relayed %s event failed", event.get("type"))
            self._bus.publish(event)
