"""Synthetic tracks and a pipeline without a server, for the calcs tests."""

from __future__ import annotations

import asyncio
from typing import Any

from sinogate.analytics.calcs import CalcRegistry
from sinogate.pipeline.base import Context, Handler, Message
from sinogate.pipeline.calcs import Calcs
from sinogate.pipeline.filters import Filters
from sinogate.pipeline.odometer import Odometer
from sinogate.pipeline.runner import Pipeline
from sinogate.pipeline.time_sanity import TimeSanity
from sinogate.store.memory import MemoryStore

T0 = 1_750_000_000.0  # device time of the first message
KM_PER_DEG_LAT = 111.25  # near 52° N


class Route:
    """A vehicle driving north and parking, one message every ``every`` seconds."""

    def __init__(self, t0: float = T0, lat: float = 52.0, lon: float = 13.0) -> None:
        self.t = t0
        self.lat = lat
        self.lon = lon

    def _message(self, speed: float, extra: dict[str, Any]) -> Message:
        return {"timestamp": self.t, "position.latitude": round(self.lat, 7), "position.longitude": self.lon,
                "position.valid": True, "position.speed": speed, **extra}

    def drive(self, seconds: float, speed: float = 60.0, every: float = 30.0, **extra: Any) -> list[Message]:
        out = []
        for _ in range(int(seconds // every)):
            self.t += every
            self.lat += speed * every / 3600.0 / KM_PER_DEG_LAT
            out.append(self._message(speed, extra))
        return out

    def park(self, seconds: float, every: float = 60.0, **extra: Any) -> list[Message]:
        out = []
        for _ in range(int(seconds // every)):
            self.t += every
            out.append(self._message(0.0, extra))
        return out

    def silence(self, seconds: float) -> None:
        self.t += seconds


def registry(store: MemoryStore | None = None) -> CalcRegistry:
    store = store or MemoryStore()

    async def load() -> CalcRegistry:
        await store.open()
        calcs = CalcRegistry(store)
        await calcs.load()
        return calcs

    return asyncio.run(load())


class Track:
    """One device's pipeline (time check, filters, odometer, calcs) and state across batches."""

    def __init__(self, settings: dict[str, Any] | None = None, config: dict[str, Any] | None = None,
                 calcs: CalcRegistry | None = None, extra: list[Handler] | None = None) -> None:
        cfg = config or {}
        self.calcs = calcs or registry()
        self.handler = Calcs(cfg, self.calcs)
        self.pipeline = Pipeline([TimeSanity(cfg), Filters(cfg), Odometer(cfg), *(extra or []), self.handler])
        self.device: dict[str, Any] = {"id": 7, "name": "van", "ident": "7", "protocol": "h02",
                                       "settings": settings or {}}
        self.states: dict[str, Any] = {}
        self.events: list[dict[str, Any]] = []
        self.changes: list[dict[str, Any]] = []

    def feed(self, messages: list[Message], batch: int = 1) -> None:
        for i in range(0, len(messages), batch):
            ctx = Context("h02", "tcp", "peer", T0 + 100 * 86400, self.device, 1, 1, self.states)
            self.pipeline.run([{"ident": "7", "device.id": 7, **m} for m in messages[i:i + batch]], ctx)
            self.events += ctx.events
            self.changes += ctx.intervals

    def closed(self, calc_id: int) -> list[dict[str, Any]]:
        return [i for i in self.changes if not i["active"] and i["calc.id"] == calc_id]

    def active(self, now: float = T0) -> list[dict[str, Any]]:
        return self.handler.active(self.states, self.device, now)
