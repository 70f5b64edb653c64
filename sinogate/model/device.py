"""The typed shapes that travel far: a device, a live-stream event.

Devices and events stay plain dicts at run time (they are the product's JSON and cross the store,
the API and the stream unchanged); these ``TypedDict`` declarations give them a checked shape.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict


class Device(TypedDict):
    """A device as the store and the registry hold it (see ``sinogate.store.base.DeviceStore``)."""

    id: int
    name: str
    ident: str
    protocol: str
    model: str | None
    phone: str | None
    settings: dict[str, Any]
    enabled: bool
    connected: bool
    last_active: float | None
    created: float
    messages_ttl: int | None


EventType = Literal["message", "packet", "command", "log", "event", "interval"]


class BusEvent(TypedDict):
    """One event of the in-process bus (live stream, console): ``data`` is the message, the
    packet ``{timestamp, type, conn, hex}``, the command (``public`` shape) or the log entry."""

    type: EventType
    device_id: int | None
    protocol: str | None
    ident: str | None
    data: dict[str, Any]
    node: NotRequired[str]  # the node it happened on, when relayed from another node of a cluster
