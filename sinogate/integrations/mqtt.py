"""The MQTT bridge: sinogate's data on an MQTT broker in flespi's topic layout (``topics``).

What it publishes, every publish at the configured QoS (1 by default):

- every stored message (after its commit) on the device and channel message topics;
- retained telemetry, one publish per parameter whose value changed (by device time, the store's
  telemetry rule), with the MQTT 5 user property ``timestamp`` (the value's device time);
- retained ``connected`` state (session listener) and confirmed settings values;
- command lifecycle on the log topics (each status change, with the device's reply), analytics
  events, calculator intervals (bus ``interval`` events);
- with ``homeassistant``: discovery configs and the device tracker's location topic.

Inbound (``commands`` on): commands published to ``{prefix}/rest/post/gw/devices/{selector}/
commands-queue`` (a JSON object or list of ``{"name", "properties"?, "ttl"?, "expire"?, "confirm"?,
"force"?}``) are queued like the REST call (a destructive command needs ``"confirm": true``); their
lifecycle comes back on the log topics. With an MQTT 5 response topic, the queued commands (or the
errors) are published there.

A broker that is down never blocks or slows ingest: ``committed`` only appends to a bounded
queue (``queue`` batches; beyond it new batches are dropped and counted), a background task
publishes from it, reconnects with exponential backoff (1 s … 60 s) and logs one line per state
change. On every (re)connection the retained state is published again from the store, so the
broker holds current values even if it lost them. Nothing a device is acknowledged for depends
on the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from sinogate.api.selectors import Selector, SelectorError
from sinogate.commands.catalog import CommandError
from sinogate.commands.settings import COMMAND_SETTINGS
from sinogate.config import ConfigError
from sinogate.ingest import Committed
from sinogate.integrations import homeassistant
from sinogate.integrations.mqttwire import (
    Connection,
    Inbound,
    MqttError,
    Will,
    connect,
    response_properties,
    user_property,
)
from sinogate.integrations.topics import INTERVAL_ACTIONS, Topics
from sinogate.interfaces import DeviceConnection, TaskRunner
from sinogate.jsonenc import dumps_bytes, loads
from sinogate.model.device import BusEvent
from sinogate.store.base import StoreError

log = logging.getLogger("sinogate.mqtt")

BACKOFF_MIN, BACKOFF_MAX = 1.0, 60.0
WINDOW = 256  # publishes in flight at once
STOP_FLUSH = 3.0  # seconds ``stop`` waits for the queue to empty while connected


@dataclass(frozen=True, slots=True)
class MqttSettings:
    host: str
    port: int = 1883
    tls: bool = False
    username: str | None = None
    password: str | None = None
    prefix: str = "flespi"
    commands: bool = False
    homeassistant: bool = False
    homeassistant_prefix: str = "homeassistant"
    qos: int = 1
    client_id: str = ""
    keepalive: int = 60
    queue: int = 10000
    ca_file: str | None = None  # CA certificates for mqtts:// (None: the system's)

    @property
    def address(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


def parse_url(url: str) -> tuple[str, int, bool, str | None, str | None]:
    """``mqtt://user:pass@host:1883/`` → (host, port, tls, user, password); ``mqtts://`` is TLS
    (default port 8883). Raises ``ConfigError``."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
        raise ConfigError(f"mqtt_url {url!r}: the scheme must be mqtt:// or mqtts://")
    tls = parts.scheme in ("mqtts", "ssl")
    if not parts.hostname:
        raise ConfigError(f"mqtt_url {url!r} names no host")
    try:
        port = parts.port or (8883 if tls else 1883)
    except ValueError as exc:
        raise ConfigError(f"mqtt_url {url!r}: {exc}") from exc
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    return parts.hostname, port, tls, user, password


