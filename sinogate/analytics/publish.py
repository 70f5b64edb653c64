"""Interval changes on the live bus (SSE ``event: interval``), after the commit.

Each change is a bus event ``{"type": "interval", "device_id", "protocol", "ident", "data":
{<the interval>, "change": "created" | "updated" | "deleted"}}``:

- ``created``: an interval was confirmed and is open (``"active": true``, no ``id`` yet), an
  offline gap was recorded, or a recalculation stored a rebuilt interval;
- ``updated``: an open interval closed and was stored (``"active": false``, with its ``id``);
- ``deleted``: a recalculation removed a stored interval (``{"id", "calc.id", "device.id"}``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sinogate.analytics.calcs import OFFLINE
from sinogate.ingest import Committed
from sinogate.interfaces import EventSink


class IntervalEvents:
    """The after-commit publisher of interval changes (and of recalculations' replacements)."""

    name = "intervals"

    def __init__(self, bus: EventSink) -> None:
        self._bus = bus

    def committed(self, batch: Committed) -> None:
        if not batch.intervals or not self._bus.wants("interval"):
            return
        device_id, protocol, ident = batch.device_id, batch.source.protocol, batch.ident
        for item in batch.intervals:
            change = "created" if item["active"] or item["calc.id"] == OFFLINE else "updated"
            self._bus.publish({"type": "interval", "device_id": device_id, "protocol": protocol, "ident": ident,
                               "data": {**item, "change": change}})

    def replaced(self, device: Mapping[str, Any], deleted: list[dict[str, Any]],
                 created: list[dict[str, Any]]) -> None:
        """A recalculation's changes: ``deleted`` (``{"id", "calc.id"}``), then the new intervals."""
        if not self._bus.wants("interval"):
            return
        device_id, protocol, ident = int(device["id"]), device.get("protocol"), device.get("ident")
        for item in deleted:
            self._bus.publish({"type": "interval", "device_id": device_id, "protocol": protocol, "ident": ident,
                               "data": {**item, "device.id": device_id, "change": "deleted"}})
        for item in created:
            self._bus.publish({"type": "interval", "device_id": device_id, "protocol": protocol, "ident": ident,
                               "data": {**item, "change": "created"}})
