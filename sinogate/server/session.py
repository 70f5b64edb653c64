"""One device connection: frames in, durable messages, protocol replies out.

The order inside ``process`` is the durability contract: decode → ingest service (pipeline, then
await the commit) → only then write the protocol replies. A device that got an acknowledgement
can forget the data; we must not have lost it.

A session gets only what it shares with the others (uvicorn's shape): its channel, and
``SessionServices`` — the ingest port, the device directory, the session registry, deferred
writes and the event sink. Never the process.

One connection, one device. The first frame that names an ident (and decodes) identifies the
connection; a frame without an ident belongs to the connection's device; every stored message
carries its device's ident. A frame naming another ident on an identified connection is refused
(not stored as a message, not answered, kept in the raw packets with a ``ident.refused`` log
record, counted in ``refused``) unless the channel follows ident switches (``follow_ident``).
Messages that no device can take (no ident on an unidentified connection) are not stored as
messages either. A frame that the codec reports with errors and no message is logged as a
``frame.error`` record next to its raw packet.

A codec may hold the end of a frame it cannot delimit yet (an H02 binary frame of an unusual
length); when the device stays silent for ``FLUSH_AFTER`` seconds the session asks the codec to
``flush`` it, so that a complete position is stored and acknowledged without waiting for the
next report; at the end of the connection what the codec still holds is stored too (it can no
longer be acknowledged).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from dataclasses import dataclass
from typing import Any

from sinogate.codecs import EncodedCommand, Frame, ProtocolConnection, connection_class
from sinogate.ingest import IngestService, Source
from sinogate.interfaces import EventSink, LaterWriter
from sinogate.server.channels import Channel
from sinogate.server.devices import DeviceRegistry
from sinogate.server.registry import SessionRegistry
from sinogate.store.base import (
    PACKET_CONNECT,
    PACKET_DISCONNECT,
    PACKET_RECEIVED,
    PACKET_SENT,
    PACKET_UDP,
    Conflict,
    IdentSeen,
    IngestBatch,
    LogRecord,
    MessageStore,
    PacketRecord,
)

log = logging.getLogger("sinogate.session")

_conn_ids = itertools.count(int(time.time() * 1000) % 1_000_000_000 * 10)

# Raw traffic seen before a connection names its device is held (bounded) and then filed under it.
_MAX_PENDING_PACKETS = 64
# Seconds of silence after which a frame the codec could not delimit yet is handed out (flush).
FLUSH_AFTER = 1.0


def next_conn_id() -> int:
    return next(_conn_ids)


@dataclass(frozen=True, slots=True)
class SessionServices:
    """What every session of the process shares (built once by the composition root)."""

    ingest: IngestService
    devices: DeviceRegistry
    registry: SessionRegistry
    store: MessageStore  # for connection records that carry no message
    later: LaterWriter
    events: EventSink
    garbage_limit: int


class Session:
    """State shared by TCP and UDP sessions; a subclass owns the transport."""

    transport_name = "tcp"

    def __init__(self, services: SessionServices, channel: Channel, peer: str) -> None:
        self.services = services
        self.channel = channel
        self.channel_id = channel.id
        self.protocol = channel.protocol
        self.peer = peer
        self.conn_id = next_conn_id()
        self.opened = time.time()
        devices = services.devices
        protocol = self.protocol
        self.codec: ProtocolConnection = connection_class(protocol)(
            settings=lambda ident: devices.settings_for(protocol, ident),
            transport=self.transport_name,
        )
        self.source = Source(protocol, self.transport_name, peer, channel.id, channel.protocol_id, self.conn_id)
        self.ident: str | None = None
        self.device: dict[str, Any] | None = None
        self.bytes_in = 0
        self.bytes_out = 0
        self.messages_in = 0
        self.last_active = self.opened
        self.last_frame = self.opened  # last complete, valid frame: bytes alone are not activity
        self.closed = False
        self.refused = 0  # frames naming another ident, refused (see the module docstring)
        self._pending: list[PacketRecord] = []
        self._garbage = 0
        self._packet_type_bias = PACKET_UDP if self.transport_name == "udp" else 0

    # identification ----------------------------------------------------------------------------
    @property
    def device_id(self) -> int | None:
        return self.device["id"] if self.device else None

    async def _identify(self, ident: str, frame: Frame, now: float) -> IdentSeen:
        devices = self.services.devices
        self.ident = ident
        device = devices.find(self.protocol, ident)
        if device is None and self.channel.auto_register:
            try:
                device = await devices.create({"ident": ident, "protocol": self.protocol, "name": ident})
                log.info("registered new %s device %s (id %s) from %s", self.protocol, ident, device["id"], self.peer)
            except Conflict:  # a concurrent registration of the same ident won
                device = devices.find(self.protocol, ident)
        if device is not None and not device.get("enabled", True):
            log.info("%s device %s is disabled; closing %s", self.protocol, ident, self.peer)
            self.close("device disabled")
            device = None
        self.device = device
        if device is None:
            log.info("unknown %s ident %s from %s", self.protocol, ident, self.peer)
        for p in self._pending:
            p.ident = ident
            p.device_id = self.device_id
        if device is not None:
            self.services.registry.attach(self)
        return IdentSeen(self.protocol, ident, now, self.peer, frame.raw[:256], self.device_id)

    # packets -----------------------------------------------------------------------------------
    def _packet(self, kind: int, data: bytes, now: float) -> PacketRecord:
        record = PacketRecord(
            now, kind + self._packet_type_bias, self.conn_id, self.protocol, self.peer, self.ident, self.device_id, data
        )
        events = self.services.events
        if events.active:
            events.publish(
                {
                    "type": "packet", "device_id": self.device_id, "protocol": self.protocol, "ident": self.ident,
                    "data": {"timestamp": now, "type": record.type, "conn": self.conn_id, "hex": data.hex()},
                }
            )
        return record

    def _take_packets(self, record: PacketRecord) -> list[PacketRecord]:
        """Hold traffic until the device is known, so it is filed under the right ident."""
        if self.ident is None:
            if len(self._pending) < _MAX_PENDING_PACKETS:
                self._pending.append(record)
            return []
        out, self._pending = [*self._pending, record], []
        return out

    # the ingest path ---------------------------------------------------------------------------
    async def process(self, data: bytes, now: float) -> list[bytes]:
        """Decodes ``data``, stores everything durably and returns the replies to send."""
        self.bytes_in += len(data)
        self.last_active = now
        frames = self.codec.datagram(data, now) if self.transport_name == "udp" else self.codec.feed(data, now)
        return await self._handle(frames, data, now)

    async def flush(self, now: float) -> list[bytes]:
        """The device has been silent: stores what the codec held back (see ``FLUSH_AFTER``)."""
        frames = self.codec.flush(now)
        return await self._handle(frames, b"", now) if frames else []

    def _log(self, event: str, frame: Frame, now: float, reason: str) -> LogRecord:
        return LogRecord(now, event, self.protocol, self.conn_id, self.ident, self.device_id, self.peer,
                         self.transport_name, reason=f"{reason} [{frame.raw[:128].hex()}]")

    async def _handle(self, frames: list[Frame], data: bytes, now: float, closing: bool = False) -> list[bytes]:
        """Files ``frames`` under the connection's device, stores them (with ``data``, the raw bytes
        they came in, when not empty) and returns the replies to send once that is durable."""
        batch = IngestBatch()
        replies: list[bytes] = []
        messages: list[dict[str, Any]] = []
        good = False
        for frame in frames:
            if frame.errors:
                log.warning(
                    "%s %s %s: %s; bytes %s",
                    self.protocol, self.peer, self.ident or "?", "; ".join(frame.errors), frame.raw[:512].hex(),
                )
            if frame.messages or frame.replies or frame.ident:
                good = True
            named = (frame.ident or self.codec.ident) if frame.messages or frame.replies else None
            if named and named != self.ident:
                if (self.ident is not None and not self.channel.follow_ident) or closing:
                    self.refused += 1
                    why = (f"frame names {named!r} but the connection belongs to {self.ident!r}: refused, "
                           f"not stored as a message, not answered") if self.ident is not None else \
                        f"frame names {named!r} after the connection closed: not stored as a message"
                    log.warning("%s %s %s: %s", self.protocol, self.peer, self.ident or "?", why)
                    batch.logs.append(self._log("ident.refused", frame, now, why))
                    continue
                if self.ident is not None:
                    log.info("%s %s: connection switches from %s to %s (channel follows idents)",
                             self.protocol, self.peer, self.ident, named)
                    self.codec.follow(named)
                batch.idents.append(await self._identify(named, frame, now))
                if self.closed and not closing:
                    return []
            if frame.errors and not frame.messages:
                batch.logs.append(self._log("frame.error", frame, now, "; ".join(frame.errors)))
            if frame.messages:
                ident = self.ident
                if ident is None:  # nobody to file them under: the raw packet and the log keep them
                    if not frame.errors:
                        batch.logs.append(self._log("frame.error", frame, now, "no device id: not stored"))
                    continue
                for message in frame.messages:
                    message["ident"] = ident
                messages.extend(frame.messages)
            if not closing:
                replies.extend(frame.replies)
        if data:
            self._garbage = 0 if good else self._garbage + len(data)
            batch.packets = self._take_packets(self._packet(PACKET_RECEIVED, data, now))
        if good:
            self.last_frame = now
        if messages:
            stored = await self.services.ingest.ingest(self.source, self.device, self.ident, messages, now, batch)
            self.messages_in += len(stored)
            self.services.registry.touched(self)
        else:
            await self.services.store.ingest(batch)
        if self._garbage > self.services.garbage_limit and not closing:
            self.close(f"{self._garbage} bytes without a valid frame")
        return replies

    def encode_command(self, name: str, properties: dict[str, Any], now: float) -> EncodedCommand:
        """The command's bytes for this device (raises ``CodecError``); the connection's codec
        knows the device's settings and the protocol's serial numbers."""
        return self.codec.encode_command(name, properties, now)

    def record_sent(self, data: bytes) -> None:
        now = time.time()
        self.bytes_out += len(data)
        records = self._take_packets(self._packet(PACKET_SENT, data, now))
        if records:
            self.services.later.store_later(IngestBatch(packets=records))

    def connect_records(self) -> IngestBatch:
        return IngestBatch(packets=self._take_packets(self._packet(PACKET_CONNECT, b"", self.opened)))

    def close_records(self, reason: str) -> IngestBatch:
        now = time.time()
        record = self._packet(PACKET_DISCONNECT, b"", now)
        if self.ident is None:  # never identified: keep the traffic anyway, under no ident
            packets, self._pending = [*self._pending, record], []
        else:
            packets = self._take_packets(record)
        return IngestBatch(
            packets=packets,
            logs=[
                LogRecord(
                    now, "disconnect", self.protocol, self.conn_id, self.ident, self.device_id, self.peer,
                    self.transport_name, self.bytes_in, self.bytes_out, self.messages_in, now - self.opened, reason,
                )
            ],
        )

    # transport hooks -------------------------------------------------------------------------
    def send(self, data: bytes) -> None:
        raise NotImplementedError

    def close(self, reason: str) -> None:
        raise NotImplementedError

    def info(self) -> dict[str, Any]:
        return {
            "id": self.conn_id,
            "ident": self.ident,
            "device_id": self.device_id,
            "protocol": self.protocol,
            "channel_id": self.channel_id,
            "transport": self.transport_name,
            "source": self.peer,
            "established": self.opened,
            "last_active": self.last_active,
            "msgs": self.messages_in,
            "recv": self.bytes_in,
            "send": self.bytes_out,
            "refused": self.refused,
        }


class TcpSession(Session):
    transport_name = "tcp"

    def __init__(self, services: SessionServices, channel: Channel, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        peername = writer.get_extra_info("peername") or ("?", 0)
        super().__init__(services, channel, f"{peername[0]}:{peername[1]}")
        self.reader = reader
        self.writer = writer
        self.close_reason = "closed by device"

    def send(self, data: bytes) -> None:
        if self.closed or self.writer.is_closing():
            raise ConnectionError("connection is closed")
        self.writer.write(data)
        self.record_sent(data)

    def close(self, reason: str) -> None:
        if not self.closed:
            self.closed = True
            self.close_reason = reason
            self.writer.close()

    async def run(self) -> None:
        services = self.services
        await services.store.ingest(self.connect_records())
        log.debug("%s connection %s from %s", self.protocol, self.conn_id, self.peer)
        held = False  # the codec holds bytes a flush might hand out
        try:
            while not self.closed:
                # No timer per read: the runtime's idle sweeper closes connections whose last
                # complete frame is too old (a byte-trickling peer is idle too), which ends this read.
                # Only while the codec holds part of a frame, a short silence asks it to flush.
                if held:
                    try:
                        data = await asyncio.wait_for(self.reader.read(65536), FLUSH_AFTER)
                    except TimeoutError:
                        held = False
                        replies = await self.flush(time.time())
                        if replies and not self.closed:
                            self.send(b"".join(replies))
                        continue
                else:
                    data = await self.reader.read(65536)
                if not data:
                    break
                replies = await self.process(data, time.time())
                if replies and not self.closed:  # one write (and one raw-packet record) per read
                    self.send(replies[0] if len(replies) == 1 else b"".join(replies))
                if self.writer.transport.get_write_buffer_size() > 1 << 20:
                    await self.writer.drain()
                held = self.codec.buffered() > 0
        except (ConnectionError, OSError) as exc:
            self.close_reason = f"connection error: {exc}"
        except asyncio.CancelledError:
            self.close_reason = "server shutdown"
            raise
        finally:
            self.closed = True
            self.writer.close()
            now = time.time()
            frames = self.codec.close(now)  # a complete frame held back, and bytes that never became one
            if any(frame.messages for frame in frames) and self.ident is not None:
                try:  # the last report before the disconnect is kept (it can no longer be answered)
                    await self._handle(frames, b"", now, closing=True)
                except Exception:
                    log.exception("%s %s %s: frames held at close not stored", self.protocol, self.peer, self.ident)
            else:
                for frame in frames:
                    log.warning("%s %s %s at close: %s; bytes %s", self.protocol, self.peer, self.ident or "?",
                                "; ".join(frame.errors), frame.raw[:512].hex())
            services.registry.detach(self)
            await services.store.ingest(self.close_records(self.close_reason))
