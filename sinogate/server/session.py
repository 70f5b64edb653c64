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
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from sinogate.codecs import EncodedCommand, Frame, ProtocolConnection, connection_class
from sinogate.codecs.limits import CodecLimits
from sinogate.ingest import IngestService, Source
from sinogate.interfaces import EventSink, LaterWriter
from sinogate.server.channels import Channel
from sinogate.server.devices import DeviceRegistry
from sinogate.server.guard import GarbageMeter, Guard
from sinogate.server.health import StoreHealth
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
    StoreError,
)

log = logging.getLogger("sinogate.session")

_conn_ids = itertools.count(int(time.time() * 1000) % 1_000_000_000 * 10)

# Raw traffic seen before a connection names its device is held (bounded) and then filed under it.
_MAX_PENDING_PACKETS = 64
# Seconds of silence after which a frame the codec could not delimit yet is handed out (flush).
FLUSH_AFTER = 1.0
# Bytes of the junk budget the connect/disconnect records of a never identified connection cost.
_RECORDS_COST = 256
# Bytes of device reads in process at once (see ``ReadBudget``): some 10,000 positions decoded.
READ_BUDGET = 1 << 20


def next_conn_id() -> int:
    return next(_conn_ids)


class ReadBudget:
    """Bytes read from devices that are being decoded, run through the pipeline and stored, all
    connections together. A connection whose read does not fit waits (first come, first served)
    and reads nothing more meanwhile, so an overloaded server leaves the backlog in the sockets
    (TCP flow control) instead of holding every connection's read decoded at once: memory and
    the size of a group commit stay bounded. A read larger than the budget goes alone."""

    def __init__(self, limit: int = READ_BUDGET) -> None:
        self.limit = limit
        self.used = 0
        self.waited = 0  # reads that had to wait
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()

    async def acquire(self, n: int) -> None:
        if not self._waiters and (self.used == 0 or self.used + n <= self.limit):
            self.used += n
            return
        self.waited += 1
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((n, future))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():  # granted just before the cancel
                self.release(n)
            raise

    def release(self, n: int) -> None:
        self.used -= n
        waiters = self._waiters
        while waiters:
            want, future = waiters[0]
            if future.done():  # cancelled while waiting
                waiters.popleft()
                continue
            if self.used and self.used + want > self.limit:
                break
            waiters.popleft()
            self.used += want
            future.set_result(None)


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
    guard: Guard = field(default_factory=Guard)  # device-side limits, shared (server.guard)
    health: StoreHealth = field(default_factory=StoreHealth)  # the store's state (disk full)
    codec_limits: CodecLimits = field(default_factory=CodecLimits)  # what codecs may hold, shared
    reads: ReadBudget = field(default_factory=ReadBudget)  # TCP reads in process at once, shared


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
            limits=services.codec_limits,
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
        guard = services.guard
        self._garbage = GarbageMeter(services.garbage_limit, guard.limits.garbage_window, self.opened)
        self.junk_bytes = 0  # bytes that became no valid frame
        self._sampled = 0  # bytes of junk (or of traffic before the ident) stored for this connection
        self._cut = 0  # bytes of junk not stored (over the sample or the global budget)
        self.error_frames = 0
        self._warned = 0  # frame warnings logged for this connection (the rest are summed up at the end)
        self.registered = 0  # devices this connection registered
        self._packet_type_bias = PACKET_UDP if self.transport_name == "udp" else 0

    # identification ----------------------------------------------------------------------------
    @property
    def device_id(self) -> int | None:
        return self.device["id"] if self.device else None

    async def _identify(self, ident: str, frame: Frame, now: float) -> IdentSeen:
        devices = self.services.devices
        previous = self.device
        device = devices.find(self.protocol, ident)
        if device is None and self.channel.auto_register:
            device = await self._register(ident)
        if device is not None and not device.get("enabled", True):
            log.info("%s device %s is disabled; closing %s", self.protocol, ident, self.peer)
            self.close("device disabled")
            device = None
        if previous is not None and (device is None or device["id"] != previous["id"]):
            # The connection switched idents (a channel that follows them): it no longer speaks for
            # the first device, which must not stay "connected" for as long as this socket lives.
            self.services.registry.release(self, previous["id"])
        self.ident = ident
        self.device = device
        if device is None:
            self.services.guard.device_log(logging.INFO, "unknown %s ident %s from %s", self.protocol, ident,
                                           self.peer)
        for p in self._pending:
            p.ident = ident
            p.device_id = self.device_id
        if device is not None:
            self.services.registry.attach(self)
        return IdentSeen(self.protocol, ident, now, self.peer, frame.raw[:256], self.device_id)

    async def _register(self, ident: str) -> dict[str, Any] | None:
        """Creates the device of a new ident within the registration limits: at most the channel's
        ``register_per_connection`` per connection (over it the ident stays unknown), and the global
        budget (over it the ident stays unknown, its data is stored, and it is registered when the
        budget refills)."""
        devices = self.services.devices
        guard = self.services.guard
        if self.registered >= self.channel.register_per_connection:
            guard.hit("register_per_connection", "%s %s registered %d device(s) already: %s stays an unknown ident",
                      self.protocol, self.peer, self.registered, ident)
            return None
        if not guard.may_register():
            guard.defer(self.protocol, ident)
            guard.hit("register_rate", "registration budget spent (%g per minute, %d at once): %s %s from %s is "
                      "kept as an unknown ident and registered when the budget refills", guard.limits.register_rate,
                      guard.limits.register_burst, self.protocol, ident, self.peer)
            return None
        try:
            device = await devices.create({"ident": ident, "protocol": self.protocol, "name": ident})
        except Conflict:  # a concurrent registration of the same ident won
            return devices.find(self.protocol, ident)
        except StoreError as exc:
            if self.services.health.failed(exc):
                raise
            guard.hit("register_refused", "%s %s: ident %s not registered: %s", self.protocol, self.peer, ident, exc)
            return None
        self.registered += 1
        log.info("registered new %s device %s (id %s) from %s", self.protocol, ident, device["id"], self.peer)
        return device

    def _adopt(self) -> None:
        """An unknown ident that got its device meanwhile (registered later, or by a user): the
        connection attaches to it."""
        assert self.ident is not None
        device = self.services.devices.find(self.protocol, self.ident)
        if device is None or not device.get("enabled", True):
            return
        self.device = device
        for p in self._pending:
            p.device_id = device["id"]
        self.services.registry.attach(self)

    def _refuse_ident(self, ident: str, reason: str) -> None:
        guard = self.services.guard
        guard.refuse_ident(self.protocol, self.channel_id, ident, reason, self.peer)
        guard.hit("ident_refused", "%s %s: ident %r refused: %s", self.protocol, self.peer, ident, reason)

    # packets -----------------------------------------------------------------------------------
    def _packet(self, kind: int, data: bytes, now: float) -> PacketRecord:
        record = PacketRecord(
            now, kind + self._packet_type_bias, self.conn_id, self.protocol, self.peer, self.ident, self.device_id, data
        )
        events = self.services.events
        if events.wants("packet"):
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
        if self.device is None and self.ident is not None and not self.closed:
            self._adopt()  # registered meanwhile (the registration budget refilled, or a user did)
        batch = IngestBatch()
        replies: list[bytes] = []
        messages: list[dict[str, Any]] = []
        good = False
        junk = 0  # bytes of frames that are nothing valid
        for frame in frames:
            # Valid: it decoded, or it is a clean frame (a codec may tag skipped junk with the
            # connection's ident, and answers a broken frame "send it again": neither is valid).
            valid = bool(frame.messages or ((frame.replies or frame.ident) and not frame.errors))
            if frame.errors:
                self._frame_errors(frame)
                if not valid:
                    junk += len(frame.raw)
            if valid:
                good = True
            named = (frame.ident or self.codec.ident) if frame.messages or frame.replies else None
            if named and not valid and self.services.devices.find(self.protocol, named) is None:
                named = None  # a frame that decoded to nothing names no new device: junk registers none
            if named and named != self.ident:
                devices = self.services.devices  # (a device registered before the grammar keeps working)
                problem = None if devices.find(self.protocol, named) else devices.ident_problem(named)
                if problem is not None:  # no device can have it: counted, listed, never a traceback
                    self._refuse_ident(named, problem)
                    batch.logs.append(self._log("ident.refused", frame, now, f"ident refused: {problem}"))
                    if self.ident is None and not closing:
                        self.close(f"ident refused: {problem}")
                        break
                    continue
                if (self.ident is not None and not self.channel.follow_ident) or closing:
                    self.refused += 1
                    why = (f"frame names {named!r} but the connection belongs to {self.ident!r}: refused, "
                           f"not stored as a message, not answered") if self.ident is not None else \
                        f"frame names {named!r} after the connection closed: not stored as a message"
                    self.services.guard.device_log(logging.WARNING, "%s %s %s: %s", self.protocol, self.peer,
                                                   self.ident or "?", why)
                    batch.logs.append(self._log("ident.refused", frame, now, why))
                    continue
                if self.ident is not None:
                    self.services.guard.device_log(
                        logging.INFO, "%s %s: connection switches from %s to %s (channel follows idents)",
                        self.protocol, self.peer, self.ident, named)
                    self.codec.follow(named)
                batch.idents.append(await self._identify(named, frame, now))
                if self.closed and not closing:
                    return []
            if frame.errors and not frame.messages and (valid or self.error_frames <= self._error_records):
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
        over = False
        if data:
            self.junk_bytes += junk
            over = self._garbage.add(junk, now)
            stored = self._sample(data, junk, good)
            if stored is not None:
                batch.packets = self._take_packets(self._packet(PACKET_RECEIVED, stored, now))
        if good:
            self.last_frame = now
        try:
            if messages:
                stored_messages = await self.services.ingest.ingest(self.source, self.device, self.ident, messages,
                                                                    now, batch)
                self.messages_in += len(stored_messages)
                self.services.registry.touched(self)
            elif batch:
                await self.services.store.ingest(batch)
        except Exception as exc:
            if not self.services.health.failed(exc):
                raise
            # Nothing of this read is durable: nothing of it is acknowledged (the device sends it again).
            if replies:
                self.services.guard.acks_withheld += 1
            replies = []
        if over and not closing and not self.closed:
            limits = self.services.guard.limits
            self.services.guard.hit("garbage", "%s %s %s: closed, more than %d bytes without a valid frame within "
                                    "%g s", self.protocol, self.peer, self.ident or "?", self.services.garbage_limit,
                                    limits.garbage_window)
            self.close(f"{self.junk_bytes} bytes without a valid frame (more than {self.services.garbage_limit} "
                       f"within {limits.garbage_window:g} s)")
        return replies

    @property
    def _error_records(self) -> int:
        """Log records of frames that were nothing valid, per connection (the rest are only counted)."""
        return max(3, self.services.guard.limits.warnings_per_connection)

    def _frame_errors(self, frame: Frame) -> None:
        """Counts a frame's errors; logs the first few of the connection (escaped, cut, within the
        global line rate), the rest are summed up in one line when the connection ends."""
        guard = self.services.guard
        self.error_frames += 1
        guard.count_decode_error(self.protocol, frame.errors)
        if self._warned < guard.limits.warnings_per_connection and guard.device_log(
            logging.WARNING, "%s %s %s: %s; bytes %s", self.protocol, self.peer, self.ident or "?",
            "; ".join(frame.errors), frame.raw[:64].hex(),
        ):
            self._warned += 1

    def _sample(self, data: bytes, junk: int, good: bool) -> bytes | None:
        """What of a read's raw bytes is stored: all of it when it holds no junk (and the device is
        known, or the read carried a valid frame); else a sample: the connection's first
        ``junk_sample`` bytes of such reads, within the global ``junk_budget``."""
        if not junk and (good or self.ident is not None):
            return data
        guard = self.services.guard
        room = max(0, guard.limits.junk_sample - self._sampled)
        take = guard.junk_allowance(min(room, len(data))) if room else 0
        self._sampled += take
        if take < len(data):
            if not self._cut:
                guard.hit("junk_sample", "%s %s %s: raw bytes without a valid frame beyond the sample (%d bytes per "
                          "connection, %d per day in all) are not stored", self.protocol, self.peer, self.ident or "?",
                          guard.limits.junk_sample, guard.limits.junk_budget)
            self._cut += len(data) - take
            guard.junk_dropped += len(data) - take
        return data[:take] if take else None

    def summary(self) -> str | None:
        """One line on what went wrong with the connection's traffic, when anything did."""
        if not self.error_frames and not self.junk_bytes:
            return None
        quiet = self.error_frames - self._warned
        return (f"{self.protocol} {self.peer} {self.ident or '?'}: {self.error_frames} frame(s) with errors"
                f"{f' ({quiet} not logged)' if quiet else ''}, {self.junk_bytes} bytes without a valid frame, "
                f"{self._cut} bytes of them not stored")

    async def store_records(self, batch: IngestBatch) -> None:
        """Stores connection records; a full disk only withholds them (see ``server.health``)."""
        try:
            await self.services.store.ingest(batch)
        except Exception as exc:
            if not self.services.health.failed(exc):
                raise

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
        summary = self.summary()
        if summary is not None:  # one line per connection with counts, not one per bad frame
            self.services.guard.device_log(logging.WARNING, "%s; closed: %s", summary, reason)
            reason = f"{reason}; {summary}"
        record = self._packet(PACKET_DISCONNECT, b"", now)
        if self.ident is None:  # never identified: keep the traffic anyway, under no ident
            if self.services.guard.junk_allowance(_RECORDS_COST) < _RECORDS_COST:
                # The junk budget pays for the records of connections that never named a device.
                sample, self._pending = [p for p in self._pending if p.data], []
                return IngestBatch(packets=sample)
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
        await self.store_records(self.connect_records())
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
                now = time.time()
                reads = services.reads
                await reads.acquire(len(data))
                try:
                    replies = await self.process(data, now)
                finally:
                    reads.release(len(data))
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
                    if frame.errors:
                        self._frame_errors(frame)
                        self.junk_bytes += len(frame.raw)
            services.registry.detach(self)
            await self.store_records(self.close_records(self.close_reason))
