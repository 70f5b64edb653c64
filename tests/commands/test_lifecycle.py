"""The command lifecycle table, and the command service on a fake clock (no server, no sockets)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sinogate.codecs import connection_class
from sinogate.codecs.base import EncodedCommand
from sinogate.commands.lifecycle import (
    ACTIVE,
    FINAL,
    TRANSITIONS,
    CommandEvent,
    CommandStatus,
    InvalidTransition,
    transition,
)
from sinogate.commands.service import CommandService
from sinogate.ingest import Committed, Source
from sinogate.server.bus import EventBus
from sinogate.server.tasks import DeferredWrites, Tasks
from sinogate.store.memory import MemoryStore
from tests.server.frames import h02_v1

S, E = CommandStatus, CommandEvent


def test_every_status_has_a_row_and_final_ones_accept_nothing() -> None:
    assert set(TRANSITIONS) == set(CommandStatus)
    assert ACTIVE == (S.QUEUED, S.SENT) and set(FINAL) == {S.PROCESSED, S.CANCELED, S.EXPIRED}
    for status in FINAL:
        for event in CommandEvent:
            with pytest.raises(InvalidTransition):
                transition(status, event)


@pytest.mark.parametrize(("status", "event", "new"), [
    (S.QUEUED, E.WRITTEN, S.SENT), (S.SENT, E.REPLIED, S.PROCESSED), (S.SENT, E.REQUEUE, S.QUEUED),
    (S.QUEUED, E.EXPIRE, S.EXPIRED), (S.SENT, E.CANCEL, S.CANCELED), (S.SENT, E.WRITTEN, S.SENT),
])
def test_legal_moves(status: CommandStatus, event: CommandEvent, new: CommandStatus) -> None:
    assert transition(str(status), event) is new


@pytest.mark.parametrize(("status", "event"), [(S.QUEUED, E.REPLIED), (S.QUEUED, E.REQUEUE)])
def test_illegal_moves_raise(status: CommandStatus, event: CommandEvent) -> None:
    with pytest.raises(InvalidTransition, match="cannot take the event"):
        transition(status, event)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeConnection:
    """A connected H02 device as the command service sees it."""

    protocol = "h02"
    channel_id = 1
    peer = "192.0.2.1:1"
    transport_name = "tcp"
    ident = "4210051415"
    last_active = 0.0
    last_frame = 0.0
    closed = False

    def __init__(self, device_id: int) -> None:
        self._device_id = device_id
        self.conn_id = 77
        self.sent: list[bytes] = []
        self._codec = connection_class("h02")()
        self._codec.feed(h02_v1(self.ident, 1_700_000_000.0, 1.0, 2.0), 1_700_000_000.0)  # names the device

    @property
    def device_id(self) -> int | None:
        return self._device_id

    def send(self, data: bytes) -> None:
        self.sent.append(data)

    def close(self, reason: str) -> None:
        self.closed = True

    def encode_command(self, name: str, properties: dict[str, Any], now: float) -> EncodedCommand:
        return self._codec.encode_command(name, properties, now)

    def info(self) -> dict[str, Any]:
        return {"id": self.conn_id}


class Lookup:
    def __init__(self) -> None:
        self.connections: dict[int, FakeConnection] = {}

    def session_for(self, device_id: int) -> FakeConnection | None:
        return self.connections.get(device_id)


async def _service(clock: Clock) -> tuple[CommandService, MemoryStore, Lookup, dict[str, Any]]:
    store = MemoryStore()
    await store.open()
    tasks = Tasks()
    lookup = Lookup()
    service = CommandService(store, store, lookup, tasks, EventBus(), DeferredWrites(store, tasks), clock=clock)
    service.start()
    for _ in range(100):  # recovery of stored commands runs in the background
        if service._ready.is_set():
            break
        await asyncio.sleep(0.001)
    device = await store.create_device({"ident": "4210051415", "protocol": "h02", "name": "t"})
    return service, store, lookup, device


def test_a_queued_command_expires_by_the_clock_not_by_waiting() -> None:
    async def scenario() -> None:
        clock = Clock(1_700_000_000.0)
        service, store, _lookup, device = await _service(clock)
        command = await service.enqueue(device, "interval.set", {"seconds": 30}, ttl=60)
        assert command["status"] == "queued" and command["expire"] == 1_700_000_060.0
        clock.now += 59
        assert await service.expire_now() == 0
        clock.now += 2
        assert await service.expire_now() == 1
        stored = await store.get_command(command["id"])
        assert stored["status"] == "expired" and stored["finished"] == 1_700_000_061.0
        assert stored["reason"] == "ttl expired"
        service.close()

    asyncio.run(scenario())


def test_written_then_replied_by_the_committed_reply() -> None:
    async def scenario() -> None:
        clock = Clock(1_700_000_000.0)
        service, store, lookup, device = await _service(clock)
        connection = lookup.connections[device["id"]] = FakeConnection(device["id"])
        command = await service.enqueue(device, "custom", {"payload": "S20,1,1"}, confirm=True)
        assert connection.sent and connection.sent[0].startswith(b"*HQ,4210051415,S20,")
        assert (await store.get_command(command["id"]))["status"] == "sent"
        hhmmss = connection.sent[0].split(b",")[3].decode()
        reply = {"ident": "4210051415", "message.type": "V4", "command.code": "S20", "command.time": hhmmss,
                 "command.response": "S20,DONE", "timestamp": clock.now}
        source = Source("h02", "tcp", "192.0.2.1:1", 1, 1, 77)
        service.committed(Committed(source, device, "4210051415", [reply], clock.now))
        await asyncio.sleep(0.01)
        done = await store.get_command(command["id"])
        assert done["status"] == "processed" and done["response"] == "S20,DONE" and done["executed"] is True
        service.close()

    asyncio.run(scenario())
