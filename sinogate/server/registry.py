"""Live connections: every open one, and the one that speaks for each device."""

from __future__ import annotations

import logging
import time

from sinogate.interfaces import DeviceConnection, EventSink, LaterWriter, SessionListener, TaskRunner
from sinogate.server.devices import DeviceRegistry
from sinogate.server.guard import Guard
from sinogate.store.base import DeviceStore, IngestBatch, LogRecord

log = logging.getLogger("sinogate")


class SessionRegistry:
    """Implements ``SessionLookup``. A device has at most one attached connection: a new one
    closes the old (a tracker that reconnected before the old TCP connection timed out)."""

    def __init__(self, devices: DeviceRegistry, store: DeviceStore, tasks: TaskRunner, later: LaterWriter,
                 events: EventSink, guard: Guard | None = None) -> None:
        self._devices = devices
        self._device_log = (guard or Guard()).device_log  # lines caused by devices: escaped, rate-limited
        self._store = store
        self._tasks = tasks
        self._later = later
        self._events = events
        self._listeners: list[SessionListener] = []
        self._by_device: dict[int, DeviceConnection] = {}
        self._open: dict[int, DeviceConnection] = {}  # conn id → every open connection

    def add_listener(self, listener: SessionListener) -> None:
        self._listeners.append(listener)

    # connections -----------------------------------------------------------------------------
    def opened(self, session: DeviceConnection) -> None:
        self._open[session.conn_id] = session

    def closed(self, session: DeviceConnection) -> None:
        self._open.pop(session.conn_id, None)

    def connections(self) -> list[DeviceConnection]:
        """Every open connection (TCP and active UDP peers), by connection id."""
        return sorted((s for s in self._open.values() if not s.closed), key=lambda s: s.conn_id)

    def close_idle(self, transport: str, before: float, reason: str) -> int:
        """Closes connections of ``transport`` whose last complete frame is older than ``before``."""
        idle = [s for s in self._open.values() if s.transport_name == transport and s.last_frame < before]
        for session in idle:
            session.close(reason)
        return len(idle)

    def close_unidentified(self, transport: str, before: float, reason: str) -> int:
        """Closes connections of ``transport`` opened before ``before`` that never named their device."""
        late = [s for s in self._open.values()
                if s.transport_name == transport and s.ident is None and s.opened < before and not s.closed]
        for session in late:
            session.close(reason)
        return len(late)

    def close_all(self, reason: str) -> None:
        for session in list(self._open.values()):
            session.close(reason)

    # devices ---------------------------------------------------------------------------------
    def session_for(self, device_id: int) -> DeviceConnection | None:
        session = self._by_device.get(device_id)
        return session if session is not None and not session.closed else None

    def attach(self, session: DeviceConnection) -> None:
        device_id = session.device_id
        assert device_id is not None
        old = self._by_device.get(device_id)
        if old is not None and old is not session:
            # (rate-limited: peers taking one device from each other must not flood the log)
            self._device_log(logging.INFO, "device %s reconnected from %s; closing the old connection from %s",
                             session.ident, session.peer, old.peer)
            old.close("replaced by a new connection")
        self._by_device[device_id] = session
        self._devices.mark(device_id, True, session.last_active)
        self._tasks.spawn(self._store.set_connected(device_id, True, session.last_active))
        self._later.store_later(IngestBatch(logs=[LogRecord(
            time.time(), "connect", session.protocol, session.conn_id, session.ident, device_id, session.peer,
            session.transport_name,
        )]))
        self._events.publish({"type": "log", "device_id": device_id, "protocol": session.protocol,
                              "ident": session.ident, "data": {"event": "connect", "peer": session.peer}})
        for listener in self._listeners:
            listener.on_attach(session)

    def detach(self, session: DeviceConnection) -> None:
        self.closed(session)
        device_id = session.device_id
        if device_id is not None:
            self.release(session, device_id)

    def release(self, session: DeviceConnection, device_id: int) -> None:
        """``session`` no longer speaks for ``device_id`` (it closed, or switched to another ident):
        the device is disconnected unless another connection took it over meanwhile."""
        if self._by_device.get(device_id) is not session:
            return
        del self._by_device[device_id]
        self._devices.mark(device_id, False, session.last_active)
        self._tasks.spawn(self._store.set_connected(device_id, False, session.last_active))
        self._events.publish({"type": "log", "device_id": device_id, "protocol": session.protocol,
                              "ident": session.ident, "data": {"event": "disconnect", "peer": session.peer}})
        for listener in self._listeners:
            listener.on_detach(session)

    def touched(self, session: DeviceConnection) -> None:
        """The connection's device just sent data: keeps the registry's ``last_active`` current."""
        if session.device_id is not None:
            self._devices.mark(session.device_id, True, session.last_active)
