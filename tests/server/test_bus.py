"""The live-event bus tells publishers which event types anyone takes, so that a server whose
only subscribers are integrations (metrics: commands; MQTT: commands and intervals) builds no
event per stored message or raw packet."""

from __future__ import annotations

import asyncio
from typing import Any

from sinogate.ingest import Committed, Source
from sinogate.server.bus import EventBus, MessageEvents


def _committed(n: int) -> Committed:
    source = Source("h02", "tcp", "127.0.0.1:1", 1, 1)
    messages: list[dict[str, Any]] = [{"ident": "1", "timestamp": float(i)} for i in range(n)]
    return Committed(source, {"id": 5, "ident": "1"}, "1", messages, 1.0,
                     events=[{"type": "geofence.enter", "timestamp": 1.0}])


def test_wants_follows_the_subscribers_types() -> None:
    async def main() -> None:
        bus = EventBus()
        assert not bus.wants("message")
        offered: list[str] = []
        metrics = bus.subscribe(lambda e: offered.append(e["type"]) is None, types=frozenset({"command"}))
        assert bus.wants("command") and not bus.wants("message") and not bus.wants("packet")
        MessageEvents(bus).committed(_committed(3))
        assert metrics.queue.empty()  # nothing built for it, nothing offered
        viewer = bus.subscribe(lambda e: True, viewer=True)  # the live stream takes any type
        assert bus.wants("message") and bus.wants("packet")
        MessageEvents(bus).committed(_committed(3))
        got = [viewer.queue.get_nowait() for _ in range(viewer.queue.qsize())]
        assert [e["type"] for e in got] == ["message", "message", "message", "event"]
        assert got[0]["device_id"] == 5 and got[2]["data"] == {"ident": "1", "timestamp": 2.0}
        assert metrics.queue.empty() and offered == []  # other types are not even offered to it
        bus.publish({"type": "command", "device_id": 5, "protocol": "h02", "ident": "1", "data": {}})
        assert offered == ["command"] and metrics.queue.qsize() == 1
        bus.unsubscribe(viewer)
        assert not bus.wants("message") and bus.wants("command")
        bus.unsubscribe(metrics)
        assert not bus.wants("command")

    asyncio.run(main())
