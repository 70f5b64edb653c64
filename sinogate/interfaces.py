"""The small typed interfaces components receive instead of the whole process.

The composition root (``sinogate.runtime``) builds the objects that implement them; a component
names only what it uses, so a test can hand it a fake.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol

from sinogate.codecs.base import EncodedCommand
from sinogate.store.base import IngestBatch

if TYPE_CHECKING:
    import asyncio

    from sinogate.model.device import BusEvent

Clock = Callable[[], float]
"""UNIX seconds now; ``time.time`` in production, a settable value in tests."""


class TaskRunner(Protocol):
    """Runs background coroutines that the runtime waits for (or cancels) on shutdown; a failure
    is logged, never lost."""

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]: ...


class EventSink(Protocol):
    """The live-event bus as a publisher sees it. ``wants(type)`` is False when no subscriber
    takes events of that type, so a publisher can skip building them."""

    def wants(self, kind: str) -> bool: ...

    def publish(self, event: BusEvent) -> None: ...


class LaterWriter(Protocol):
    """Writes nothing waits on (sent bytes, log lines): gathered briefly and stored together,
    flushed before exit."""

    def store_later(self, batch: IngestBatch) -> None: ...


class DeviceConnection(Protocol):
    """A live connection of a device as the rest of the process sees it (a TCP connection or a
    UDP peer). ``send`` raises ``ConnectionError`` when the connection is gone."""

    conn_id: int
    protocol: str
    channel_id: int
    peer: str
    transport_name: str
    ident: str | None
    opened: float
    last_active: float
    last_frame: float
    closed: bool

    @property
    def device_id(self) -> int | None: ...

    def send(self, data: bytes) -> None: ...

    def close(self, reason: str) -> None: ...

    def encode_command(self, name: str, properties: dict[str, Any], now: float) -> EncodedCommand: ...

    def info(self) -> dict[str, Any]: ...


class SessionLookup(Protocol):
    """Which connection currently speaks for a device."""

    def session_for(self, device_id: int) -> DeviceConnection | None: ...


class SessionListener(Protocol):
    """Told when a connection starts or stops speaking for a device (the command service)."""

    def on_attach(self, session: DeviceConnection) -> None: ...

    def on_detach(self, session: DeviceConnection) -> None: ...


class CommandRouting(Protocol):
    """Where a device's connection is when it is not on this node (several nodes, ``cluster``):
    the command service forwards what needs the connection to that node."""

    name: str

    async def owner(self, device_id: int) -> str | None:
        """The live node holding the device's connection (possibly this one), or ``None``."""

    async def request(self, node: str, op: str, payload: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Asks ``node`` to run ``op``; raises an exception when it does not answer in time."""
