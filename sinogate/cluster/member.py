"""What a node does when a device arrives from, or leaves to, another node.

A device is on one node at a time: the node holding its connection processes its messages (its
analytics state and telemetry are current there) and holds its commands. When it connects here::

    attach ─► claim the device→node entry ─► ask the node it was on (if alive) to let it go:
              that node closes its old connection and writes back the device's state, telemetry
              and queued commands ─► open the state gate (the first message waited for it)
              ─► the command service adopts the device's commands and delivers them

When it leaves (its connection closed): the command service puts sent commands back in the queue,
and state, telemetry and the queue are written back and dropped here. A node that dies with
``kill -9`` writes back nothing: the next node replays telemetry from the stored messages, reads
the state as last written back (``state_flush_seconds``) and requeues the commands left ``sent``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Protocol

from sinogate.cluster.node import ClusterError, ClusterNode
from sinogate.interfaces import DeviceConnection, SessionListener, SessionLookup, TaskRunner

log = logging.getLogger("sinogate.cluster")

RELEASE_TIMEOUT = 5.0


class HandOver(Protocol):
    """The command service as this module uses it."""

    def on_attach(self, session: DeviceConnection) -> None: ...

    def on_detach(self, session: DeviceConnection) -> None: ...

    async def hand_over(self, device_id: int) -> None: ...


class Gates(Protocol):
    """The analytics states as this module uses them (``pipeline.state.DeviceStates``)."""

    def gate(self, device_id: int) -> asyncio.Future[None]: ...

    async def release(self, device_id: int) -> None: ...

    def forget(self, device_id: int) -> None: ...

    def open_gate(self, device_id: int) -> None: ...

    async def write_back(self, device_id: int) -> None: ...


class TelemetryCache(Protocol):
    async def release_telemetry(self, device_id: int, write_back: bool = True) -> None: ...


class Detacher(SessionLookup, Protocol):
    def detach(self, session: DeviceConnection) -> None: ...


class ClusterMember:
    """A session listener that stands in front of the command service in a cluster (see the
    module docstring); serves the ``release`` request of a node that got one of our devices."""

    def __init__(self, node: ClusterNode, sessions: Detacher, commands: HandOver, states: Gates,
                 telemetry: TelemetryCache, tasks: TaskRunner) -> None:
        self._node = node
        self._sessions = sessions
        self._commands = commands
        self._states = states
        self._telemetry = telemetry
        self._tasks = tasks
        self._leaving: dict[int, asyncio.Task[Any]] = {}  # device id → its write-back
        self.listeners: list[SessionListener] = []  # told after the take-over (the command service)

    async def start(self) -> None:
        await self._node.serve("release", self._serve_release)
        await self._node.serve("lend", self._serve_lend)
        await self._node.serve("give_back", self._serve_give_back)

    # analytics state lent to another node ----------------------------------------------------
    async def holder(self, device_id: int) -> str | None:
        if self._sessions.session_for(device_id) is not None:
            return None  # here
        node = await self._node.owner(device_id)
        return None if node == self._node.name else node

    async def lend(self, node: str, device_id: int) -> None:
        await self._node.request(node, "lend", {"device_id": device_id}, RELEASE_TIMEOUT)

    async def give_back(self, node: str, device_id: int) -> None:
        with contextlib.suppress(ClusterError):  # it times its gate out by itself
            await self._node.request(node, "give_back", {"device_id": device_id}, RELEASE_TIMEOUT)

    async def _serve_lend(self, payload: dict[str, Any]) -> dict[str, Any]:
        device_id = int(payload["device_id"])
        self._states.gate(device_id)  # its next message waits for give_back, then reads the state again
        await self._states.write_back(device_id)
        return {"ok": {}}

    async def _serve_give_back(self, payload: dict[str, Any]) -> dict[str, Any]:
        self._states.open_gate(int(payload["device_id"]))
        return {"ok": {}}

    # arrivals --------------------------------------------------------------------------------
    def on_attach(self, session: DeviceConnection) -> None:
        device_id = session.device_id
        if device_id is None:
            return
        gate = self._states.gate(device_id)  # before the first message of this connection
        self._node.on_attach(session)
        self._tasks.spawn(self._take_over(session, device_id, gate))

    async def _take_over(self, session: DeviceConnection, device_id: int, gate: asyncio.Future[None]) -> None:
        try:
            leaving = self._leaving.get(device_id)
            if leaving is not None:  # it was here a moment ago: its write-back first
                await asyncio.wait({leaving}, timeout=RELEASE_TIMEOUT)
            previous = await self._node.claim(session)
            if previous is not None:
                try:
                    await self._node.request(previous, "release", {"device_id": device_id,
                                                                   "node": self._node.name}, RELEASE_TIMEOUT)
                except ClusterError as exc:  # it died meanwhile: what it wrote back is what there is
                    log.info("device %s: node %s did not let it go (%s); taking it over as it is",
                             device_id, previous, exc)
        except Exception:
            log.exception("taking device %s over failed", device_id)
        finally:
            if not gate.done():
                gate.set_result(None)
        if not session.closed:
            for listener in self.listeners:
                listener.on_attach(session)

    # departures ------------------------------------------------------------------------------
    def on_detach(self, session: DeviceConnection) -> None:
        device_id = session.device_id
        if device_id is None:
            return
        for listener in self.listeners:
            listener.on_detach(session)
        self._node.on_detach(session)
        task = self._tasks.spawn(self._write_back(device_id))
        self._leaving[device_id] = task
        task.add_done_callback(lambda t: self._leaving.pop(device_id, None) if self._leaving.get(device_id) is t
                               else None)

    async def _write_back(self, device_id: int) -> None:
        if self._sessions.session_for(device_id) is not None:
            return  # back here already
        await self._commands.hand_over(device_id)
        await self._states.release(device_id)
        await self._telemetry.release_telemetry(device_id)

    async def _serve_release(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Another node got the device: close our connection (if it is still open) and write back."""
        device_id = int(payload["device_id"])
        session = self._sessions.session_for(device_id)
        if session is not None:
            session.close(f"the device connected to node {payload.get('node')}")
            self._sessions.detach(session)  # now, not when the connection's task ends
        leaving = self._leaving.get(device_id)
        if leaving is not None:
            with contextlib.suppress(Exception):
                await leaving
        # The other node watches it from now on (device.offline included): our copy goes.
        self._states.forget(device_id)
        return {"ok": {"released": session is not None}}
