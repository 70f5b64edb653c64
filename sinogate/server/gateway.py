"""The gateway process: listeners, live sessions, the store, the event bus and the HTTP API."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import socket
import time
from collections.abc import Coroutine
from typing import Any, Protocol

from sinogate.config import Config
from sinogate.pipeline import Pipeline, default_pipeline
from sinogate.server.bus import EventBus
from sinogate.server.devices import DeviceRegistry
from sinogate.server.session import Session, TcpSession
from sinogate.server.udp import UdpListener
from sinogate.store.base import IngestBatch, LogRecord, Store

log = logging.getLogger("sinogate")


class CommandHooks(Protocol):
    """What the command service needs from the ingest path."""

    def on_attach(self, session: Session) -> None: ...

    def on_messages(self, session: Session, messages: list[dict[str, Any]]) -> None: ...

    def on_detach(self, session: Session) -> None: ...

    def close(self) -> None: ...


def open_store(config: Config) -> Store:
    from sinogate.store.sqlite import SQLiteStore

    return SQLiteStore(config.data_dir / "sinogate.sqlite", synchronous=config.sqlite_synchronous)


class Gateway:
    def __init__(self, config: Config, store: Store | None = None) -> None:
        self.config = config
        self.store = store or open_store(config)
        self.devices = DeviceRegistry(self.store)
        self.bus = EventBus()
        self.pipeline: Pipeline = default_pipeline()
        self.commands: CommandHooks | None = None
        self.sessions: dict[int, Session] = {}  # by device id: the live connection of each device
        self.connections: set[Session] = set()  # every open connection, identified or not
        self.udp: dict[str, UdpListener] = {}
        self.ports: dict[str, int] = {}
        self._servers: list[asyncio.AbstractServer] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = asyncio.Event()
        self._http: Any = None
        self._housekeeper: asyncio.Task[Any] | None = None
        self._sweeper: asyncio.Task[Any] | None = None
        self._later = IngestBatch()
        self._later_task: asyncio.Task[Any] | None = None
        self.started = time.time()

    # background work ---------------------------------------------------------------------------
    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed", exc_info=task.exception())

    def store_later(self, batch: IngestBatch) -> None:
        """Writes that nothing waits on (sent bytes, log lines): gathered for a few milliseconds
        and written together, still flushed before exit."""
        later = self._later
        later.messages.extend(batch.messages)
        later.packets.extend(batch.packets)
        later.logs.extend(batch.logs)
        later.idents.extend(batch.idents)
        if self._later_task is None:
            self._later_task = self.spawn(self._flush_later())

    async def _flush_later(self) -> None:
        await asyncio.sleep(0.05)
        batch, self._later, self._later_task = self._later, IngestBatch(), None
        await self.store.ingest(batch)

    # sessions ----------------------------------------------------------------------------------
    def attach(self, session: Session) -> None:
        device_id = session.device_id
        assert device_id is not None
        old = self.sessions.get(device_id)
        if old is not None and old is not session:
            log.info("device %s reconnected from %s; closing the old connection from %s",
                     session.ident, session.peer, old.peer)
            old.close("replaced by a new connection")
        self.sessions[device_id] = session
        self.devices.mark(device_id, True, session.last_active)
        self.spawn(self.store.set_connected(device_id, True, session.last_active))
        self.store_later(IngestBatch(logs=[LogRecord(
            time.time(), "connect", session.protocol, session.conn_id, session.ident, device_id, session.peer,
            session.transport_name,
        )]))
        self.bus.publish({"type": "log", "device_id": device_id, "protocol": session.protocol,
                          "ident": session.ident, "data": {"event": "connect", "peer": session.peer}})
        if self.commands is not None:
            self.commands.on_attach(session)

    def detach(self, session: Session) -> None:
        self.connections.discard(session)
        device_id = session.device_id
        if device_id is None or self.sessions.get(device_id) is not session:
            return
        del self.sessions[device_id]
        self.devices.mark(device_id, False, session.last_active)
        self.spawn(self.store.set_connected(device_id, False, session.last_active))
        self.bus.publish({"type": "log", "device_id": device_id, "protocol": session.protocol,
                          "ident": session.ident, "data": {"event": "disconnect", "peer": session.peer}})
        if self.commands is not None:
            self.commands.on_detach(session)

    @property
    def stopping(self) -> bool:
        """True once shutdown began: long-lived work (streams, loops) should end."""
        return self._stopping.is_set()

    def session_for(self, device_id: int) -> Session | None:
        session = self.sessions.get(device_id)
        return session if session is not None and not session.closed else None

    def after_ingest(self, session: Session, messages: list[dict[str, Any]]) -> None:
        if session.device_id is not None:
            self.devices.mark(session.device_id, True, session.last_active)
        if self.commands is not None:
            self.commands.on_messages(session, messages)
        if self.bus.active:
            for m in messages:
                self.bus.publish({"type": "message", "device_id": session.device_id, "protocol": session.protocol,
                                  "ident": session.ident, "data": m})

    async def _handle_tcp(self, protocol: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = TcpSession(self, protocol, reader, writer)
        self.connections.add(session)
        try:
            await session.run()
        except Exception:
            log.exception("%s session %s from %s failed", protocol, session.conn_id, session.peer)
        finally:
            self.connections.discard(session)

    # lifecycle ---------------------------------------------------------------------------------
    async def start(self) -> None:
        cfg = self.config
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        await self.store.open()
        await self.devices.load()
        stale = [d["id"] for d in self.devices.all() if d.get("connected")]  # nothing is connected yet
        for device_id in stale:
            self.devices.mark(device_id, False, None)
        # Concurrent, so the writer folds them into a few transactions instead of one each.
        await asyncio.gather(*(self.store.set_connected(device_id, False, None) for device_id in stale))
        from sinogate.commands.service import CommandService

        self.commands = CommandService(self)
        loop = asyncio.get_running_loop()
        for protocol, port in (("h02", cfg.h02_port), ("jt808", cfg.jt808_port)):
            if port == 0:
                continue
            server = await asyncio.start_server(
                lambda r, w, p=protocol: self._handle_tcp(p, r, w), cfg.host, port, limit=1 << 16, backlog=4096
            )
            self._servers.append(server)
            bound = server.sockets[0].getsockname()[1]
            self.ports[protocol] = bound
            log.info("%s listening on tcp %s:%s", protocol, cfg.host, bound)
            if cfg.udp:
                listener = UdpListener(self, protocol)
                await loop.create_datagram_endpoint(lambda lst=listener: lst, local_addr=(cfg.host, bound))
                self.udp[protocol] = listener
                log.info("%s listening on udp %s:%s", protocol, cfg.host, bound)
        if cfg.http_port:
            await self._start_http()
        self._housekeeper = self.spawn(self._housekeeping())
        self._sweeper = self.spawn(self._sweep_idle())

    async def _start_http(self) -> None:
        import uvicorn

        from sinogate.api.app import create_app

        app = create_app(self)
        config = uvicorn.Config(app, host=self.config.http_host, port=self.config.http_port,
                                log_level="warning", access_log=False, lifespan="off")
        server = uvicorn.Server(config)
        server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
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
        self.spawn(server.serve(sockets=[sock]))
        while not server.started:
            await asyncio.sleep(0.01)
        port = sock.getsockname()[1]
        self.ports["http"] = port
        log.info("HTTP API listening on http://%s:%s", self.config.http_host, port)

    async def _sweep_idle(self) -> None:
        """Closes TCP connections with no complete frame for ``idle_timeout`` seconds."""
        timeout = self.config.idle_timeout
        interval = max(0.1, min(5.0, timeout / 4))
        while True:
            await asyncio.sleep(interval)
            deadline = time.time() - timeout
            for session in list(self.connections):
                if session.last_frame < deadline:
                    session.close(f"idle for {timeout:g} s")

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(min(60.0, self.config.idle_timeout / 2))
            for listener in self.udp.values():
                listener.expire(self.config.idle_timeout)
            now = time.time()
            cfg = self.config
            if cfg.messages_ttl_days or cfg.packets_ttl_days:
                removed = await self.store.purge(
                    now - cfg.messages_ttl_days * 86400 if cfg.messages_ttl_days else None,
                    now - cfg.packets_ttl_days * 86400 if cfg.packets_ttl_days else None,
                )
                if any(removed.values()):
                    log.info("retention purge removed %s", removed)

    async def stop(self) -> None:
        """Stop accepting, close connections, flush every pending write."""
        self._stopping.set()
        for task in (self._housekeeper, self._sweeper):
            if task is not None:
                task.cancel()
        if self.commands is not None:
            self.commands.close()
        for server in self._servers:
            server.close()
        for session in list(self.connections):
            session.close("server shutdown")
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
        deadline = time.time() + 10
        while self._tasks and time.time() < deadline:
            pending = [t for t in self._tasks if t is not asyncio.current_task()]
            if not pending:
                break
            await asyncio.wait(pending, timeout=max(0.0, deadline - time.time()))
        leftover, self._later = self._later, IngestBatch()
        if leftover.packets or leftover.logs or leftover.messages or leftover.idents:
            await self.store.ingest(leftover)
        await self.store.close()

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
