"""A device's whole analytics path without sockets: ingest service, memory store, calcs,
recalculation (the pieces the runtime wires, built here by hand)."""

from __future__ import annotations

from typing import Any

from sinogate.analytics.calcs import CalcRegistry
from sinogate.analytics.publish import IntervalEvents
from sinogate.analytics.recalc import Recalculator
from sinogate.ingest import IngestService, Source
from sinogate.pipeline.base import Handler, Message
from sinogate.pipeline.calcs import Calcs
from sinogate.pipeline.edges import StateEdges
from sinogate.pipeline.enrich import Enrich
from sinogate.pipeline.filters import Filters
from sinogate.pipeline.odometer import Odometer
from sinogate.pipeline.runner import Pipeline
from sinogate.pipeline.state import DeviceStates
from sinogate.pipeline.time_sanity import TimeSanity
from sinogate.server.bus import EventBus
from sinogate.store.base import TimeQuery
from sinogate.store.memory import MemoryStore

SOURCE = Source("h02", "tcp", "test", 1, 1)


class Devices:
    def __init__(self) -> None:
        self.devices: dict[int, dict[str, Any]] = {}

    def all(self) -> list[dict[str, Any]]:
        return list(self.devices.values())


class Analytics:
    """Build with ``await Analytics.open()``; ``feed`` ingests like a device would."""

    def __init__(self, config: dict[str, Any] | None = None, extra: list[Handler] | None = None) -> None:
        cfg = config or {}
        self.store = MemoryStore()
        self.calcs = CalcRegistry(self.store, cfg)
        self.handler = Calcs(cfg, self.calcs)
        self.pipeline = Pipeline([Enrich(cfg), TimeSanity(cfg), Filters(cfg), Odometer(cfg), StateEdges(cfg),
                                  *(extra or []), self.handler])
        self.states = DeviceStates(self.store)
        self.bus = EventBus()
        self.publisher = IntervalEvents(self.bus)
        self.ingest = IngestService(self.store, self.pipeline, self.states, [self.publisher])
        self.devices = Devices()
        self.recalc = Recalculator(self.store, self.pipeline.handlers, self.calcs, self.ingest, self.states,
                                   self.devices, self.publisher)

    @classmethod
    async def open(cls, config: dict[str, Any] | None = None, extra: list[Handler] | None = None) -> Analytics:
        self = cls(config, extra)
        await self.store.open()
        await self.calcs.load()
        return self

    async def device(self, ident: str = "7", **settings: Any) -> dict[str, Any]:
        device = await self.store.create_device({"ident": ident, "protocol": "h02", "name": f"dev-{ident}",
                                                 "settings": settings})
        self.devices.devices[device["id"]] = device
        return device

    async def feed(self, device: dict[str, Any], messages: list[Message], batch: int = 1) -> None:
        for i in range(0, len(messages), batch):
            part = [{"ident": device["ident"], **m} for m in messages[i:i + batch]]
            await self.ingest.ingest(SOURCE, device, device["ident"], part, part[-1]["timestamp"])

    async def intervals(self, device: dict[str, Any], calc_ids: list[int] | None = None) -> list[dict[str, Any]]:
        return await self.store.intervals(calc_ids, [device["id"]], TimeQuery())

    def active(self, device: dict[str, Any], now: float) -> list[dict[str, Any]]:
        return self.handler.active(self.states.peek(device["id"]), device, now)


def without_ids(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The intervals minus their ids (a recalculation stores new ones), by calc, then begin."""
    out = [{k: v for k, v in i.items() if k != "id"} for i in items]
    return sorted(out, key=lambda i: (i["calc.id"], i["begin"], str(i.get("geofence.id"))))