def settings_from(config: Any) -> MqttSettings:
    """The bridge's settings from the server config (``mqtt_*``)."""
    host, port, tls, user, password = parse_url(config.mqtt_url)
    client_id = config.mqtt_client_id or f"sinogate-{socket.gethostname()}-{os.getpid()}-{os.urandom(3).hex()}"
    prefix = config.mqtt_prefix.strip("/")
    if not prefix or any(c in prefix for c in "+#"):
        raise ConfigError("mqtt_prefix must be a topic without wildcards")
    ca_file = getattr(config, "mqtt_ca_file", None)
    return MqttSettings(host, port, tls, user, password, prefix, config.mqtt_commands, config.mqtt_homeassistant,
                        config.mqtt_homeassistant_prefix.strip("/") or "homeassistant", config.mqtt_qos, client_id,
                        config.mqtt_keepalive, config.mqtt_queue, str(ca_file) if ca_file else None)


class DeviceDirectory(Protocol):
    def all(self) -> list[dict[str, Any]]: ...

    def get(self, device_id: int) -> dict[str, Any]: ...


class CommandQueue(Protocol):
    async def enqueue(self, device: dict[str, Any], name: str, properties: Any, ttl: Any = None,
                      expire: Any = None, *, confirm: bool = False, force: bool = False) -> dict[str, Any]: ...


class StateSource(Protocol):
    """What the bridge reads on (re)connection: telemetry and confirmed settings."""

    async def telemetry(self, device_id: int, names: list[str] | None = None) -> dict[str, dict[str, Any]]: ...

    async def kv_list(self, namespace: str) -> dict[str, Any]: ...


class Subscribable(Protocol):
    def subscribe(self, accept: Callable[[BusEvent], bool] = ..., *, types: frozenset[str] | None = ...) -> Any: ...

    def unsubscribe(self, sub: Any) -> None: ...


_MISSING = object()


class Latest:
    """The telemetry the broker holds for one device: value and device time per parameter, by the
    store's rule (``sinogate.store.telemetry``): a value with an older device time never replaces
    a newer one."""

    __slots__ = ("newest", "times", "values")

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.times: dict[str, float] = {}
        self.newest = float("-inf")

    def apply(self, message: Mapping[str, Any], ts: float) -> list[str]:
        """Takes ``message`` (device time ``ts``) in; returns the names whose value changed."""
        values = self.values
        if ts >= self.newest:  # the usual case: one pass to compare, whole-dict updates in C
            changed = [name for name, value in message.items()
                       if (old := values.get(name, _MISSING)) is not value
                       and (type(old) is not type(value) or old != value)]
            values.update(message)
            self.times.update(dict.fromkeys(message, ts))
            self.newest = ts
            return changed
        changed = []
        times = self.times
        for name, value in message.items():
            when = times.get(name)
            if when is None or when <= ts:
                old = values.get(name, _MISSING)
                if type(old) is not type(value) or old != value:
                    changed.append(name)
                values[name] = value
                times[name] = ts
        return changed


@dataclass(slots=True)
class Publish:
    topic: str
    payload: bytes
    retain: bool = False
    timestamp: float | None = None  # MQTT 5 user property "timestamp"


