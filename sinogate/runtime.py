"""The composition root: the one place that builds and wires the process from its config.

Nothing else constructs services. Each component gets the small interfaces it uses
(``sinogate.interfaces``), never this object; tests and the CLI reach components through it.

    config ──► store (by URL) ─┬─► device registry ─► session registry ◄─ command service
                               ├─► pipeline (chain) ─► ingest service ─► after-commit publishers
                               └─► channels (listeners: TCP, UDP) ─► sessions
                                   HTTP API (ApiContext) over the same services

Lifecycle: ``start`` (open the store, load, listen), ``stop`` (stop accepting, close
connections, drain tasks, flush state and deferred writes, close the store).
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import shutil
import signal
import socket
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sinogate.analytics.address import AddressBook
from sinogate.analytics.calcs import CalcRegistry
from sinogate.analytics.cells import CellDatabase
from sinogate.analytics.geofences import GeofenceService
from sinogate.analytics.plugins import PluginRunner, PluginSet
from sinogate.analytics.publish import IntervalEvents
from sinogate.analytics.recalc import Recalculator
from sinogate.api.app import create_app
from sinogate.api.context import ApiContext
from sinogate.api.tokens import TokenService, master_token
from sinogate.cluster.member import ClusterMember
from sinogate.cluster.node import ClusterError, ClusterNode, default_name
from sinogate.cluster.relay import EventRelay
from sinogate.codecs import PROTOCOLS, spec
from sinogate.codecs.limits import CodecLimits, ReassemblyLimits, ReassemblyPool
from sinogate.commands.service import CommandService
from sinogate.commands.support import CommandSupport
from sinogate.config import Config, ConfigError
from sinogate.ingest import IngestService, Source
from sinogate.integrations.metrics import Metrics
from sinogate.integrations.mqtt import MqttBridge
from sinogate.integrations.mqtt import settings_from as mqtt_settings
from sinogate.integrations.notifications import NotificationService
from sinogate.integrations.targets import Senders
from sinogate.pipeline.calcs import Calcs
from sinogate.pipeline.chain import HANDLERS, REQUIRED
from sinogate.pipeline.presence import Presence
from sinogate.pipeline.runner import Pipeline
from sinogate.pipeline.state import DeviceStates
from sinogate.server.bus import EventBus, MessageEvents
from sinogate.server.channels import Channel
from sinogate.server.devices import DeviceRegistry
from sinogate.server.guard import Guard, Limits
from sinogate.server.health import StoreHealth
from sinogate.server.registry import SessionRegistry
from sinogate.server.session import SessionServices, TcpSession
from sinogate.server.tasks import DeferredWrites, Tasks
from sinogate.server.udp import UdpListener
from sinogate.store.base import Conflict, Store, StoreError
from sinogate.store.memory import MemoryStore
from sinogate.store.sqlite import SQLiteStore

log = logging.getLogger("sinogate")

HTTP_MAX_HEAD = 64 * 1024  # bytes of an HTTP request line and headers (README "Limits")

STORE_PROBE_SECONDS = 5.0  # while the store is degraded (disk full), how often a write is tried
RECALC_SWEEP_SECONDS = 10.0  # how often spans of late messages are recalculated


def open_store(config: Config) -> Store:
    """The store the config names: ``sqlite:///path`` (default ``data_dir/sinogate.sqlite``),
    ``postgresql://user@host/db`` (or ``postgres://``) or ``memory://`` (nothing survives the
    process; for tests). Raises ``ConfigError``."""
    url = config.store_location()
    if url.startswith("sqlite:///"):
        # SQLAlchemy's rule: sqlite:///data/x.sqlite is relative, sqlite:////var/x.sqlite absolute.
        path = url.removeprefix("sqlite:///")
        if not path:
            raise ConfigError("store_url sqlite:/// names no file")
        return SQLiteStore(Path(path), synchronous=config.sqlite_synchronous, wal_limit=config.sqlite_wal_limit)
    if url.startswith(("postgresql://", "postgres://")):
        from sinogate.store.postgres import PostgresStore  # loads asyncpg only when used

        # Several nodes on one database: telemetry cached only for the devices this node ingests.
        return PostgresStore(url, shared=bool(config.cluster_url))
    if url == "memory://":
        return MemoryStore()
    raise ConfigError(f"unknown store URL {url!r}: use sqlite:///path, postgresql://user@host/db or memory://")


def limits_from(config: Config) -> Limits:
    """The device-side limits of ``config`` (``server.guard``)."""
    return Limits(
        max_connections=config.max_connections, max_connections_per_peer=config.max_connections_per_peer,
        fd_headroom=config.fd_headroom, unidentified_timeout=config.unidentified_timeout,
        garbage_limit=config.garbage_limit, garbage_window=config.garbage_window, junk_sample=config.junk_sample,
        junk_budget=config.junk_budget, register_rate=config.register_rate, register_burst=config.register_burst,
        log_line_max=config.log_line_max, log_rate=config.log_rate,
        warnings_per_connection=config.warnings_per_connection,
    )


def codec_limits(config: Config) -> CodecLimits:
    """What codecs may hold, shared by every connection (``codecs.limits``)."""
    return CodecLimits(ReassemblyPool(ReassemblyLimits(
        per_connection=config.jt808_reassembly_bytes, total=config.jt808_reassembly_total,
        max_age=config.jt808_reassembly_age,
    )))


def token_service(store: Store) -> TokenService:
    """The API tokens kept in ``store`` (for the server and for ``sinogate token``)."""
    return TokenService(store)


def cell_database(config: Config) -> CellDatabase:
    """The cell towers of the ``lbs`` plugin (for the server and for ``sinogate cells``)."""
    return CellDatabase(config.data_dir / "cells.sqlite")


def build_channels(config: Config) -> list[Channel]:
    """The listeners: ``config.listeners`` when set, else one per protocol port (id = protocol id)."""
    if config.listeners is None:
        ports = {"h02": config.h02_port, "jt808": config.jt808_port}
        return [
            Channel(spec(p).id, p, p, spec(p).id, config.host, port, config.udp, config.auto_register,
                    register_per_connection=config.register_per_connection)
            for p, port in ports.items() if port
        ]
    channels = []
    for index, listener in enumerate(config.listeners, start=1):
        if listener.protocol not in PROTOCOLS:
            known = ", ".join(PROTOCOLS)
            raise ConfigError(f"listener {index}: unknown protocol {listener.protocol!r}; known: {known}")
        protocol = spec(listener.protocol)
        channels.append(Channel(
            listener.id or index, listener.name or listener.protocol, protocol.name, protocol.id,
            listener.host or config.host, listener.port,
            config.udp if listener.udp is None else listener.udp,
            config.auto_register if listener.auto_register is None else listener.auto_register,
            follow_ident=listener.follow_ident,
            register_per_connection=(config.register_per_connection if listener.register_per_connection is None
                                     else listener.register_per_connection),
        ))
    ids = [c.id for c in channels]
    if len(set(ids)) != len(ids):
        raise ConfigError("listeners: two channels have the same id")
    return channels


def build_pipeline(config: Config, services: Mapping[str, object] | None = None) -> Pipeline:
    """The phase-1 chain in the order of ``pipeline.chain.HANDLERS``, minus disabled handlers;
    a handler gets the ``services`` it names in ``needs``."""
    known = {h.name for h in HANDLERS}
    unknown = set(config.handlers_disabled) - known
    if unknown:
        raise ConfigError(f"handlers_disabled names unknown handlers: {', '.join(sorted(unknown))}")
    required = REQUIRED & set(config.handlers_disabled)
    if required:
        raise ConfigError(f"these handlers cannot be disabled: {', '.join(sorted(required))}")
    if "odometer" in config.handlers_disabled and "calcs" not in config.handlers_disabled:
        raise ConfigError("the calcs handler measures distances with the odometer's odometer.step: "
                          "disable both or neither")
    services = services or {}
    return Pipeline([
        cls(config.handlers, **{name: services[name] for name in cls.needs})
        for cls in HANDLERS if cls.name not in config.handlers_disabled
    ])


class Runtime:
    """The running process. Attributes are the wired components (for tests and the CLI)."""

    def __init__(self, config: Config, store: Store | None = None) -> None:
        if config.cluster_url and not config.store_location().startswith(("postgresql://", "postgres://")):
            raise ConfigError("cluster_url needs store_url = \"postgresql://…\": the nodes share one PostgreSQL store")
        self.config = config
        self.started = time.time()
        self.store = store or open_store(config)
        self.health = StoreHealth()  # disk full: degraded, not down (server.health)
        self.guard = Guard(limits_from(config))  # device-side limits (server.guard)
        self.codec_limits = codec_limits(config)
        self.tasks = Tasks(expected=self.health.failed)
        self.bus = EventBus()
        self.devices = DeviceRegistry(self.store, config.ident_max_length)
        self.later = DeferredWrites(self.store, self.tasks)
        self.sessions = SessionRegistry(self.devices, self.store, self.tasks, self.later, self.bus, self.guard)
        # Several nodes (cluster_url): NATS carries who holds which device, requests and live
        # events; PostgreSQL everything else (sinogate.cluster).
        self.cluster = (ClusterNode(config.cluster_url, config.node_name or default_name(config.http_port), self.tasks,
                                    config.cluster_heartbeat, config.cluster_name, config.cluster_replicas)
                        if config.cluster_url else None)
        self.states = DeviceStates(self.store, per_device=self.cluster is not None)
        self.devices.on_delete(self.states.forget)
        self.geofences = GeofenceService(self.store)
        self.plugins = PluginSet(self.store)
        self.devices.on_delete(self.plugins.device_changed)
        self.cells = cell_database(config)
        self.addresses = AddressBook()
        self.calcs = CalcRegistry(self.store, config.handlers)
        self.pipeline = build_pipeline(config, {
            "geofences": self.geofences, "calcs": self.calcs,
            "plugins": self.plugins, "plugin_runner": PluginRunner(self.cells, self.addresses),
        })
        self.commands = CommandService(self.store, self.store, self.sessions, self.tasks, self.bus, self.later,
                                       telemetry=self.store, engine_stop_max_speed=config.engine_stop_max_speed,
                                       routing=self.cluster)
        self.support = CommandSupport(self.store, self.sessions, self.tasks)
        self.commands.observers.append(self.support.observe)
        self.devices.on_delete(self.support.forget)
        # Phase 2, in order: replies close their commands before anyone sees the message.
        self.ingest = IngestService(self.store, self.pipeline, self.states,
                                    publishers=[self.commands, self.support, MessageEvents(self.bus)])
        self.member: ClusterMember | None = None
        self.relay: EventRelay | None = None
        if self.cluster is not None:
            # The command service hears of a device after the node it left has let it go.
            self.member = ClusterMember(self.cluster, self.sessions, self.commands, self.states, self.store,
                                        self.tasks)
            self.member.listeners.append(self.commands)
            self.states.lender = self.member
            self.sessions.add_listener(self.member)
            self.relay = EventRelay(self.cluster, self.bus, on_remote=self._remote_event)
        else:
            self.sessions.add_listener(self.commands)
        # Calcs: interval changes on the bus after the commit; recalculation from stored messages.
        self.intervals = IntervalEvents(self.bus)
        self.ingest.add_publisher(self.intervals)
        calcs_handler = next((h for h in self.pipeline.handlers if isinstance(h, Calcs)), None)
        self.recalc = (Recalculator(self.store, self.pipeline.handlers, self.calcs, self.ingest, self.states,
                                    self.devices, self.intervals) if calcs_handler is not None else None)
        # Integrations: each only queues in phase 2, so a dead broker or webhook never slows ingest.
        self.mqtt = (MqttBridge(mqtt_settings(config), self.store, self.devices, self.commands, self.bus)
                     if config.mqtt_url else None)
        self.notifications = NotificationService(
            self.store, self.devices, Senders(config.notify_timeout, self.mqtt), retries=config.notify_retries,
            backoff=config.notify_backoff, queue=config.notify_queue)
        self.metrics = Metrics(self.sessions, self.devices, self.bus)
        self.metrics.watch(mqtt=self.mqtt, notifications=self.notifications, ingest=self.ingest, guard=self.guard,
                           health=self.health, reassembly=self.codec_limits.reassembly)
        for integration in (self.metrics, self.notifications, self.mqtt):
            if integration is not None:
                self.ingest.add_publisher(integration)
        if self.mqtt is not None:
            self.sessions.add_listener(self.mqtt)
            self.devices.on_delete(self.mqtt.forget)
        self.channels = build_channels(config)
        self.session_services = SessionServices(
            self.ingest, self.devices, self.sessions, self.store, self.later, self.bus, config.garbage_limit,
            guard=self.guard, health=self.health, codec_limits=self.codec_limits,
        )
        self.udp: dict[int, UdpListener] = {}  # by channel id
        self.ports: dict[str, int] = {}  # protocol (first channel of each) or "http" → bound port
        self._servers: list[asyncio.AbstractServer] = []
        self._stopping = asyncio.Event()
        self._http: Any = None
        self.api: ApiContext | None = None  # the HTTP API's context, once it listens
        self._loops: list[asyncio.Task[Any]] = []

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def session_for(self, device_id: int) -> Any:
        return self.sessions.session_for(device_id)

    def api_context(self) -> ApiContext:
        return ApiContext(
            store=self.store, devices=self.devices, sessions=self.sessions, commands=self.commands,
            ingest=self.ingest, bus=self.bus, tokens=token_service(self.store), geofences=self.geofences,
            master_token=master_token(self.config.token, self.config.data_dir), channels=self.channels,
            ports=self.ports, started=self.started, is_stopping=lambda: self.stopping, plugins=self.plugins,
            notifications=self.notifications, metrics=self.metrics, metrics_token=self.config.metrics_token,
            max_body=self.config.http_max_body, guard=self.guard, health=self.health,
            scan_max=self.config.api_scan_max, scan_seconds=self.config.api_scan_seconds,
            devices_page=self.config.api_devices_page,
            calcs=self.calcs if self.recalc is not None else None, recalc=self.recalc,
            support=self.support,
            on_change=self._api_changed if self.cluster is not None else None,
            cluster=self._cluster_status if self.cluster is not None else None,
            extra={"map_tiles_url": self.config.map_tiles_url,
                   "map_tiles_attribution": self.config.map_tiles_attribution,
                   "engine_stop_max_speed": getattr(self.config, "engine_stop_max_speed", 20.0)},
        )

    # lifecycle ---------------------------------------------------------------------------------
    async def start(self) -> None:
        cfg = self.config
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        if self.cluster is not None:  # first: a node that cannot reach NATS touches nothing
            try:
                await self.cluster.start()
            except ClusterError as exc:
                raise ConfigError(str(exc)) from exc
        await self.store.open()
        await self.devices.load()
        await self.states.load()
        await self.geofences.load()
        await self.plugins.load()
        await self.calcs.load()
        await self.support.load()
        stale = [d["id"] for d in self.devices.all() if d.get("connected")]  # nothing is connected yet
        for device_id in stale:
            self.devices.mark(device_id, False, None)
        # Concurrent, so the writer folds them into a few transactions instead of one each.
        try:
            await asyncio.gather(*(self.store.set_connected(device_id, False, None) for device_id in stale))
        except Exception as exc:  # a full disk: start degraded (the API up, acknowledgements withheld)
            if not self.health.failed(exc):
                raise
        if self.cluster is not None:
            await self._join_cluster()
        self.commands.start()
        await self.notifications.start(self.tasks)
        self.metrics.start(self.tasks)
        if self.mqtt is not None:
            self.mqtt.start(self.tasks)
        if cfg.metrics_port:
            self.ports["metrics"] = await self.metrics.serve(cfg.metrics_host, cfg.metrics_port, self.tasks)
        for channel in self.channels:
            await self._listen(channel)
        if cfg.http_port:
            await self._start_http()
        self._loops += [self.tasks.spawn(self._sweep_idle()), self.tasks.spawn(self._housekeeping()),
                       self.tasks.spawn(self.addresses.run()), self.tasks.spawn(self._register_pending()),
                       self.tasks.spawn(self._watch_store())]
        if self.recalc is not None:
            self._loops += [self.tasks.spawn(self.recalc.work()), self.tasks.spawn(self.recalc.resume()),
                            self.tasks.spawn(self.recalc.watch(RECALC_SWEEP_SECONDS))]
        presence = next((h for h in self.pipeline.handlers if isinstance(h, Presence)), None)
        if presence is not None:
            self._loops.append(self.tasks.spawn(self._watch_offline(presence)))

    # several nodes ------------------------------------------------------------------------------
    async def _join_cluster(self) -> None:
        cluster, member, relay = self.cluster, self.member, self.relay
        assert cluster is not None and member is not None and relay is not None
        await member.start()
        await cluster.serve("command", self._serve_command)
        self.devices.on_change(lambda device_id: cluster.broadcast("device", device_id=device_id))
        cluster.on_broadcast("device", self._device_changed)
        cluster.on_broadcast("config", self._reload_config)
        cluster.on_broadcast("telemetry", self._telemetry_changed)
        from sinogate.store.postgres import PostgresStore  # a cluster's store is always one

        if isinstance(self.store, PostgresStore):
            self.store.on_forget = lambda device_id: cluster.broadcast("telemetry", device_ids=[device_id])
        cluster.on_node_lost(self._node_lost)
        cluster.on_reconnect(self._reload_everything)
        self._loops.append(self.tasks.spawn(relay.run()))

    async def _serve_command(self, payload: dict[str, Any]) -> dict[str, Any]:
        device_id = int(payload.get("device_id") or 0)
        try:
            device: dict[str, Any] | None = self.devices.get(device_id)
        except StoreError:
            device = None
        return await self.commands.serve_request(str(payload.get("op")), payload, device)

    def _remote_event(self, event: Any) -> None:
        """Another node's connect/disconnect: this node's device list shows it too."""
        data = event.get("data") or {}
        device_id = event.get("device_id")
        if event.get("type") == "log" and device_id is not None and data.get("event") in ("connect", "disconnect"):
            self.tasks.spawn(self._remote_connection(int(device_id), data["event"] == "connect"))

    async def _remote_connection(self, device_id: int, connected: bool) -> None:
        try:
            self.devices.get(device_id)
        except StoreError:  # registered on that node a moment ago: its broadcast may not be here yet
            await self.devices.refresh(device_id)
        if self.sessions.session_for(device_id) is None:
            self.devices.mark(device_id, connected, time.time())

    async def _device_changed(self, payload: dict[str, Any]) -> None:
        device_id = int(payload["device_id"])
        await self.devices.refresh(device_id, attached=self.sessions.session_for(device_id) is not None)

    async def _reload_config(self, payload: dict[str, Any]) -> None:
        await self.geofences.load()
        await self.plugins.load()
        await self.calcs.load()
        await self.notifications.reload()
        if self.api is not None:
            self.api.tokens.forget_cached()

    async def _reload_everything(self) -> None:
        """NATS was away: whatever other nodes changed meanwhile was not heard; read it all again."""
        await self.devices.reload(lambda device_id: self.sessions.session_for(device_id) is not None)
        await self._reload_config({})

    async def _telemetry_changed(self, payload: dict[str, Any]) -> None:
        for device_id in payload.get("device_ids") or []:
            await self.store.release_telemetry(int(device_id), write_back=False)

    async def _node_lost(self, node: str, device_ids: list[int]) -> None:
        for device_id in device_ids:
            if self.sessions.session_for(device_id) is not None:
                continue
            self.devices.mark(device_id, False, None)
            try:
                await self.store.set_connected(device_id, False, None)
            except StoreError as exc:
                log.warning("device %s of lost node %s: %s", device_id, node, exc)

    def _api_changed(self, path: str) -> None:
        """A change through this node's API: the other nodes reload what they cache of it."""
        cluster = self.cluster
        assert cluster is not None
        parts = path.strip("/").split("/")
        if len(parts) >= 2 and parts[0] == "gw" and parts[1] in ("geofences", "plugins", "calcs", "notifications",
                                                                   "tokens"):
            cluster.broadcast("config", path=path)

    def _cluster_status(self) -> dict[str, Any]:
        cluster = self.cluster
        assert cluster is not None
        return {"node": cluster.name, "url": cluster.url, "connected": cluster.connected, "nodes": cluster.nodes()}

    async def _listen(self, channel: Channel) -> None:
        services = self.session_services
        guard = self.guard

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            peer = writer.get_extra_info("peername") or ("?", 0)
            host = str(peer[0])
            refused = guard.admit_tcp(host)
            if refused is not None:  # closed at once (RST): the descriptor is free again
                guard.hit(refused[0], "%s connection from %s closed: %s", channel.protocol, host, refused[1])
                writer.transport.abort()
                return
            try:
                session = TcpSession(services, channel, reader, writer)
                self.sessions.opened(session)
                try:
                    await session.run()
                except Exception:
                    log.exception("%s session %s from %s failed", channel.protocol, session.conn_id, session.peer)
                finally:
                    self.sessions.closed(session)
            finally:
                guard.release_tcp(host)

        server = await asyncio.start_server(handle, channel.host, channel.port, limit=1 << 16, backlog=4096)
        self._servers.append(server)
        channel.bound = server.sockets[0].getsockname()[1]
        self.ports.setdefault(channel.protocol, channel.bound)
        log.info("%s listening on tcp %s:%s (channel %s)", channel.protocol, channel.host, channel.bound, channel.id)
        if channel.udp:
            listener = UdpListener(services, channel, self.tasks)
            loop = asyncio.get_running_loop()
            await loop.create_datagram_endpoint(lambda: listener, local_addr=(channel.host, channel.bound))
            self.udp[channel.id] = listener
            log.info("%s listening on udp %s:%s (channel %s)", channel.protocol, channel.host, channel.bound,
                     channel.id)

    async def _start_http(self) -> None:
        import uvicorn

        self.api = self.api_context()
        app = create_app(self.api)
        # A request head over h11's 16 KiB (a long filter or selector URL) would be refused before
        # it is read, and the connection closed with the rest of it unread, so the client often
        # sees a reset instead of the 400: heads up to 64 KiB are read and answered with a reason.
        config = uvicorn.Config(app, host=self.config.http_host, port=self.config.http_port,
                                log_level="warning", access_log=False, lifespan="off",
                                h11_max_incomplete_event_size=HTTP_MAX_HEAD)
        server = uvicorn.Server(config)
        server.install_signal_handlers = lambda: None  # type: ignore[attr-defined]
        # Bind here, so a taken port is an OSError we report, not an exit inside uvicorn.
        family = socket.AF_INET6 if ":" in self.config.http_host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.config.http_host, self.config.http_port))
        except OSError:
            sock.close()
            raise
        self._http = server
        self.tasks.spawn(server.serve(sockets=[sock]))
        while not server.started:
            await asyncio.sleep(0.01)
        port = sock.getsockname()[1]
        self.ports["http"] = port
        log.info("HTTP API listening on http://%s:%s", self.config.http_host, port)

    async def _sweep_idle(self) -> None:
        """Closes TCP connections with no complete frame for ``idle_timeout`` seconds, and those that
        named no device within ``unidentified_timeout`` seconds (much sooner: a connection that says
        nothing valid only holds a descriptor)."""
        timeout = self.config.idle_timeout
        unidentified = min(self.config.unidentified_timeout, timeout)
        interval = max(0.1, min(5.0, unidentified / 4))
        while True:
            await asyncio.sleep(interval)
            now = time.time()
            idle = self.sessions.close_idle("tcp", now - timeout, f"idle for {timeout:g} s")
            late = self.sessions.close_unidentified("tcp", now - unidentified,
                                                    f"named no device within {unidentified:g} s")
            if idle:
                self.guard.hits["idle_timeout"] = self.guard.hits.get("idle_timeout", 0) + idle
            if late:
                self.guard.hit("unidentified_timeout", "closed %d connection(s) that named no device within %g s",
                               late, unidentified, count=late)
            self.guard.report_dropped_lines()

    async def _register_pending(self) -> None:
        """Registers the idents the registration budget held back, as it refills (oldest first)."""
        while True:
            await asyncio.sleep(1.0)
            while (key := self.guard.next_pending()) is not None:
                protocol, ident = key
                if self.devices.find(protocol, ident) is not None:
                    continue
                try:
                    device = await self.devices.create({"ident": ident, "protocol": protocol, "name": ident})
                except Conflict:
                    continue
                except Exception as exc:
                    if self.health.failed(exc):
                        self.guard.pending[key] = time.time()  # again once the store takes writes
                        break
                    log.warning("could not register %s %s: %s", protocol, ident, exc)
                    continue
                log.info("registered new %s device %s (id %s), held back by the registration budget",
                         protocol, ident, device["id"])

    async def _watch_store(self) -> None:
        """While the store is degraded (disk full), tries a small write every few seconds and
        returns to normal once one commits and the disk has room again."""
        while True:
            await asyncio.sleep(STORE_PROBE_SECONDS)
            if not self.health.degraded:
                continue
            if self._disk_free() < self.config.disk_resume_free:
                continue
            try:
                await self.store.kv_set("sinogate.health", "probe", time.time())
            except Exception as exc:
                if not self.health.failed(exc):
                    log.warning("store probe failed: %s", exc)
                continue
            self.health.recovered()

    def _disk_free(self) -> int:
        """Free bytes where a SQLite store lives (a large number for other stores)."""
        url = self.config.store_location()
        if not url.startswith("sqlite:///"):
            return 1 << 62
        try:
            return shutil.disk_usage(Path(url.removeprefix("sqlite:///")).parent).free
        except OSError:
            return 0

    async def _watch_offline(self, presence: Presence) -> None:
        """Records ``device.offline`` for devices silent longer than their ``offline_after``."""
        interval = max(0.2, min(30.0, float(presence.defaults["offline_after"]) / 4))
        while True:
            await asyncio.sleep(interval)
            now = time.time()
            for device in self.devices.all():
                if self.states.peek(device["id"]) is None:
                    continue  # never seen since it was created: neither online nor offline
                if (self.member is not None and self.sessions.session_for(device["id"]) is None
                        and await self.member.holder(device["id"]) is not None):
                    self.states.forget(device["id"])  # another node has it now and watches it
                    continue
                event = await self.ingest.with_state(device["id"], functools.partial(presence.offline_event,
                                                                                     device=device, now=now))
                if event is not None:
                    source = Source(device["protocol"], "server", "", 0, spec(device["protocol"]).id)
                    try:
                        await self.ingest.record_events(source, device, [event], now)
                    except Exception as exc:
                        if not self.health.failed(exc):
                            raise

    async def _housekeeping(self) -> None:
        cfg = self.config
        interval = min(cfg.state_flush_seconds, cfg.idle_timeout / 2)
        last_purge = 0.0
        while True:
            await asyncio.sleep(interval)
            for listener in self.udp.values():
                listener.expire(cfg.idle_timeout, cfg.unidentified_timeout)
            try:
                await self.states.flush()
            except Exception as exc:
                if self.health.failed(exc):
                    continue  # a full disk: saved once the store takes writes again
                if not isinstance(exc, StoreError):
                    raise
                log.warning("could not save handler state: %s", exc)
            now = time.time()
            purges = self.cluster is None or self.cluster.leader()  # one node purges the shared store
            if purges and (cfg.messages_ttl_days or cfg.packets_ttl_days) and now - last_purge >= 60.0:
                last_purge = now
                try:
                    removed = await self.store.purge(
                        now - cfg.messages_ttl_days * 86400 if cfg.messages_ttl_days else None,
                        now - cfg.packets_ttl_days * 86400 if cfg.packets_ttl_days else None,
                    )
                except Exception as exc:
                    if not self.health.failed(exc):
                        raise
                    continue
                if any(removed.values()):
                    log.info("retention purge removed %s", removed)

    async def stop(self) -> None:
        """Stop accepting, close connections, flush every pending write, close the store."""
        self._stopping.set()
        for task in self._loops:
            task.cancel()
        self.commands.close()
        for server in self._servers:
            server.close()
        self.sessions.close_all("server shutdown")
        for listener in self.udp.values():
            if listener.transport is not None:
                listener.transport.close()
        if self._http is not None:
            self._http.should_exit = True
        for server in self._servers:
            try:
                await asyncio.wait_for(server.wait_closed(), 5)
            except TimeoutError:
                pass
        if self.mqtt is not None:
            await self.mqtt.stop()  # publishes what is queued (a few seconds at most), then disconnects
        await self.notifications.stop()
        await self.metrics.stop()
        if self.cluster is not None:
            await asyncio.sleep(0)  # the closed connections' detach tasks start (they let their devices go)
            await self.cluster.stop()  # its heartbeat and watch end here, so the drain below is short
        await self.tasks.drain(10)
        for final in (self.states.flush, self.later.flush):
            try:
                await final()
            except Exception as exc:  # a full disk: nothing acknowledged is lost (it was committed)
                if not self.health.failed(exc):
                    raise
        try:
            await self.store.close()
        except Exception as exc:
            if not self.health.failed(exc):
                raise
            log.warning("store closed without its last write-back (%s); it is rebuilt on the next start",
                        self.health.reason)

    async def serve_forever(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._stopping.set)
        try:
            await self.start()
        except OSError:
            await self.stop()  # release what did open (store, listeners) before reporting
            raise
        # Messages are plain dicts without reference cycles; the default collector thresholds
        # make it walk millions of them several times a second under load, in pauses of seconds.
        gc.collect()
        gc.freeze()
        gc.set_threshold(100_000, 50, 100)
        await self._stopping.wait()
        log.info("shutting down")
        await self.stop()
