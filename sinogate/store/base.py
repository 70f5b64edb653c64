"""The store contract: what every storage implementation promises, split into roles.

A store is chosen by URL (``sqlite:///path`` is the default, ``memory://`` is for unit tests; a
PostgreSQL implementation follows the same contract). One parametrized suite,
``tests/store/test_contract.py``, runs against every implementation, so a rule written here is a
rule tested everywhere.

Rules every implementation follows:

- **Durability.** A write resolves only once it is durable (committed): a session acknowledges a
  device only after ``ingest`` returned, so what a device was told is stored survives ``kill -9``.
- **Atomicity.** One ``ingest`` call is one transaction: all of its messages, packets, logs and
  idents are stored, or none and the call raises. Concurrent calls may share a transaction
  (group commit) but a failing call never undoes another's writes.
- **Dedup.** A message is stored once per ``(protocol, ident, timestamp, digest)``; the digest is
  computed over what the device sent (see ``sinogate.jsonenc.device_digest``) before the pipeline
  adds anything, so the same frame received twice (a device re-sending after a lost ack) is kept
  once. Storing a duplicate is not an error: it is silently skipped (idempotent).
- **Telemetry.** The latest value of every parameter per device, by *device* time; the rule lives
  in the pure module ``sinogate.store.telemetry`` and every implementation uses it.
- **Claiming.** Messages and packets stored while an ident was unknown (``device.id`` absent) are
  given to the device that is later created with that protocol and ident.
- **Times** are UNIX seconds as floats (UTC); ``TimeQuery`` bounds are inclusive; results come in
  ascending time order (then insertion order) unless ``reverse``; ``count`` limits after ordering.
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
PACKET_UDP = 128  # added to the type of a packet that came or went over UDP


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
class IdentSeen:
    """A connection named an ident: keeps the channel's list of idents (unknown ones too)."""

    protocol: str
    ident: str
    timestamp: float
    peer: str
    sample: bytes = b""
    device_id: int | None = None


@dataclass(slots=True)
class IngestBatch:
    """Everything written in one transaction (one read from a socket, one API call).

    ``messages`` are flat dicts that carry at least ``ident``, ``protocol.name``, ``timestamp``
    and ``server.timestamp`` and, once the device is known, ``device.id``; ``timestamp.flagged``
    keeps a message out of telemetry. ``digests``, when given, is parallel to ``messages``: the
    dedup digest of what the device sent, computed by the ingest service before the pipeline ran.
    Without it the store digests each message minus the fields the server adds on reception
    (``sinogate.jsonenc.content_digest``), for callers that write messages directly.
    """

    messages: list[Message] = field(default_factory=list)
    packets: list[PacketRecord] = field(default_factory=list)
    logs: list[LogRecord] = field(default_factory=list)
    idents: list[IdentSeen] = field(default_factory=list)
    digests: list[int] | None = None
    events: list[dict[str, Any]] = field(default_factory=list)  # see EventStore
    intervals: list[dict[str, Any]] = field(default_factory=list)  # closed intervals, see IntervalStore

    def __bool__(self) -> bool:
        return bool(self.messages or self.packets or self.logs or self.idents or self.events or self.intervals)

    def extend(self, other: IngestBatch) -> None:
        """Appends ``other``'s records (digests are kept only while both sides have them)."""
        if other.messages:
            if self.digests is not None and other.digests is not None:
                self.digests.extend(other.digests)
            elif self.messages:
                self.digests = None
            else:
                self.digests = list(other.digests) if other.digests is not None else None
            self.messages.extend(other.messages)
        self.packets.extend(other.packets)
        self.logs.extend(other.logs)
        self.idents.extend(other.idents)
        self.events.extend(other.events)
        self.intervals.extend(other.intervals)


@dataclass(slots=True)
class TimeQuery:
    """The ``data=`` parameters of flespi-style time-series routes (bounds inclusive, seconds)."""

    from_ts: float | None = None
    to_ts: float | None = None
    count: int | None = None
    reverse: bool = False


class StoreError(Exception):
    """A request the store refuses (unknown id, duplicate ident...); carries a reason for the API."""


class NotFound(StoreError):
    """The id names nothing stored."""


class Conflict(StoreError):
    """The write would break a uniqueness rule (two devices with one protocol and ident)."""


# --- roles -----------------------------------------------------------------------------------------