class MqttBridge:
    """After-commit publisher, session listener and bus subscriber; see the module docstring."""

    name = "mqtt"

    def __init__(self, settings: MqttSettings, store: StateSource, devices: DeviceDirectory, commands: CommandQueue,
                 bus: Subscribable, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.topics = Topics(settings.prefix)
        self._store = store
        self._devices = devices
        self._commands = commands
        self._bus = bus
        self._clock = clock
        self._queue: deque[tuple[str, Any]] = deque()
        self._retry: deque[Publish] = deque()  # publishes a lost connection interrupted, sent first
        self._wake = asyncio.Event()
        self._telemetry: dict[int, Latest] = {}  # what the broker holds per device
        self._location: dict[int, float] = {}  # device → device time of the last location published
        self._announced: dict[int, dict[str, Any]] = {}  # device → the device as announced to Home Assistant
        self._tasks: list[asyncio.Task[Any]] = []
        self._client: Connection | None = None
        self._closed = False
        self.state = "stopped"
        # counters (metrics)
        self.published = 0
        self.dropped = 0
        self.failed = 0
        self.connects = 0
        self.commands_received = 0
        self.commands_rejected = 0

    # -- what ingest, sessions and the bus call (never blocks) ----------------------------------
    def _offer(self, kind: str, item: Any, weight: int = 1) -> None:
        if self._closed:
            return
        if len(self._queue) >= self.settings.queue:
            self.dropped += weight
            return
        self._queue.append((kind, item))
        self._wake.set()

    def committed(self, batch: Committed) -> None:
        self._offer("batch", batch, len(batch.messages) + len(batch.events))

    def on_attach(self, session: DeviceConnection) -> None:
        if session.device_id is not None:
            self._offer("connected", (session.device_id, True))

    def on_detach(self, session: DeviceConnection) -> None:
        if session.device_id is not None:
            self._offer("connected", (session.device_id, False))

    def forget(self, device_id: int) -> None:
        """A device was deleted: its retained topics and discovery configs are cleared."""
        self._offer("forget", device_id)

    @property
    def depth(self) -> int:
        return len(self._queue) + len(self._retry)

    @property
    def connected(self) -> bool:
        return self._client is not None

    async def deliver(self, topic: str, payload: bytes) -> None:
        """Publishes one payload now and waits for the broker's acknowledgement (a notification
        target); ``ConnectionError`` while the broker is not connected, so the caller can retry."""
        conn = self._client
        if conn is None:
            raise ConnectionError(f"broker {self.settings.address} is not connected")
        try:
            await conn.publish_wait(topic, payload, self.settings.qos, False)
        except MqttError as exc:
            raise ConnectionError(str(exc) or type(exc).__name__) from exc
        self.published += 1

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self, tasks: TaskRunner) -> None:
        self._tasks = [tasks.spawn(self._run()), tasks.spawn(self._bus_loop())]

    async def stop(self) -> None:
        """Publishes what is queued (for up to a few seconds while connected), marks the gateway
        offline and disconnects."""
        deadline = time.monotonic() + STOP_FLUSH
        while (conn := self._client) is not None and (self.depth or conn.inflight) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        self._closed = True
        conn = self._client
        if conn is not None:
            with contextlib.suppress(MqttError, ValueError, TimeoutError):
                await conn.publish_wait(self.topics.status(), b"offline", self.settings.qos, True, timeout=1.0)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._set_state("stopped")

    def _set_state(self, state: str, detail: str = "") -> None:
        if state == self.state:
            return
        old, self.state = self.state, state
        text = f"MQTT {self.settings.address}: {old} -> {state}" + (f" ({detail})" if detail else "")
        if state == "disconnected":
            log.warning("%s; %d queued, %d dropped so far", text, self.depth, self.dropped)
        else:
            log.info(text)

    # -- the connection -------------------------------------------------------------------------
    async def _connect(self) -> Connection:
        s = self.settings
        return await connect(
            s.host, s.port, client_id=s.client_id, keepalive=s.keepalive, username=s.username, password=s.password,
            will=Will(self.topics.status(), b"offline", s.qos, True),
            tls=ssl.create_default_context(cafile=s.ca_file) if s.tls else None, timeout=10.0, window=WINDOW,
            on_ack=self._acked,
        )

    def _acked(self, _token: Any) -> None:
        self.published += 1

    async def _run(self) -> None:
        backoff = BACKOFF_MIN
        self._set_state("connecting")
        while not self._closed:
            conn: Connection | None = None
            try:
                conn = await self._connect()
                self._client = conn
                self.connects += 1
                self._set_state("connected")
                backoff = BACKOFF_MIN
                await self._session(conn)
            except MqttError as exc:
                self._set_state("disconnected", str(exc) or type(exc).__name__)
            except (OSError, ssl.SSLError) as exc:
                self._set_state("disconnected", str(exc) or type(exc).__name__)
            finally:
                self._client = None
                if conn is not None:
                    # What the broker never acknowledged goes out again, first, on the next connection.
                    unacked = conn.unacknowledged()
                    self.failed += len(unacked)
                    self._retry.extendleft(reversed(unacked))
                    conn.disconnect()
            if self._closed:
                return
            log.debug("MQTT %s: reconnecting in %.0f s", self.settings.address, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)

    async def _session(self, conn: Connection) -> None:
        s = self.settings
        if s.commands:
            await conn.subscribe([(self.topics.commands_in("+"), 1)])
        await conn.publish_wait(self.topics.status(), b"online", s.qos, True)
        tasks = [asyncio.ensure_future(self._receive(conn)), asyncio.ensure_future(self._send(conn))]
        closed = asyncio.ensure_future(asyncio.shield(conn.closed))
        try:
            done, _ = await asyncio.wait([*tasks, closed], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
        finally:
            for task in [*tasks, closed]:
                task.cancel()
            await asyncio.gather(*tasks, closed, return_exceptions=True)

    async def _publish_all(self, conn: Connection, publishes: list[Publish]) -> None:
        """Writes the publishes, waiting for room in the window of unacknowledged ones; when the
        connection goes, what was not written yet goes to the retry list and the error propagates
        (what was written and never acknowledged is collected by ``_run``)."""
        qos = self.settings.qos
        for index, p in enumerate(publishes):
            try:
                if qos and conn.inflight >= conn.window:
                    await conn.room()
                conn.publish(p.topic, p.payload, qos, p.retain, _properties(p.timestamp), token=p)
            except MqttError:
                self._retry.extendleft(reversed(publishes[index:]))
                raise
            except ValueError as exc:  # larger than the broker accepts: it never will
                self.failed += 1
                log.warning("MQTT: not published on %s: %s", p.topic, exc)
                continue
            if not qos:
                self.published += 1

    async def _send(self, conn: Connection) -> None:
        await self._publish_all(conn, await self._resync())
        while True:
            if self._retry:
                pending = list(self._retry)
                self._retry.clear()
                await self._publish_all(conn, pending)
                continue
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            publishes: list[Publish] = []
            while self._queue and len(publishes) < WINDOW:
                kind, item = self._queue.popleft()
                try:
                    self._convert(kind, item, publishes)
                except Exception:
                    log.exception("MQTT: could not build the publishes of a %s", kind)
            await self._publish_all(conn, publishes)

    async def _receive(self, conn: Connection) -> None:
        while True:
            message = await conn.inbound.get()
            selector = self.topics.commands_in_selector(message.topic)
            if selector is None or not self.settings.commands:
                continue
            try:
                await self._inbound(conn, selector, message)
            except MqttError:
                raise
            except Exception:
                log.exception("MQTT: inbound command on %s failed", message.topic)

    # -- state sent on every connection ---------------------------------------------------------
    async def _resync(self) -> list[Publish]:
        """Retained state from the store: connected, telemetry, settings, discovery configs."""
        out: list[Publish] = []
        self._announced.clear()
        for device in self._devices.all():
            device_id = int(device["id"])
            out.append(Publish(self.topics.connected(device_id), _bool(bool(device.get("connected"))), True))
            try:
                telemetry = await self._store.telemetry(device_id)
            except StoreError:
                telemetry = {}
            latest = self._telemetry.get(device_id)
            if latest is None:
                latest = self._telemetry[device_id] = Latest()
            for name, entry in telemetry.items():
                latest.apply({name: entry.get("value")}, float(entry.get("ts") or 0.0))
            for name, value in latest.values.items():
                out.append(Publish(self.topics.telemetry(device_id, name), dumps_bytes(value), True,
                                   latest.times[name]))
            if self.settings.homeassistant:
                self._announce(device, out)
        try:
            settings = await self._store.kv_list("settings")
        except StoreError:
            settings = {}
        for key, state in settings.items():
            device_part, _, name = key.partition(":")
            if isinstance(state, dict) and state.get("value") is not None and device_part.isdigit():
                out.append(Publish(self.topics.setting(int(device_part), name), dumps_bytes(state["value"]), True,
                                   state.get("updated")))
        return out

    def _announce(self, device: Mapping[str, Any], out: list[Publish]) -> None:
        s = self.settings
        for topic, payload in homeassistant.discovery_configs(device, self.topics, s.homeassistant_prefix,
                                                              s.commands, s.qos):
            out.append(Publish(topic, dumps_bytes(payload), True))
        self._announced[int(device["id"])] = dict(device)

    # -- queue items → publishes ----------------------------------------------------------------
    def _convert(self, kind: str, item: Any, out: list[Publish]) -> None:
        if kind == "batch":
            self._batch(item, out)
        elif kind == "connected":
            device_id, connected = item
            out.append(Publish(self.topics.connected(device_id), _bool(connected), True))
        elif kind == "bus":
            self._bus_event(item, out)
        elif kind == "forget":
            self._forget(item, out)

    def _batch(self, batch: Committed, out: list[Publish]) -> None:
        topics = self.topics
        device_id = batch.device_id
        channel_id = batch.source.channel_id
        ha = self.settings.homeassistant
        if ha and device_id is not None and batch.device is not None:
            announced = self._announced.get(device_id)
            if announced is None or announced.get("name") != batch.device.get("name"):
                self._announce(batch.device, out)
        for message in batch.messages:
            payload = dumps_bytes(message)
            if device_id is not None:
                out.append(Publish(topics.device_message(device_id), payload))
            ident = batch.ident or message.get("ident")
            if channel_id and ident:
                out.append(Publish(topics.channel_message(channel_id, str(ident)), payload))
            if device_id is None or message.get("timestamp.flagged"):
                continue
            self._changed(device_id, message, out)
            if ha:
                ts = float(message.get("timestamp") or 0.0)
                where = homeassistant.location(message)
                if where is not None and ts >= self._location.get(device_id, float("-inf")):
                    self._location[device_id] = ts
                    out.append(Publish(topics.location(device_id), dumps_bytes(where), True, ts))
        for event in batch.events:
            event_device = event.get("device.id", device_id)
            if event_device is not None:
                out.append(Publish(topics.event(int(event_device), str(event.get("type") or "event")),
                                   dumps_bytes(event)))

    def _changed(self, device_id: int, message: Mapping[str, Any], out: list[Publish]) -> None:
        """One retained publish per parameter whose value changed, by the store's telemetry rule
        (a value with an older device time never replaces a newer one)."""
        ts = float(message.get("timestamp") or 0.0)
        latest = self._telemetry.get(device_id)
        if latest is None:
            latest = self._telemetry[device_id] = Latest()
        topics = self.topics
        for name in latest.apply(message, ts):
            out.append(Publish(topics.telemetry(device_id, name), dumps_bytes(message[name]), True, ts))

    def _bus_event(self, event: BusEvent, out: list[Publish]) -> None:
        data = event.get("data") or {}
        if event["type"] == "command":
            device_id = event.get("device_id")
            name, status = data.get("name"), data.get("status")
            if device_id is None or not name or not status or data.get("unmatched"):
                return
            out.append(Publish(self.topics.command_log(device_id, name, status), dumps_bytes(data)))
            setting = COMMAND_SETTINGS.get(name)
            if setting is not None and status == "processed" and data.get("executed") is not False:
                value = (data.get("properties") or {}).get(setting.prop)
                if value is not None:
                    out.append(Publish(self.topics.setting(device_id, setting.name), dumps_bytes(value), True,
                                       data.get("finished")))
        elif event["type"] == "interval":
            calc = data.get("calc.id", data.get("calc_id"))
            device = data.get("device.id", event.get("device_id"))
            action = data.get("change") or data.get("action")  # analytics.publish: created | updated | deleted
            if calc is None or device is None or action not in INTERVAL_ACTIONS:
                return
            out.append(Publish(self.topics.interval(calc, device, action), dumps_bytes(data)))

    def _forget(self, device_id: int, out: list[Publish]) -> None:
        topics = self.topics
        latest = self._telemetry.pop(device_id, None)
        out.extend(Publish(topics.telemetry(device_id, name), b"", True) for name in (latest.values if latest else ()))
        out.append(Publish(topics.connected(device_id), b"", True))
        if self._location.pop(device_id, None) is not None:
            out.append(Publish(topics.location(device_id), b"", True))
        announced = self._announced.pop(device_id, None)
        if announced is not None:
            out.extend(Publish(t, b"", True)
                       for t in homeassistant.config_topics(announced, self.settings.homeassistant_prefix))

    async def _bus_loop(self) -> None:
        # (an event relayed from another node of a cluster is published by that node)
        sub = self._bus.subscribe(lambda e: "node" not in e, types=frozenset({"command", "interval"}))
        try:
            while True:
                self._offer("bus", await sub.get())
        finally:
            self._bus.unsubscribe(sub)

    # -- inbound commands -----------------------------------------------------------------------
    async def _inbound(self, conn: Connection, selector: str, message: Inbound) -> None:
        self.commands_received += 1
        results: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        try:
            body = loads(message.payload) if message.payload else None
        except ValueError as exc:
            body, errors = None, [{"code": 400, "reason": f"payload is not JSON: {exc}"}]
        items = body if isinstance(body, list) else [body] if isinstance(body, dict) else []
        if not errors and (not items or not all(isinstance(i, dict) and isinstance(i.get("name"), str)
                                                 for i in items)):
            errors.append({"code": 400, "reason": 'payload must be {"name", "properties"?, "ttl"?} or a list of them'})
        devices = [] if errors else self._select(selector, errors)
        for device in devices:
            for item in items:
                try:
                    # as over REST: a destructive command needs "confirm": true, a moving engine stop "force"
                    results.append(await self._commands.enqueue(
                        device, item["name"], item.get("properties"), ttl=item.get("ttl"), expire=item.get("expire"),
                        confirm=item.get("confirm") is True, force=item.get("force") is True))
                except CommandError as exc:
                    errors.append({"code": 400, "reason": exc.reason, "device_id": device["id"]})
        if errors:
            self.commands_rejected += 1
            log.warning("MQTT: command on %s rejected: %s", message.topic, "; ".join(e["reason"] for e in errors))
        if message.response_topic:
            body_out: dict[str, Any] = {"result": results}
            if errors:
                body_out["errors"] = errors
            with contextlib.suppress(ValueError):
                await conn.publish_wait(message.response_topic, dumps_bytes(body_out), self.settings.qos, False,
                                        response_properties(correlation=message.correlation))

    def _select(self, selector: str, errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
        try:
            sel = Selector.parse(selector)
        except SelectorError as exc:
            errors.append({"code": 400, "reason": f"bad device selector {selector!r}: {exc}"})
            return []
        if sel.ids is not None:
            out = []
            for device_id in sel.ids:
                try:
                    out.append(self._devices.get(device_id))
                except StoreError:
                    errors.append({"code": 404, "reason": f"device {device_id} not found"})
            return out
        found = sorted((d for d in self._devices.all() if sel.matches(d)), key=lambda d: d["id"])
        if not found:
            errors.append({"code": 404, "reason": f"no device matches {selector!r}"})
        return found


def _bool(value: bool) -> bytes:
    return b"true" if value else b"false"


def _properties(timestamp: float | None) -> bytes:
    return b"" if timestamp is None else user_property("timestamp", repr(float(timestamp)))
