"""A session driven with a fake transport over the in-memory store: no sockets, no threads."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, ClassVar

import pytest

from sinogate.config import Config
from sinogate.ingest import Committed, Source
from sinogate.pipeline.base import Context, Handler, Message
from sinogate.runtime import Runtime
from sinogate.server.session import Session, SessionServices
from sinogate.store.base import IngestBatch, TimeQuery
from sinogate.store.memory import MemoryStore
from tests.server.frames import jt808_frame, location_body

PHONE = "013912345678"


class FakeSession(Session):
    """A session whose transport is a list: what would go to the socket."""

    def __init__(self, services: SessionServices, runtime: Runtime) -> None:
        super().__init__(services, runtime.channels[0], "192.0.2.7:40000")  # the JT/T 808 channel (id 2)
        self.sent: list[bytes] = []
        self.close_reason: str | None = None

    def send(self, data: bytes) -> None:
        self.sent.append(data)
        self.record_sent(data)

    def close(self, reason: str) -> None:
        self.closed = True
        self.close_reason = reason


class GatedStore(MemoryStore):
    """Commits only when the test opens the gate: shows what happens before the commit."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.gate.set()
        self.commits: list[int] = []  # messages per committed batch

    async def ingest(self, batch: IngestBatch) -> None:
        await self.gate.wait()
        await super().ingest(batch)
        self.commits.append(len(batch.messages))


async def _runtime(tmp_path: Path, store: MemoryStore) -> Runtime:
    runtime = Runtime(Config(data_dir=tmp_path, store_url="memory://", h02_port=0, jt808_port=5015, http_port=0),
                      store=store)
    await runtime.store.open()
    await runtime.devices.load()
    return runtime


def test_replies_are_returned_only_after_the_commit(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = GatedStore()
        runtime = await _runtime(tmp_path, store)
        session = FakeSession(runtime.session_services, runtime)
        store.gate.clear()
        now = time.time()
        task = asyncio.create_task(session.process(jt808_frame(0x0200, PHONE, 1, location_body(now, 10.0, 20.0)), now))
        await asyncio.sleep(0.05)
        assert not task.done() and store.commits == []  # the ack waits for durability
        store.gate.set()
        replies = await task
        assert [n for n in store.commits if n] == [1]  # (the others: the connect log, written later)
        assert len(replies) == 1 and replies[0][:1] == b"\x7e"
        device = runtime.devices.find("jt808", "13912345678")
        assert device is not None and runtime.sessions.session_for(device["id"]) is session
        [message] = await store.messages([device["id"]], TimeQuery())
        assert message["position.latitude"] == pytest.approx(10.0)
        assert message["channel.id"] == 2 and message["peer"] == "192.0.2.7:40000"

    asyncio.run(scenario())


def test_garbage_closes_the_session_and_stores_no_message(tmp_path: Path) -> None:
    async def scenario() -> None:
        runtime = await _runtime(tmp_path, MemoryStore())
        session = FakeSession(runtime.session_services, runtime)
        for _ in range(3):
            assert await session.process(b"\x00garbage" * 400, time.time()) == []
        assert session.closed and "without a valid frame" in (session.close_reason or "")
        assert await runtime.store.messages(None, TimeQuery()) == []

    asyncio.run(scenario())


class Slow(Handler):
    """Records when each batch of a device enters phase 1."""

    name = "slow"
    seen: ClassVar[list[str]] = []

    def handle(self, message: Message, ctx: Context) -> Message:
        Slow.seen.append(message["tag"])
        return message


def test_one_device_at_a_time_in_order_devices_concurrently(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = GatedStore()
        runtime = await _runtime(tmp_path, store)
        ingest = runtime.ingest
        ingest.pipeline.handlers += (Slow({}),)
        a = await runtime.devices.create({"ident": "1", "protocol": "h02", "name": "a"})
        b = await runtime.devices.create({"ident": "2", "protocol": "h02", "name": "b"})
        source = Source("h02", "tcp", "peer", 1, 1)
        Slow.seen.clear()
        store.gate.clear()
        now = time.time()
        first = asyncio.create_task(ingest.ingest(source, a, "1", [{"ident": "1", "tag": "a1"}], now))
        second = asyncio.create_task(ingest.ingest(source, a, "1", [{"ident": "1", "tag": "a2"}], now))
        other = asyncio.create_task(ingest.ingest(source, b, "2", [{"ident": "2", "tag": "b1"}], now))
        await asyncio.sleep(0.05)
        # a2 waits for a1's commit; b1 (another device) did not wait for a1.
        assert Slow.seen == ["a1", "b1"]
        store.gate.set()
        await asyncio.gather(first, second, other)
        assert Slow.seen == ["a1", "b1", "a2"]

    asyncio.run(scenario())


class Failing:
    name = "failing"

    def committed(self, batch: Committed) -> None:
        raise RuntimeError("publisher bug")


class Recording:
    name = "recording"

    def __init__(self) -> None:
        self.batches: list[Committed] = []

    def committed(self, batch: Committed) -> None:
        self.batches.append(batch)


class Stamp(Handler):
    """Adds a field each time: must not change what dedup compares."""

    name = "stamp"

    def handle(self, message: Message, ctx: Context) -> Message:
        message["stamp"] = time.monotonic()
        return message


def test_phase_two_runs_after_commit_and_a_failing_publisher_stops_nothing(tmp_path: Path) -> None:
    async def scenario() -> None:
        runtime = await _runtime(tmp_path, MemoryStore())
        recording = Recording()
        runtime.ingest.add_publisher(Failing())
        runtime.ingest.add_publisher(recording)
        runtime.ingest.pipeline.handlers += (Stamp({}),)
        device = await runtime.devices.create({"ident": "9", "protocol": "h02", "name": "nine"})
        source = Source("h02", "udp", "peer", 1, 1)
        sent: dict[str, Any] = {"ident": "9", "timestamp": 1_700_000_000.0, "position.speed": 5}
        await runtime.ingest.ingest(source, device, "9", [dict(sent)], time.time())
        await runtime.ingest.ingest(source, device, "9", [dict(sent)], time.time() + 1)
        assert runtime.ingest.publisher_failures == 2
        assert [len(b.messages) for b in recording.batches] == [1, 1]
        stored = await runtime.store.messages([device["id"]], TimeQuery())
        assert len(stored) == 1  # same device content: deduplicated whatever the handlers added
        assert stored[0]["position.speed"] == 5 and "stamp" in stored[0]

    asyncio.run(scenario())
