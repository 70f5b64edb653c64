"""The storage interface. SQLite is the default implementation; a PostgreSQL one follows the same
contract. Everything is async for the callers; implementations batch writes and resolve a write
only once it is durable (committed), which is what lets a session acknowledge a device safely.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

Message = dict[str, Any]

PACKET_CONNECT = 0
PACKET_DISCONNECT = 1
PACKET_RECEIVED = 2
PACKET_SENT = 3
PACKET_UDP = 128


@dataclass(slots=True)
class PacketRecord:
    """One raw-traffic event: a connection opened or closed, bytes received or sent."""

    timestamp: float
    type: int
    conn: int
    protocol: str
    peer: str
    ident: str | None = None
    device_id: int | None = None
    data: bytes = b""


@dataclass(slots=True)
class LogRecord:
    """A connection (or command) event in a device's or channel's log."""

    timestamp: float
    event: str
    protocol: str
    conn: int | None = None
    ident: str | None = None
    device_id: int | None = None
    peer: str | None = None
    transport: str = "tcp"
    recv: int = 0
    send: int = 0
    msgs: int = 0
    duration: float | None = None
    reason: str | None = None


@dataclass(slots=True)
class IngestBatch:
    """Everything a session hands over for one read from the socket, written in one transaction."""

    messages: list[Message] = field(default_factory=list)
    packets: list[PacketRecord] = field(default_factory=list)
    logs: list[LogRecord] = field(default_factory=list)
    idents: list[IdentSeen] = field(default_factory=list)


@dataclass(slots=True)
class IdentSeen:
    """A connection named an ident: keeps the channel's list of idents (unknown ones too)."""

    protocol: str
    ident: str
    timestamp: float
    peer: str
    sample: bytes = b""
    device_id: int | None = None


@dataclass(slots=True)
class TimeQuery:
    """The ``data=`` parameters of flespi-style time-series routes."""

    from_ts: float | None = None
    to_ts: float | None = None
    count: int | None = None
    reverse: bool = False


class StoreError(Exception):
    """A request the store refuses (unknown id, duplicate ident...); carries a reason for the API."""


class NotFound(StoreError):
    pass


class Conflict(StoreError):
    pass



class Store(ABC):
    """Persistent state of the gateway. Device dicts carry: id, name, ident, protocol, model,
    phone, settings (dict), enabled, connected, last_active, created, messages_ttl."""

    # lifecycle
    @abstractmethod
    async def open(self) -> None: ...

    @abstractmethod
    async def close(self) -> None:
        """Flush every pending write, then close."""

    # devices
    @abstractmethod
    async def create_device(self, fields: dict[str, Any]) -> dict[str, Any]: ...

    @abstractmethod
    async def update_device(self, device_id: int, fields: dict[str, Any]) -> dict[str, Any]: ...

    @abstractmethod
    async def delete_device(self, device_id: int) -> None: ...

    @abstractmethod
    async def list_devices(self) -> list[dict[str, Any]]: ...

    @abstractmethod
    async def get_device(self, device_id: int) -> dict[str, Any]:
        """Raises NotFound."""

    @abstractmethod
    async def set_connected(self, device_id: int, connected: bool, last_active: float | None) -> None: ...

    # ingest
    @abstractmethod
    async def ingest(self, batch: IngestBatch) -> None:
        """Store messages (deduplicated), update telemetry, store packets and logs; returns once
        committed."""

    # time series
    @abstractmethod
    async def messages(
        self, device_ids: list[int] | None, query: TimeQuery, protocol: str | None = None
    ) -> list[Message]: ...

    @abstractmethod
    async def messages_raw(
        self, device_ids: list[int] | None, query: TimeQuery, protocol: str | None = None
    ) -> list[str]:
        """The same rows as stored JSON text, for routes that pass them through unparsed."""

    @abstractmethod
    def iter_messages(self, device_id: int, query: TimeQuery, chunk: int = 2000) -> AsyncIterator[Message]:
        """Messages in time order, fetched in chunks: constant memory for exports."""

    @abstractmethod
    async def delete_messages(self, device_ids: list[int], query: TimeQuery) -> int: ...

    @abstractmethod
    async def telemetry(self, device_id: int, names: list[str] | None = None) -> dict[str, dict[str, Any]]: ...

    @abstractmethod
    async def delete_telemetry(self, device_id: int, names: list[str] | None = None) -> int:
        """Forgets the latest values (all, or the named ones); returns how many were removed."""

    @abstractmethod
    async def packets(
        self,
        query: TimeQuery,
        device_ids: list[int] | None = None,
        protocol: str | None = None,
        ident: str | None = None,
    ) -> list[dict[str, Any]]: ...

    @abstractmethod
    async def logs(
        self, query: TimeQuery, device_ids: list[int] | None = None, protocol: str | None = None
    ) -> list[dict[str, Any]]: ...

    @abstractmethod
    async def idents(self, protocol: str | None = None) -> list[dict[str, Any]]:
        """Every ident seen: protocol, ident, first_seen, last_seen, peer, sample (hex), device_id."""

    # commands
    @abstractmethod
    async def create_command(self, fields: dict[str, Any]) -> dict[str, Any]: ...

    @abstractmethod
    async def update_command(self, command_id: int, fields: dict[str, Any]) -> dict[str, Any]: ...

    @abstractmethod
    async def get_command(self, command_id: int) -> dict[str, Any]: ...

    @abstractmethod
    async def commands(
        self,
        device_ids: list[int] | None = None,
        statuses: tuple[str, ...] | None = None,
        query: TimeQuery | None = None,
    ) -> list[dict[str, Any]]: ...

    # key/value (settings shadow, tokens, server secrets)
    @abstractmethod
    async def kv_get(self, namespace: str, key: str) -> Any | None: ...

    @abstractmethod
    async def kv_set(self, namespace: str, key: str, value: Any) -> None: ...

    @abstractmethod
    async def kv_delete(self, namespace: str, key: str) -> None: ...

    @abstractmethod
    async def kv_list(self, namespace: str) -> dict[str, Any]: ...

    # retention
    @abstractmethod
    async def purge(self, messages_before: float | None, packets_before: float | None) -> dict[str, int]: ...