class DeviceStore(ABC):
    """Devices. A device dict carries: ``id`` (int, assigned by the store, never reused),
    ``name`` (str), ``ident`` (str), ``protocol`` (str), ``model`` and ``phone`` (str or None),
    ``settings`` (dict, free-form, validated by the registry), ``enabled`` (bool), ``connected``
    (bool), ``last_active`` (float or None), ``created`` (float), ``messages_ttl`` (int or None)."""

    @abstractmethod
    async def create_device(self, fields: dict[str, Any]) -> dict[str, Any]:
        """Creates a device from ``fields`` (``ident`` and ``protocol`` required) and returns it.

        Atomically claims what was stored under that protocol and ident while it was unknown
        (messages, packets, the ident record). Raises ``StoreError`` without ident or protocol,
        ``Conflict`` when a device with that protocol and ident exists."""

    @abstractmethod
    async def update_device(self, device_id: int, fields: dict[str, Any]) -> dict[str, Any]:
        """Changes the given columns (name, ident, protocol, model, phone, settings, enabled,
        messages_ttl; others are ignored) and returns the device. ``NotFound``, ``Conflict``."""

    @abstractmethod
    async def delete_device(self, device_id: int) -> None:
        """Removes the device, its telemetry and its handler state; its messages stay (as
        history, with their ``device.id``). Raises ``NotFound``."""

    @abstractmethod
    async def list_devices(self) -> list[dict[str, Any]]:
        """Every device, by id ascending."""

    @abstractmethod
    async def get_device(self, device_id: int) -> dict[str, Any]:
        """One device. Raises ``NotFound``."""

    @abstractmethod
    async def set_connected(self, device_id: int, connected: bool, last_active: float | None) -> None:
        """Records the connection state; ``last_active`` None keeps the stored one. An unknown id
        is ignored (the device may have been deleted while connected)."""


class MessageStore(ABC):
    """Messages: the flat JSON dicts of the product, stored exactly as encoded once."""

    @abstractmethod
    async def ingest(self, batch: IngestBatch) -> None:
        """Stores the batch atomically (messages deduplicated, telemetry updated by the rule of
        ``sinogate.store.telemetry``, packets, logs, idents upserted); returns once committed.

        An ident record keeps ``first_seen``, moves ``last_seen`` and ``peer``, and keeps a known
        ``device_id`` when the new record has none."""

    @abstractmethod
    async def messages(
        self, device_ids: list[int] | None, query: TimeQuery, protocol: str | None = None
    ) -> list[Message]:
        """Messages of these devices (``None``: any, including unknown idents) by device time."""

    @abstractmethod
    async def messages_raw(
        self, device_ids: list[int] | None, query: TimeQuery, protocol: str | None = None
    ) -> list[str]:
        """The same rows as stored JSON text, for routes that pass them through unparsed."""

    @abstractmethod
    def iter_messages(self, device_id: int, query: TimeQuery, chunk: int = 2000) -> AsyncIterator[Message]:
        """One device's messages in ascending time order, fetched ``chunk`` at a time (constant
        memory for exports); ``query.reverse`` is ignored, ``query.count`` bounds the total."""

    @abstractmethod
    async def delete_messages(self, device_ids: list[int], query: TimeQuery) -> int:
        """Deletes the devices' messages in the time range; returns how many. Telemetry stays."""


class TelemetryStore(ABC):
    """Latest values per device: ``{name: {"value": v, "ts": device time}}``."""

    @abstractmethod
    async def telemetry(self, device_id: int, names: list[str] | None = None) -> dict[str, dict[str, Any]]:
        """The device's telemetry (all names, or those of ``names`` it has); ``{}`` when none."""

    @abstractmethod
    async def delete_telemetry(self, device_id: int, names: list[str] | None = None) -> int:
        """Forgets the latest values (all, or the named ones); returns how many were removed."""

    async def release_telemetry(self, device_id: int, write_back: bool = True) -> None:
        """Several nodes on one store: this node stops ingesting the device (it connected to
        another node, or another node forgot values of it), so a cached copy of its telemetry is
        written back (unless ``write_back`` is False) and dropped. A store whose telemetry is not
        cached per node has nothing to do."""
        return None


class TrafficStore(ABC):
    """Raw packets, connection and command logs, and the idents each channel has seen."""

    @abstractmethod
    async def packets(
        self,
        query: TimeQuery,
        device_ids: list[int] | None = None,
        protocol: str | None = None,
        ident: str | None = None,
    ) -> list[dict[str, Any]]:
        """Packets as ``{id, timestamp, type, conn, protocol, peer, ident, device_id, data: bytes}``
        by time (then id)."""

    @abstractmethod
    async def logs(
        self, query: TimeQuery, device_ids: list[int] | None = None, protocol: str | None = None
    ) -> list[dict[str, Any]]:
        """Log records as dicts with the ``LogRecord`` fields plus ``id``, by time (then id)."""

    @abstractmethod
    async def idents(self, protocol: str | None = None) -> list[dict[str, Any]]:
        """Every ident seen: protocol, ident, first_seen, last_seen, peer, sample (hex), device_id;
        the most recently seen first."""


class EventStore(ABC):
    """Analytics events: ``{"id", "device.id", "timestamp" (device time of the message that caused
    it), "type", ...}`` — flat dicts like messages. ``ingest`` stores ``IngestBatch.events`` in the
    batch's transaction and sets each event's ``id`` (int, increasing) in place."""

    @abstractmethod
    async def events(self, device_ids: list[int] | None, query: TimeQuery,
                     types: list[str] | None = None) -> list[dict[str, Any]]:
        """Events of these devices (``None``: all) by time then id; ``types`` keeps those types."""


