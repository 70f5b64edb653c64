"""A small MQTT 5 client for the bridge's publishing path (asyncio protocol, no threads).

Why not aiomqtt or paho-mqtt here: the bridge publishes several packets per stored message (the
message on two topics, then each changed telemetry parameter), so the cost of one publish is what
limits it. Measured on the development machine against the local Mosquitto, QoS 1:
aiomqtt 2.5 spent 120-280 µs of CPU per publish (its per-publish future and a scan of every
pending call, paho's inflight scan on every acknowledgement) and the bridge kept up with about 100
messages/s; paho-mqtt's own threaded loop 44 µs per publish across two threads sharing the GIL
with ingest. Encoding a PUBLISH here is a few byte concatenations, and acknowledgements only pop
a dict entry. The tests talk to the bridge through paho-mqtt, an independent implementation.

What it does: CONNECT (clean start, optional username/password, last will, TLS), PUBLISH at QoS
0/1/2 with user properties, response topic and correlation data, a window of unacknowledged
publishes bounded by the broker's Receive Maximum, SUBSCRIBE, inbound PUBLISH (acknowledged),
keepalive pings, DISCONNECT. Packets are written to the transport as they are built; nothing is
ever retransmitted on the same connection (MQTT 5 allows it only after a reconnect, and the bridge
re-publishes what a lost connection left unacknowledged).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 12, 13, 14

# Property identifier → value type (MQTT 5 §2.2.2.2).
_BYTE, _TWO, _FOUR, _VARINT, _STR, _BIN, _PAIR = range(7)
PROPERTY_TYPES = {
    0x01: _BYTE, 0x02: _FOUR, 0x03: _STR, 0x08: _STR, 0x09: _BIN, 0x0B: _VARINT, 0x11: _FOUR, 0x12: _STR,
    0x13: _TWO, 0x15: _STR, 0x16: _BIN, 0x17: _BYTE, 0x18: _FOUR, 0x19: _BYTE, 0x1A: _STR, 0x1C: _STR,
    0x1F: _STR, 0x21: _TWO, 0x22: _TWO, 0x23: _TWO, 0x24: _BYTE, 0x25: _BYTE, 0x26: _PAIR, 0x27: _FOUR,
    0x28: _BYTE, 0x29: _BYTE, 0x2A: _BYTE,
}
RESPONSE_TOPIC, CORRELATION_DATA, USER_PROPERTY = 0x08, 0x09, 0x26
RECEIVE_MAXIMUM, MAXIMUM_PACKET_SIZE, SERVER_KEEP_ALIVE, REASON_STRING = 0x21, 0x27, 0x13, 0x1F
CONNACK_REASONS = {
    0x80: "unspecified error", 0x81: "malformed packet", 0x82: "protocol error", 0x84: "unsupported protocol version",
    0x85: "client identifier not valid", 0x86: "bad user name or password", 0x87: "not authorized",
    0x88: "server unavailable", 0x89: "server busy", 0x8A: "banned", 0x8C: "bad authentication method",
    0x95: "packet too large", 0x97: "quota exceeded", 0x9C: "use another server", 0x9D: "server moved",
}


class MqttError(Exception):
    """The connection failed or is gone; the message says why."""


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def string(text: str) -> bytes:
    data = text.encode()
    return len(data).to_bytes(2, "big") + data


def binary(data: bytes) -> bytes:
    return len(data).to_bytes(2, "big") + data


def user_property(key: str, value: str) -> bytes:
    """One encoded user property (put several together for ``publish``'s ``properties``)."""
    return b"\x26" + string(key) + string(value)


def response_properties(response_topic: str | None = None, correlation: bytes | None = None) -> bytes:
    out = b""
    if response_topic is not None:
        out += b"\x08" + string(response_topic)
    if correlation is not None:
        out += b"\x09" + binary(correlation)
    return out


def parse_properties(data: bytes | bytearray, pos: int) -> tuple[dict[int, Any], int]:
    """(properties, position after them); user properties collect in a list of pairs."""
    length, pos = read_varint(data, pos)
    end = pos + length
    props: dict[int, Any] = {}
    while pos < end:
        ident = data[pos]
        pos += 1
        kind = PROPERTY_TYPES.get(ident)
        if kind is None:
            raise MqttError(f"unknown property 0x{ident:02x}")
        value: Any
        if kind == _BYTE:
            value, pos = data[pos], pos + 1
        elif kind == _TWO:
            value, pos = int.from_bytes(data[pos:pos + 2], "big"), pos + 2
        elif kind == _FOUR:
            value, pos = int.from_bytes(data[pos:pos + 4], "big"), pos + 4
        elif kind == _VARINT:
            value, pos = read_varint(data, pos)
        elif kind in (_STR, _BIN):
            n = int.from_bytes(data[pos:pos + 2], "big")
            raw = bytes(data[pos + 2:pos + 2 + n])
            value, pos = (raw.decode(errors="replace") if kind == _STR else raw), pos + 2 + n
        else:
            n = int.from_bytes(data[pos:pos + 2], "big")
            key = bytes(data[pos + 2:pos + 2 + n]).decode(errors="replace")
            pos += 2 + n
            m = int.from_bytes(data[pos:pos + 2], "big")
            val = bytes(data[pos + 2:pos + 2 + m]).decode(errors="replace")
            pos += 2 + m
            props.setdefault(USER_PROPERTY, []).append((key, val))
            continue
        props[ident] = value
    return props, end


def read_varint(data: bytes | bytearray, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    for _ in range(4):
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
    raise MqttError("malformed variable byte integer")


@dataclass(slots=True)
class Will:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


@dataclass(slots=True)
class Inbound:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    properties: dict[int, Any] = field(default_factory=dict)

    @property
    def response_topic(self) -> str | None:
        value = self.properties.get(RESPONSE_TOPIC)
        return value if isinstance(value, str) else None

    @property
    def correlation(self) -> bytes | None:
        value = self.properties.get(CORRELATION_DATA)
        return value if isinstance(value, bytes) else None


class Connection(asyncio.Protocol):
    """One MQTT 5 connection. ``publish`` writes at once; ``room`` waits for space in the window of
    unacknowledged publishes; ``on_ack(token)`` runs for each acknowledged one; ``closed`` is a
    future that fails with ``MqttError`` when the connection ends."""

    def __init__(self, window: int = 256, on_ack: Callable[[Any], None] | None = None) -> None:
        loop = asyncio.get_running_loop()
        self.window = window
        self.on_ack = on_ack
        self.closed: asyncio.Future[None] = loop.create_future()
        self.inbound: asyncio.Queue[Inbound] = asyncio.Queue(maxsize=1000)
        self.server: dict[int, Any] = {}
        self.max_packet = 268435455
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._out: list[bytes] = []
        self._flush_scheduled = False
        self._connack: asyncio.Future[dict[int, Any]] = loop.create_future()
        self._waiting: dict[int, asyncio.Future[Any]] = {}  # SUBACK by packet id
        self._inflight: OrderedDict[int, Any] = OrderedDict()  # packet id → token, oldest first
        self._room: list[asyncio.Future[None]] = []
        self._next_id = 0
        self._last_in = time.monotonic()
        self._last_out = time.monotonic()
        self._pinger: asyncio.Task[None] | None = None
        self.inbound_dropped = 0

    # -- asyncio.Protocol -----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(MqttError(f"connection lost: {exc}" if exc else "connection closed by the broker"))

    def data_received(self, data: bytes) -> None:
        self._last_in = time.monotonic()
        buf = self._buffer
        buf += data
        pos = 0
        try:
            while len(buf) - pos >= 2:
                first = buf[pos]
                try:
                    length, start = read_varint(buf, pos + 1)
                except IndexError:
                    break
                end = start + length
                if end > len(buf):
                    break
                self._packet(first, bytes(buf[start:end]))
                pos = end
        except MqttError as exc:
            self.abort(str(exc))
        except (IndexError, ValueError) as exc:
            self.abort(f"malformed packet from the broker: {exc!r}")
        del buf[:pos]

    # -- packets in -----------------------------------------------------------------------------
    def _packet(self, first: int, body: bytes) -> None:
        kind = first >> 4
        if kind in (PUBACK, PUBCOMP):
            token = self._inflight.pop(int.from_bytes(body[0:2], "big"), None)
            if token is not None:
                self._acked(token)
        elif kind == PUBREC:
            packet_id = int.from_bytes(body[0:2], "big")
            if len(body) > 2 and body[2] >= 0x80:  # refused: nothing more will come for it
                token = self._inflight.pop(packet_id, None)
                if token is not None:
                    self._acked(token)
            else:
                self._write(b"\x62\x02" + bytes(body[0:2]))
        elif kind == PUBLISH:
            self._inbound(first, body)
        elif kind == PUBREL:
            self._write(b"\x70\x02" + bytes(body[0:2]))
        elif kind == CONNACK:
            reason = body[1]
            props, _ = parse_properties(body, 2) if len(body) > 2 else ({}, 2)
            if reason:
                text = props.get(REASON_STRING) or CONNACK_REASONS.get(reason, f"reason 0x{reason:02x}")
                if not self._connack.done():
                    self._connack.set_exception(MqttError(f"broker refused the connection: {text}"))
                return
            if not self._connack.done():
                self._connack.set_result(props)
        elif kind == SUBACK:
            waiter = self._waiting.pop(int.from_bytes(body[0:2], "big"), None)
            if waiter is not None and not waiter.done():
                _, pos = parse_properties(body, 2)
                waiter.set_result(list(body[pos:]))
        elif kind == DISCONNECT:
            reason = body[0] if len(body) else 0
            props, _ = parse_properties(body, 1) if len(body) > 1 else ({}, 1)
            text = props.get(REASON_STRING) or f"reason 0x{reason:02x}"
            self.abort(f"the broker disconnected: {text}")
        # PINGRESP needs nothing: any packet refreshes _last_in

    def _inbound(self, first: int, body: bytes) -> None:
        qos = (first >> 1) & 0x03
        n = int.from_bytes(body[0:2], "big")
        topic = bytes(body[2:2 + n]).decode(errors="replace")
        pos = 2 + n
        packet_id = 0
        if qos:
            packet_id = int.from_bytes(body[pos:pos + 2], "big")
            pos += 2
        props, pos = parse_properties(body, pos)
        try:
            self.inbound.put_nowait(Inbound(topic, bytes(body[pos:]), qos, bool(first & 1), props))
        except asyncio.QueueFull:
            self.inbound_dropped += 1
        if qos == 1:
            self._write(b"\x40\x02" + packet_id.to_bytes(2, "big"))
        elif qos == 2:
            self._write(b"\x50\x02" + packet_id.to_bytes(2, "big"))

    def _acked(self, token: Any) -> None:
        if isinstance(token, asyncio.Future):
            if not token.done():
                token.set_result(None)
        elif self.on_ack is not None:
            self.on_ack(token)
        while self._room and len(self._inflight) < self.window:
            waiter = self._room.pop(0)
            if not waiter.done():
                waiter.set_result(None)

    # -- packets out ----------------------------------------------------------------------------
    def _write(self, data: bytes) -> None:
        """Queues a packet; everything written in one turn of the event loop goes out in one send."""
        if self._transport is None or self.closed.done():
            raise MqttError("not connected")
        self._out.append(data)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._out and self._transport is not None and not self._transport.is_closing():
            data = b"".join(self._out)
            self._out.clear()
            self._transport.write(data)
            self._last_out = time.monotonic()

    def _packet_id(self) -> int:
        for _ in range(65535):
            self._next_id = self._next_id % 65535 + 1
            if self._next_id not in self._inflight and self._next_id not in self._waiting:
                return self._next_id
        raise MqttError("no free packet identifier")

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    def unacknowledged(self) -> list[Any]:
        """The tokens of publishes never acknowledged, oldest first (after the connection ended)."""
        return [t for t in self._inflight.values() if not isinstance(t, asyncio.Future)]

    async def room(self) -> None:
        """Waits until another QoS 1/2 publish fits in the window; ``MqttError`` when closed."""
        while len(self._inflight) >= self.window:
            if self.closed.done():
                raise MqttError("not connected")
            waiter = asyncio.get_running_loop().create_future()
            self._room.append(waiter)
            await waiter
        if self.closed.done():
            raise MqttError("not connected")

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False, properties: bytes = b"",
                token: Any = None) -> None:
        """Writes a PUBLISH. For QoS 1/2 ``token`` is handed to ``on_ack`` once acknowledged (a
        future token is resolved instead); call ``room`` first to respect the window."""
        t = topic.encode()
        head = len(t).to_bytes(2, "big") + t
        if qos:
            packet_id = self._packet_id()
            head += packet_id.to_bytes(2, "big")
        body_len = len(head) + len(properties) + len(varint(len(properties))) + len(payload)
        if body_len + 5 > self.max_packet:
            raise ValueError(f"packet of {body_len} bytes exceeds the broker's maximum {self.max_packet}")
        self._write(b"".join((bytes((0x30 | qos << 1 | (1 if retain else 0),)), varint(body_len), head,
                              varint(len(properties)), properties, payload)))
        if qos:
            self._inflight[packet_id] = token

    async def publish_wait(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False,
                           properties: bytes = b"", timeout: float = 10.0) -> None:
        """Publishes and waits for the acknowledgement (QoS 0: for nothing)."""
        if not qos:
            self.publish(topic, payload, 0, retain, properties)
            return
        await self.room()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.publish(topic, payload, qos, retain, properties, token=done)
        waiter = asyncio.ensure_future(asyncio.wait_for(asyncio.shield(done), timeout))
        closed = asyncio.ensure_future(asyncio.shield(self.closed))
        try:
            await asyncio.wait((waiter, closed), return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()
        if not waiter.done():
            waiter.cancel()
            raise MqttError("connection lost before the acknowledgement")
        try:
            waiter.result()
        except TimeoutError as exc:
            raise MqttError(f"no acknowledgement within {timeout:g} s") from exc

    async def subscribe(self, topics: list[tuple[str, int]], timeout: float = 10.0) -> list[int]:
        packet_id = self._packet_id()
        payload = b"".join(string(topic) + bytes((qos,)) for topic, qos in topics)
        body = packet_id.to_bytes(2, "big") + b"\x00" + payload
        waiter: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        self._waiting[packet_id] = waiter
        self._write(b"\x82" + varint(len(body)) + body)
        try:
            codes = await asyncio.wait_for(waiter, timeout)
        except TimeoutError as exc:
            raise MqttError("no SUBACK") from exc
        finally:
            self._waiting.pop(packet_id, None)
        refused = [c for c in codes if c >= 0x80]
        if refused:
            raise MqttError(f"subscription refused (reason 0x{refused[0]:02x})")
        return codes

    async def _handshake(self, client_id: str, keepalive: int, username: str | None, password: str | None,
                         will: Will | None, timeout: float) -> None:
        flags = 0x02  # clean start
        payload = string(client_id)
        if will is not None:
            flags |= 0x04 | (will.qos << 3) | (0x20 if will.retain else 0)
            payload += b"\x00" + string(will.topic) + binary(will.payload)
        if username is not None:
            flags |= 0x80
            payload += string(username)
        if password is not None:
            flags |= 0x40
            payload += binary(password.encode())
        properties = b"\x21" + (65535).to_bytes(2, "big")  # what we accept in flight (inbound QoS 1)
        body = b"\x00\x04MQTT\x05" + bytes((flags,)) + keepalive.to_bytes(2, "big") + varint(len(properties)) \
            + properties + payload
        self._write(b"\x10" + varint(len(body)) + body)
        closed = asyncio.ensure_future(asyncio.shield(self.closed))
        try:
            done, _ = await asyncio.wait((self._connack, closed), timeout=timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()
        if self._connack not in done:
            if self.closed.done() and self.closed.exception() is not None:
                raise MqttError(f"no CONNACK: {self.closed.exception()}")
            raise MqttError(f"no CONNACK within {timeout:g} s")
        self.server = self._connack.result()
        self.window = max(1, min(self.window, int(self.server.get(RECEIVE_MAXIMUM, 65535))))
        self.max_packet = int(self.server.get(MAXIMUM_PACKET_SIZE, self.max_packet))
        keepalive = int(self.server.get(SERVER_KEEP_ALIVE, keepalive))
        if keepalive:
            self._pinger = asyncio.get_running_loop().create_task(self._ping(keepalive))

    async def _ping(self, keepalive: int) -> None:
        interval = max(1.0, keepalive / 2)
        while not self.closed.done():
            await asyncio.sleep(interval)
            now = time.monotonic()
            if now - self._last_in > keepalive * 1.5:
                self.abort(f"nothing from the broker for {now - self._last_in:.0f} s (keepalive {keepalive} s)")
                return
            if now - self._last_out >= interval:
                with contextlib.suppress(MqttError):
                    self._write(b"\xc0\x00")

    # -- closing --------------------------------------------------------------------------------
    def _fail(self, exc: MqttError) -> None:
        if not self.closed.done():
            self.closed.set_exception(exc)
            self.closed.exception()  # retrieved: no "never retrieved" warning when nobody awaits it
        if not self._connack.done():
            self._connack.set_exception(exc)
            self._connack.exception()
        for waiter in [*self._room, *self._waiting.values()]:
            if not waiter.done():
                waiter.set_exception(exc)
                waiter.exception()
        self._room.clear()
        for token in self._inflight.values():
            if isinstance(token, asyncio.Future) and not token.done():
                token.set_exception(exc)
                token.exception()
        if self._pinger is not None and self._pinger is not asyncio.current_task():
            self._pinger.cancel()

    def abort(self, reason: str) -> None:
        self._fail(MqttError(reason))
        if self._transport is not None:
            self._transport.abort()

    def disconnect(self) -> None:
        """A normal DISCONNECT (the broker drops the last will), then close."""
        if self._transport is not None and not self.closed.done():
            with contextlib.suppress(Exception):
                self._flush()
                self._transport.write(b"\xe0\x00")
            self._transport.close()
        self._fail(MqttError("disconnected"))


async def connect(host: str, port: int, *, client_id: str, keepalive: int = 60, username: str | None = None,
                  password: str | None = None, will: Will | None = None, tls: ssl.SSLContext | None = None,
                  timeout: float = 10.0, window: int = 256,
                  on_ack: Callable[[Any], None] | None = None) -> Connection:
    """Opens a connection and completes the MQTT handshake; raises ``MqttError`` (or ``OSError``)."""
    loop = asyncio.get_running_loop()
    try:
        _transport, protocol = await asyncio.wait_for(loop.create_connection(
            lambda: Connection(window, on_ack), host, port, ssl=tls, server_hostname=host if tls else None), timeout)
    except TimeoutError as exc:
        raise MqttError(f"TCP connect to {host}:{port} timed out") from exc
    try:
        await protocol._handshake(client_id, keepalive, username, password, will, timeout)
    except BaseException:
        protocol.abort("handshake failed")
        raise
    return protocol
