"""Device-side limits (issue 11), at the session with a fake transport over the in-memory store:
garbage over a window, junk kept as a bounded sample, warnings aggregated and escaped, one ident
grammar, the registration budget, ident switches. Each test is bounded in time (no sockets)."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from sinogate.config import Config
from sinogate.runtime import Runtime
from sinogate.server.channels import Channel
from sinogate.server.guard import clean
from sinogate.server.session import Session, SessionServices
from sinogate.store.base import StoreError, TimeQuery
from sinogate.store.memory import MemoryStore
from tests.server.frames import h02_v1

NOW = time.time()


class FakeSession(Session):
    def __init__(self, services: SessionServices, channel: Channel, peer: str = "192.0.2.9:4000") -> None:
        super().__init__(services, channel, peer)
        self.close_reason: str | None = None

    def send(self, data: bytes) -> None:
        self.record_sent(data)

    def close(self, reason: str) -> None:
        self.closed = True
        self.close_reason = reason


async def _runtime(tmp_path: Path, **config: Any) -> Runtime:
    values: dict[str, Any] = {"data_dir": tmp_path, "store_url": "memory://", "h02_port": 5013, "jt808_port": 0,
                              "http_port": 0, **config}
    runtime = Runtime(Config(**values), store=MemoryStore())
    await runtime.store.open()
    await runtime.devices.load()
    return runtime


def _session(runtime: Runtime, peer: str = "192.0.2.9:4000") -> FakeSession:
    session = FakeSession(runtime.session_services, runtime.channels[0], peer)
    runtime.sessions.opened(session)
    return session


async def _close(runtime: Runtime, session: FakeSession) -> None:
    runtime.sessions.detach(session)
    await runtime.store.ingest(session.close_records("test over"))


def _packets_bytes(store: MemoryStore) -> int:
    return sum(len(p["data"]) for p in store._packets.values())


def test_one_valid_frame_per_read_no_longer_carries_any_amount_of_junk(tmp_path: Path) -> None:
    """The abuse trial: a valid frame in each 64 KB read reset the garbage counter (50 MB accepted)."""
    async def scenario() -> None:
        runtime = await _runtime(tmp_path)
        session = _session(runtime)
        junk = b"\x00junk" * 12_000  # 60 KB without a frame
        replies = await session.process(h02_v1("4210051001", NOW, 22.5, 114.0) + junk, NOW)
        assert replies  # the valid frame is stored and answered …
        assert session.closed and "without a valid frame" in (session.close_reason or "")  # … and the peer is gone
        assert len(await runtime.store.messages(None, TimeQuery())) == 1

    asyncio.run(scenario())


def test_garbage_counts_over_a_window_and_drains_with_time(tmp_path: Path) -> None:
    async def scenario() -> None:
        runtime = await _runtime(tmp_path, garbage_limit=5000, garbage_window=100.0)  # drains 50 B/s
        session = _session(runtime)
        for i in range(40):  # 400 junk bytes every 10 s (40 B/s) next to valid frames: tolerated
            await session.process(h02_v1("4210051002", NOW + 10 * i, 22.5, 114.0) + b"\x01" * 400, NOW + 10 * i)
        assert not session.closed and session.junk_bytes >= 14_000
        for i in range(30):  # 400 bytes a second: over 5000 within the window
            await session.process(b"\x01" * 400, NOW + 400 + i)
        assert session.closed

    asyncio.run(scenario())


def test_junk_is_stored_as_a_bounded_sample_per_connection_and_in_total(tmp_path: Path) -> None:
    async def scenario() -> None:
        # budget: 24 × 1000 bytes per day, at most an hour's share (1000 bytes) at once
        runtime = await _runtime(tmp_path, junk_sample=600, junk_budget=24_000, garbage_limit=10**9)
        store = runtime.store
        assert isinstance(store, MemoryStore)
        first = _session(runtime, "192.0.2.1:1")
        for _ in range(10):
            await first.process(b"\x00junk" * 2000, NOW)  # 10 × 10 KB, never identified
        await _close(runtime, first)
        assert _packets_bytes(store) == 600  # the first 600 bytes of the connection
        second = _session(runtime, "192.0.2.2:1")
        await second.process(b"\x01junk" * 2000, NOW)
        await _close(runtime, second)
        assert _packets_bytes(store) <= 1000 + 300  # the global budget (refills slowly) caps the rest
        third = _session(runtime, "192.0.2.3:1")
        await third.process(b"\x02junk" * 2000, NOW)
        await _close(runtime, third)
        assert _packets_bytes(store) <= 1300
        assert runtime.guard.junk_dropped >= 115_000
        assert runtime.guard.hits["junk_sample"] >= 1
        # a device's valid traffic is stored in full, whatever the junk budget says
        good = _session(runtime, "192.0.2.4:1")
        frame = h02_v1("4210051003", NOW, 22.5, 114.0)
        await good.process(frame, NOW)
        assert any(p["data"] == frame for p in store._packets.values())

    asyncio.run(scenario())


def test_warnings_are_aggregated_escaped_and_cut(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        runtime = await _runtime(tmp_path, garbage_limit=10**9, warnings_per_connection=3)
        session = _session(runtime, "192.0.2.5:1")
        for _ in range(200):  # 200 reads of junk: 200 frames with errors
            await session.process(b"*XX,\r\ninjected line#" + b"\x00" * 100, NOW)
        await _close(runtime, session)

    with caplog.at_level(logging.INFO, logger="sinogate"):
        asyncio.run(scenario())
    lines = [r.getMessage() for r in caplog.records if "192.0.2.5" in r.getMessage()]
    assert 1 <= len(lines) <= 5, lines  # the first few, then one line with the counts
    assert any("frame(s) with errors" in line and "not logged" in line for line in lines)
    assert all("\n" not in line and "\r" not in line and len(line) <= 600 for line in lines)
    assert not any(r.exc_info for r in caplog.records)


def test_the_log_line_rate_is_global(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        runtime = await _runtime(tmp_path, garbage_limit=10**9, log_rate=1.0)
        for i in range(300):
            session = _session(runtime, f"192.0.2.{i % 250}:{i}")
            await session.process(b"\x00" * 50, NOW)
            await _close(runtime, session)

    with caplog.at_level(logging.WARNING, logger="sinogate.session"):
        asyncio.run(scenario())
    assert len([r for r in caplog.records if r.name == "sinogate.session"]) <= 101  # the burst, then 1/s


@pytest.mark.parametrize(("ident", "reason"), [
    ("42100 51", "characters"), ("4210/51", "characters"), ("4210+51", "characters"),
    ("4210\r\nINFO forged", "characters"), ("7" * 256, "longer than 32"),
])
def test_hostile_idents_are_refused_counted_listed_without_a_traceback(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, ident: str, reason: str) -> None:
    async def scenario() -> None:
        runtime = await _runtime(tmp_path)
        session = _session(runtime)
        frame = f"*HQ,{ident},V1,120000,A,2230.0000,N,11400.0000,E,000.00,000,010124,FFFFFBFF#".encode()
        assert await session.process(frame, NOW) == []  # not answered
        assert session.closed and "ident refused" in (session.close_reason or "")
        assert runtime.devices.all() == []
        [listed] = runtime.guard.refused("h02")
        assert reason in listed["reason"] and listed["count"] == 1 and "\n" not in listed["ident"]
        assert sum(runtime.guard.refused_idents.values()) == 1
        assert runtime.guard.hits["ident_refused"] == 1

    with caplog.at_level(logging.INFO):
        asyncio.run(scenario())
    assert not any(r.exc_info for r in caplog.records)
    assert all("\n" not in r.getMessage() for r in caplog.records)


def test_one_ident_grammar_for_the_registry(tmp_path: Path) -> None:
    async def scenario() -> None:
        runtime = await _runtime(tmp_path)
        for bad in ("a b", "a/b", "a+b", "a#b", "x\r\ny", "9" * 33, ""):
            with pytest.raises(StoreError):
                await runtime.devices.create({"ident": bad, "protocol": "h02"})
        device = await runtime.devices.create({"ident": "866123456789012", "protocol": "h02"})
        with pytest.raises(StoreError):
            await runtime.devices.update(device["id"], {"ident": "a b"})
        assert (await runtime.devices.update(device["id"], {"ident": "IMEI-1.2:3_x"}))["ident"] == "IMEI-1.2:3_x"

    asyncio.run(scenario())


def test_registrations_over_the_budget_stay_unknown_and_are_registered_as_it_refills(tmp_path: Path) -> None:
    async def scenario() -> None:
        runtime = await _runtime(tmp_path, register_burst=3, register_rate=60.0)  # one a second after 3
        store = runtime.store
        sessions = []
        for i in range(6):
            session = _session(runtime, f"192.0.2.{i}:1")
            replies = await session.process(h02_v1(f"42100520{i:02d}", NOW, 22.5, 114.0), NOW)
            assert replies  # answered: the data is stored, under the ident
            sessions.append(session)
        assert len(runtime.devices.all()) == 3
        assert len(runtime.guard.pending) == 3 and runtime.guard.hits["register_rate"] == 3
        unknown = await store.messages(None, TimeQuery())
        assert len(unknown) == 6
        runtime.guard._register._tokens = 3.0  # the budget refilled
        task = asyncio.create_task(runtime._register_pending())
        deadline = time.monotonic() + 5
        while len(runtime.devices.all()) < 6 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        task.cancel()
        assert len(runtime.devices.all()) == 6 and not runtime.guard.pending
        late = runtime.devices.find("h02", "4210052005")
        assert late is not None and len(await store.messages([late["id"]], TimeQuery())) == 1  # claimed
        # the open connection attaches to its device on its next frame
        await sessions[5].process(h02_v1("4210052005", NOW + 1, 22.5, 114.0), NOW + 1)
        assert runtime.sessions.session_for(late["id"]) is sessions[5]

    asyncio.run(scenario())


def test_a_connection_registers_one_device_unless_its_channel_allows_more(tmp_path: Path) -> None:
    async def scenario() -> None:
        runtime = await _runtime(tmp_path)
        runtime.channels[0].follow_ident = True  # a concentrator: several devices on one socket
        session = _session(runtime)
        for i in range(5):
            await session.process(h02_v1(f"42100530{i:02d}", NOW + i, 22.5, 114.0), NOW + i)
        assert [d["ident"] for d in runtime.devices.all()] == ["4210053000"]
        assert runtime.guard.hits["register_per_connection"] == 4 and not runtime.guard.pending
        runtime.channels[0].register_per_connection = 10
        other = _session(runtime, "192.0.2.77:1")
        for i in range(5, 8):
            await other.process(h02_v1(f"42100530{i:02d}", NOW + i, 22.5, 114.0), NOW + i)
        assert len(runtime.devices.all()) == 4

    asyncio.run(scenario())


def test_a_connection_that_switches_idents_leaves_no_device_connected_forever(tmp_path: Path) -> None:
    async def scenario() -> None:
        runtime = await _runtime(tmp_path, register_per_connection=5)
        runtime.channels[0].follow_ident = True
        session = _session(runtime)
        await session.process(h02_v1("4210054001", NOW, 22.5, 114.0), NOW)
        first = runtime.devices.find("h02", "4210054001")
        assert first is not None and first["connected"] is True
        await session.process(h02_v1("4210054002", NOW + 1, 22.5, 114.0), NOW + 1)
        second = runtime.devices.find("h02", "4210054002")
        assert second is not None and second["connected"] is True
        assert first["connected"] is False and runtime.sessions.session_for(first["id"]) is None
        await _close(runtime, session)
        assert second["connected"] is False

    asyncio.run(scenario())


def test_a_refused_ident_switch_keeps_the_first_device_until_the_connection_ends(tmp_path: Path) -> None:
    async def scenario() -> None:
        runtime = await _runtime(tmp_path)
        session = _session(runtime)  # the channel does not follow idents (the default)
        await session.process(h02_v1("4210054101", NOW, 22.5, 114.0), NOW)
        assert await session.process(h02_v1("4210054102", NOW + 1, 22.5, 114.0), NOW + 1) == []
        first = runtime.devices.find("h02", "4210054101")
        assert first is not None and first["connected"] is True and session.refused == 1
        await _close(runtime, session)
        assert first["connected"] is False

    asyncio.run(scenario())


def test_clean_escapes_control_characters_and_cuts() -> None:
    assert clean("a\r\nb\x1b[31m\u2028") == "a\\r\\nb\\x1b[31m\\u2028"
    assert clean("x" * 600, 100).startswith("x" * 100 + "…(+500 chars)")
    assert clean("plain text: é") == "plain text: é"


def test_jt808_junk_that_parses_as_headers_registers_no_device(tmp_path: Path) -> None:
    """Bytes 0x01…0xff hold 0x7e: the codec sees broken frames (answered "send again"); they are
    junk all the same, name no new device and close the connection over the garbage limit. (One
    of them decodes leniently into a message with a wrong checksum: that one may register a device,
    one per connection, within the budget — like any crafted frame.)"""
    async def scenario() -> None:
        runtime = await _runtime(tmp_path, jt808_port=5015)
        channel = next(c for c in runtime.channels if c.protocol == "jt808")
        session = FakeSession(runtime.session_services, channel)
        runtime.sessions.opened(session)
        for _ in range(20):
            await session.process(bytes(range(1, 256)) * 4, NOW)
            if session.closed:
                break
        assert len(runtime.devices.all()) <= 1 and not runtime.guard.pending
        assert session.closed and "without a valid frame" in (session.close_reason or "")
        assert session.junk_bytes > 8192

    asyncio.run(scenario())