class IntervalStore(ABC):
    """Closed intervals of calculators (``sinogate.analytics``): flat dicts ``{"id", "calc.id",
    "device.id", "begin", "end", "duration", ...}`` stored as given (JSON) apart from ``id``.
    ``ingest`` stores ``IngestBatch.intervals`` in the batch's transaction and sets each
    interval's ``id`` (int, increasing) in place, like events. Open (active) intervals are never
    stored: they live in the handler state."""

    @abstractmethod
    async def intervals(self, calc_ids: list[int] | None, device_ids: list[int] | None,
                        query: TimeQuery) -> list[dict[str, Any]]:
        """Intervals of these calcs and devices (``None``: all) that overlap the query's span
        (``end`` ≥ ``from_ts`` and ``begin`` ≤ ``to_ts``, bounds inclusive), ordered by ``begin``
        then id (both descending when ``reverse``), ``count`` applied after ordering."""

    @abstractmethod
    async def replace_intervals(self, calc_id: int, device_id: int, begin: float, end: float | None,
                                intervals: list[dict[str, Any]]) -> list[int]:
        """Recalculation, in one transaction: deletes the calc's intervals of the device whose
        ``begin`` lies in [``begin``, ``end``] (``end`` None: no upper bound), stores ``intervals``
        (setting their ``id`` in place) and returns the ids it deleted, ascending."""

    @abstractmethod
    async def delete_intervals(self, calc_id: int, device_ids: list[int] | None = None) -> int:
        """Deletes every interval of the calc (of these devices only, when given); returns how many."""


class CommandStore(ABC):
    """Commands. A command dict has the columns of ``COMMAND_FIELDS``; ``properties``, ``reply``
    and ``match`` are JSON values, ``payload`` bytes, ``realtime`` and ``executed`` booleans.
    The lifecycle (which status may follow which) is the command service's, not the store's."""

    @abstractmethod
    async def create_command(self, fields: dict[str, Any]) -> dict[str, Any]:
        """Stores a new command and returns it with its ``id``; ``status`` defaults to
        ``"queued"`` and ``created`` to now when the caller leaves them out."""

    @abstractmethod
    async def update_command(self, command_id: int, fields: dict[str, Any]) -> dict[str, Any]:
        """Changes the given fields and returns the command. Raises ``NotFound``."""

    @abstractmethod
    async def get_command(self, command_id: int) -> dict[str, Any]:
        """One command. Raises ``NotFound``."""

    @abstractmethod
    async def commands(
        self,
        device_ids: list[int] | None = None,
        statuses: tuple[str, ...] | None = None,
        query: TimeQuery | None = None,
    ) -> list[dict[str, Any]]:
        """Commands filtered by device and status, ordered by ``created`` (then id); the query's
        time bounds apply to ``created``."""


class KeyValueStore(ABC):
    """Small JSON documents by (namespace, key): settings shadow, tokens, server secrets."""

    @abstractmethod
    async def kv_get(self, namespace: str, key: str) -> Any | None:
        """The value, or ``None`` when absent."""

    @abstractmethod
    async def kv_set(self, namespace: str, key: str, value: Any) -> None:
        """Stores (replaces) a JSON-serializable value."""

    @abstractmethod
    async def kv_delete(self, namespace: str, key: str) -> None:
        """Removes the key; absent keys are ignored."""

    @abstractmethod
    async def kv_list(self, namespace: str) -> dict[str, Any]:
        """Every key of the namespace, sorted by key."""


class StateStore(ABC):
    """Per-device state of the pipeline handlers (trip in progress, geofence membership, ...),
    so a restart or another node resumes where processing stopped."""

    @abstractmethod
    async def load_states(self, device_ids: list[int] | None = None) -> dict[int, dict[str, Any]]:
        """Every device's saved state (or only these devices'): ``{device_id: {handler name: JSON
        value}}``; a device without saved state is absent."""

    @abstractmethod
    async def save_states(self, states: dict[int, dict[str, Any]]) -> None:
        """Replaces the saved state of each device given; others are left alone."""


class Store(DeviceStore, MessageStore, TelemetryStore, TrafficStore, EventStore, IntervalStore, CommandStore,
            KeyValueStore, StateStore):
    """Persistent state of the gateway: every role plus the lifecycle."""

    @abstractmethod
    async def open(self) -> None:
        """Creates or upgrades the schema (versioned migrations) and loads what lives in memory."""

    @abstractmethod
    async def close(self) -> None:
        """Flush every pending write, then close. Later calls raise ``StoreError``."""

    @abstractmethod
    async def purge(self, messages_before: float | None, packets_before: float | None) -> dict[str, int]:
        """Retention: deletes messages received (server time) and packets/logs before the given
        times; returns ``{"messages": n, "packets": n, "logs": n}``."""


COMMAND_FIELDS = (
    "id", "device_id", "ident", "protocol", "name", "properties", "status", "realtime", "created", "expire",
    "attempts", "max_attempts", "sent", "finished", "executed", "response", "reply", "match", "payload",
    "reason",
)
