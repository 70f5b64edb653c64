"""The store contract (``sinogate.store.base``), one suite run against every implementation.

Each test opens the store inside its own ``asyncio.run`` and closes it at the end. A test that
holds only for one implementation says so with an indirect parametrization of ``store``.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from sinogate.jsonenc import RECEPTION_FIELDS, device_digest, dumps
from sinogate.store.base import (
    COMMAND_FIELDS,
    PACKET_CONNECT,
    PACKET_RECEIVED,
    PACKET_SENT,
    PACKET_UDP,
    Conflict,
    IdentSeen,
    IngestBatch,
    LogRecord,
    Message,
    NotFound,
    PacketRecord,
    Store,
    StoreError,
    TimeQuery,
)
from sinogate.store.memory import MemoryStore
from sinogate.store.sqlite import SQLiteStore

T = TypeVar("T")

DEVICE_KEYS = {
    "id", "name", "ident", "protocol", "model", "phone", "settings", "enabled", "connected", "last_active",
    "created", "messages_ttl",
}


@pytest.fixture(params=["sqlite", "memory", "postgresql", "postgresql-shared"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "sqlite":
        return SQLiteStore(tmp_path / "c.sqlite")
    if request.param.startswith("postgresql"):  # a schema of its own per test (tests/store/pg.py)
        from sinogate.store.postgres import PostgresStore
        from tests.store.pg import schema_url

        # shared: as a node of a cluster runs it (telemetry cached per device, read through otherwise)
        return PostgresStore(schema_url(request), shared=request.param == "postgresql-shared")
    return MemoryStore()


def sqlite_fails(reason: str) -> pytest.MarkDecorator:
    """Runs the test on every store; SQLiteStore breaks the rule (see ``reason``): a strict xfail,
    so the marker has to go the day it is fixed."""
    return pytest.mark.parametrize(
        "store",
        ["memory", pytest.param("sqlite", marks=pytest.mark.xfail(strict=True, reason=reason))],
        indirect=True,
    )


sqlite_only = pytest.mark.parametrize("store", ["sqlite"], indirect=True)


def run(store: Store, body: Callable[[Store], Awaitable[T]]) -> T:
    async def main() -> T:
        await store.open()
        try:
            return await body(store)
        finally:
            await store.close()

    return asyncio.run(main())


def msg(
    ident: str,
    ts: float,
    content: dict[str, Any] | None = None,
    *,
    device: int | None = None,
    protocol: str = "h02",
    server_ts: float = 1_700_000_000.0,
    peer: str = "10.0.0.1:5000",
    flagged: bool = False,
) -> Message:
    """A message as the pipeline makes it: the device's content, then the reception fields."""
    m: Message = {"ident": ident, "message.type": "V1", "timestamp": ts, **(content or {})}
    m.update({"server.timestamp": server_ts, "peer": peer, "protocol.name": protocol})
    if device is not None:
        m["device.id"] = device
    if flagged:
        m["timestamp.flagged"] = True
    return m


def content_of(m: Message) -> Message:
    return {k: v for k, v in m.items() if k not in RECEPTION_FIELDS}


async def all_messages(s: Store, device_ids: list[int] | None = None) -> list[Message]:
    return await s.messages(device_ids, TimeQuery())


async def new_device(s: Store, ident: str = "4210051415", protocol: str = "h02", **fields: Any) -> int:
    return int((await s.create_device({"ident": ident, "protocol": protocol, **fields}))["id"])


# --- devices ---------------------------------------------------------------------------------------

def test_device_create_get_list_update_delete(store: Store) -> None:
    async def body(s: Store) -> None:
        before = time.time()
        created = await s.create_device({
            "ident": "4210051415", "protocol": "h02", "name": "truck 1", "model": "gt06", "phone": "+100",
            "settings": {"time_offset": 8, "nested": {"a": [1, 2]}}, "messages_ttl": 30,
        })
        after = time.time()
        assert set(created) == DEVICE_KEYS
        assert isinstance(created["id"], int)
        assert isinstance(created["created"], float) and before <= created["created"] <= after
        assert created == {
            "id": created["id"], "name": "truck 1", "ident": "4210051415", "protocol": "h02", "model": "gt06",
            "phone": "+100", "settings": {"time_offset": 8, "nested": {"a": [1, 2]}}, "enabled": True,
            "connected": False, "last_active": None, "created": created["created"], "messages_ttl": 30,
        }
        d1 = created["id"]
        assert await s.get_device(d1) == created

        bare = await s.create_device({"ident": 13912345678, "protocol": "jt808"})  # ident kept as text
        d2 = bare["id"]
        assert d2 > d1
        assert (bare["ident"], bare["name"], bare["settings"], bare["enabled"]) == ("13912345678", "", {}, True)
        assert (bare["model"], bare["phone"], bare["messages_ttl"]) == (None, None, None)
        assert [d["id"] for d in await s.list_devices()] == [d1, d2]

        updated = await s.update_device(d1, {
            "name": "truck one", "settings": {"time_offset": 0}, "enabled": False, "model": None,
            "messages_ttl": 7, "connected": True, "id": 999, "created": 1.0,  # the last three are ignored
        })
        assert updated == {
            **created, "name": "truck one", "settings": {"time_offset": 0}, "enabled": False, "model": None,
            "messages_ttl": 7,
        }
        assert await s.get_device(d1) == updated
        assert (await s.update_device(d1, {"settings": None}))["settings"] == {}

        await s.set_connected(d1, True, 1_700_000_100.0)
        device = await s.get_device(d1)
        assert (device["connected"], device["last_active"]) == (True, 1_700_000_100.0)
        await s.set_connected(d1, False, None)  # None keeps the stored last_active
        device = await s.get_device(d1)
        assert (device["connected"], device["last_active"]) == (False, 1_700_000_100.0)
        await s.set_connected(d2 + 100, True, 5.0)  # an unknown id is ignored

        await s.delete_device(d2)
        with pytest.raises(NotFound):
            await s.get_device(d2)
        with pytest.raises(NotFound):
            await s.delete_device(d2)
        with pytest.raises(NotFound):
            await s.update_device(d2, {"name": "x"})
        assert [d["id"] for d in await s.list_devices()] == [d1]
        again = await new_device(s, ident="13912345678", protocol="jt808")
        assert again > d2  # ids are never reused

    run(store, body)


@pytest.mark.parametrize(
    "fields", [{"ident": "1"}, {"protocol": "h02"}, {"ident": "", "protocol": "h02"}, {"ident": "1", "protocol": ""}]
)
def test_device_needs_ident_and_protocol(store: Store, fields: dict[str, Any]) -> None:
    async def body(s: Store) -> None:
        with pytest.raises(StoreError):
            await s.create_device(fields)
        assert await s.list_devices() == []

    run(store, body)


def test_device_conflicts(store: Store) -> None:
    async def body(s: Store) -> None:
        d1 = await new_device(s, ident="1")
        d2 = await new_device(s, ident="2")
        with pytest.raises(Conflict):
            await s.create_device({"ident": "1", "protocol": "h02", "name": "twin"})
        assert [d["id"] for d in await s.list_devices()] == [d1, d2]
        d3 = await new_device(s, ident="1", protocol="jt808")  # same ident, other protocol: no conflict
        with pytest.raises(Conflict):
            await s.update_device(d2, {"ident": "1"})
        assert (await s.get_device(d2))["ident"] == "2"
        with pytest.raises(Conflict):
            await s.update_device(d3, {"protocol": "h02"})
        assert (await s.update_device(d1, {"ident": "1", "name": "same"}))["name"] == "same"  # itself: fine
        moved = await s.update_device(d2, {"ident": "7", "protocol": "jt808"})
        assert (moved["ident"], moved["protocol"]) == ("7", "jt808")
        with pytest.raises(NotFound):
            await s.get_device(d3 + 1)

    run(store, body)


def test_a_device_name_ident_or_protocol_cannot_be_set_to_null(store: Store) -> None:
    async def body(s: Store) -> None:
        d = await new_device(s, ident="1", name="truck")
        before = await s.get_device(d)
        for column in ("name", "ident", "protocol"):
            with pytest.raises(StoreError) as refused:
                await s.update_device(d, {column: None, "model": "changed"})
            assert not isinstance(refused.value, Conflict)  # nothing conflicts: the value is refused
        assert await s.get_device(d) == before  # the whole update was refused

    run(store, body)


def test_create_device_claims_what_its_ident_left_while_unknown(store: Store) -> None:
    async def body(s: Store) -> None:
        u1 = msg("4210051415", 100.0, {"v": 1})
        u2 = msg("4210051415", 200.0, {"v": 2})
        other_protocol = msg("4210051415", 150.0, {"v": 3}, protocol="jt808")
        other_ident = msg("999", 120.0, {"v": 4})
        await s.ingest(IngestBatch(
            messages=[u2, other_protocol, u1, other_ident],
            packets=[
                PacketRecord(100.0, PACKET_RECEIVED, 1, "h02", "10.0.0.1:5000", "4210051415", None, b"*HQ,1#"),
                PacketRecord(101.0, PACKET_RECEIVED, 2, "h02", "10.0.0.2:5000", "999", None, b"*HQ,9#"),
                PacketRecord(102.0, PACKET_RECEIVED, 3, "jt808", "10.0.0.3:5000", "4210051415", None, b"~"),
            ],
            idents=[
                IdentSeen("h02", "4210051415", 100.0, "10.0.0.1:5000", b"*HQ"),
                IdentSeen("h02", "999", 101.0, "10.0.0.2:5000", b"*HQ"),
            ],
        ))
        d = await new_device(s, ident="4210051415", protocol="h02")
        assert await all_messages(s, [d]) == [u1, u2]  # claimed, stored as they were encoded
        assert [m async for m in s.iter_messages(d, TimeQuery())] == [u1, u2]
        assert [p["data"] for p in await s.packets(TimeQuery(), device_ids=[d])] == [b"*HQ,1#"]
        assert {i["ident"]: i["device_id"] for i in await s.idents()} == {"4210051415": d, "999": None}
        assert await s.messages(None, TimeQuery(), protocol="jt808") == [other_protocol]
        unclaimed = [p for p in await s.packets(TimeQuery()) if p["device_id"] is None]
        assert [p["data"] for p in unclaimed] == [b"*HQ,9#", b"~"]
        assert await s.telemetry(d) == {}  # claimed messages have no device.id: never telemetry

        later = msg("4210051415", 300.0, {"v": 5}, device=d)
        await s.ingest(IngestBatch(messages=[later]))
        assert await all_messages(s, [d]) == [u1, u2, later]
        d999 = await new_device(s, ident="999")
        assert await all_messages(s, [d999]) == [other_ident]
        assert await all_messages(s, [d]) == [u1, u2, later]

    run(store, body)


def test_a_deleted_device_keeps_its_messages_and_loses_telemetry_and_state(store: Store) -> None:
    async def body(s: Store) -> None:
        d = await new_device(s)
        keep = await new_device(s, ident="2")
        m = msg("4210051415", 100.0, {"v": 1}, device=d)
        await s.ingest(IngestBatch(messages=[m, msg("2", 100.0, {"v": 2}, device=keep)]))
        await s.save_states({d: {"trip": {"start": 1.0}}, keep: {"trip": None}})
        assert (await s.telemetry(d))["v"] == {"value": 1, "ts": 100.0}
        await s.delete_device(d)
        assert await all_messages(s, [d]) == [m]
        assert await s.telemetry(d) == {}
        assert await s.load_states() == {keep: {"trip": None}}
        assert (await s.telemetry(keep))["v"] == {"value": 2, "ts": 100.0}

    run(store, body)


# --- ingest: atomicity and dedup --------------------------------------------------------------------

@pytest.mark.parametrize("with_digests", [False, True])
def test_an_ingest_that_raises_stores_nothing(store: Store, with_digests: bool) -> None:
    async def body(s: Store) -> None:
        d = await new_device(s)
        good = [msg("4210051415", 100.0, {"v": 1}, device=d), msg("4210051415", 300.0, {"v": 3}, device=d)]
        bad = msg("4210051415", 200.0, {"v": {1, 2}}, device=d)  # a set: JSON cannot encode it
        rest: dict[str, Any] = {
            "packets": [PacketRecord(100.0, PACKET_RECEIVED, 1, "h02", "10.0.0.1:5000", "4210051415", d, b"x")],
            "logs": [LogRecord(100.0, "connect", "h02", conn=1, ident="4210051415", device_id=d)],
            "idents": [IdentSeen("h02", "4210051415", 100.0, "10.0.0.1:5000", b"*HQ", d)],
        }
        messages = [good[0], bad, good[1]]
        digests = [1, 2, 3] if with_digests else None
        with pytest.raises(TypeError):
            await s.ingest(IngestBatch(messages=messages, digests=digests, **rest))
        assert await s.messages(None, TimeQuery()) == []
        assert await s.packets(TimeQuery()) == []
        assert await s.logs(TimeQuery()) == []
        assert await s.idents() == []
        assert await s.telemetry(d) == {}
        # Nothing was half-stored: the good part goes in afterwards, dedup keys included.
        await s.ingest(IngestBatch(messages=good, digests=[1, 3] if with_digests else None, **rest))
        assert await all_messages(s, [d]) == good
        assert len(await s.packets(TimeQuery())) == 1
        assert (await s.telemetry(d, ["v"])) == {"v": {"value": 3, "ts": 300.0}}

    run(store, body)


def test_a_failing_call_does_not_undo_concurrent_ones(store: Store) -> None:
    async def body(s: Store) -> None:
        d = await new_device(s, ident="1")
        results = await asyncio.gather(
            *[s.ingest(IngestBatch(messages=[msg("1", 1000.0 + i, device=d)])) for i in range(10)],
            s.create_device({"ident": "1", "protocol": "h02"}),
            s.ingest(IngestBatch(messages=[msg("1", 500.0, {"v": object()}, device=d)])),
            *[s.ingest(IngestBatch(messages=[msg("1", 2000.0 + i, device=d)])) for i in range(10)],
            return_exceptions=True,
        )
        assert isinstance(results[10], Conflict)
        assert isinstance(results[11], TypeError)
        assert [r for r in results if isinstance(r, BaseException)] == [results[10], results[11]]
        stored = [m["timestamp"] for m in await all_messages(s, [d])]
        assert stored == [1000.0 + i for i in range(10)] + [2000.0 + i for i in range(10)]

    run(store, body)


def test_dedup_by_protocol_ident_time_and_device_content(store: Store) -> None:
    async def body(s: Store) -> None:
        d = await new_device(s, ident="1001")
        content = {"position.speed": 10.0, "position.valid": True}
        first = msg("1001", 100.0, content, device=d, server_ts=1000.0, peer="10.0.0.1:1")
        again = msg("1001", 100.0, content, device=d, server_ts=2000.0, peer="10.0.0.9:9")  # re-sent frame
        other_content = msg("1001", 100.0, {**content, "position.speed": 11.0}, device=d, server_ts=2001.0)
        other_time = msg("1001", 101.0, content, device=d, server_ts=2002.0)
        other_ident = msg("1002", 100.0, content, server_ts=2003.0)
        other_protocol = msg("1001", 100.0, content, protocol="jt808", server_ts=2004.0)
        await s.ingest(IngestBatch(messages=[first, again]))  # a duplicate inside one batch
        await s.ingest(IngestBatch(messages=[again, other_content, other_time, other_ident, other_protocol]))
        expected = [first, other_content, other_ident, other_protocol, other_time]
        assert await all_messages(s) == expected
        # Idempotent: the same batch again changes nothing and is no error.
        await s.ingest(IngestBatch(messages=[first, again, other_content, other_time, other_ident, other_protocol]))
        assert await all_messages(s) == expected

    run(store, body)


def test_dedup_honours_the_given_digests(store: Store) -> None:
    async def body(s: Store) -> None:
        d = await new_device(s, ident="1001")
        x1 = msg("1001", 500.0, {"v": 1}, device=d)
        x2 = msg("1001", 500.0, {"v": 2}, device=d)  # other content, but the ingest service says: same frame
        await s.ingest(IngestBatch(messages=[x1, x2], digests=[7, 7]))
        assert await all_messages(s, [d]) == [x1]
        x3 = msg("1001", 500.0, {"v": 1}, device=d, server_ts=1_700_000_001.0)  # x1's content, another digest
        await s.ingest(IngestBatch(messages=[x3], digests=[8]))
        assert await all_messages(s, [d]) == [x1, x3]

        # Without digests the store digests the content; the ingest service's device digest of that
        # content is the same number, so both paths deduplicate against each other.
        y = msg("1001", 600.0, {"v": 1}, device=d)
        await s.ingest(IngestBatch(messages=[y]))
        resent = {**y, "server.timestamp": 1_700_000_500.0, "peer": "10.0.0.7:7"}
        await s.ingest(IngestBatch(messages=[resent], digests=[device_digest(content_of(resent))]))
        z = msg("1001", 700.0, {"v": 1}, device=d)
        await s.ingest(IngestBatch(messages=[z], digests=[device_digest(content_of(z))]))
        await s.ingest(IngestBatch(messages=[{**z, "server.timestamp": 1_700_000_600.0}]))
        assert await all_messages(s, [d]) == [x1, x3, y, z]

    run(store, body)


def test_a_skipped_duplicate_leaves_telemetry_alone(store: Store) -> None:
    async def body(s: Store) -> None:
        d = await new_device(s, ident="1001")
        first = msg("1001", 100.0, {"v": 1}, device=d, server_ts=1000.0, peer="10.0.0.1:1")
        await s.ingest(IngestBatch(messages=[first]))
        before = await s.telemetry(d)
        await s.ingest(IngestBatch(messages=[{**first, "server.timestamp": 2000.0, "peer": "10.0.0.9:9"}]))
        x = msg("1001", 100.0, {"v": 2}, device=d, server_ts=3000.0)  # dropped by its given digest
        await s.ingest(IngestBatch(messages=[x], digests=[device_digest(content_of(first))]))
        assert await all_messages(s, [d]) == [first]
        assert await s.telemetry(d) == before

    run(store, body)


# --- reading messages ------------------------------------------------------------------------------

def test_messages_order_reverse_count_and_inclusive_bounds(store: Store) -> None:
    async def body(s: Store) -> None:
        d = await new_device(s, ident="1")
        j = await new_device(s, ident="013900000000", protocol="jt808")
        times = [30.0, 10.0, 20.0, 10.0, 40.0, 20.0]
        ms = [msg("1", ts, {"n": n}, device=d) for n, ts in enumerate(times)]
        unknown = msg("555", 25.0, {"n": "unknown"})
        jt = msg("013900000000", 15.0, {"n": "jt"}, device=j, protocol="jt808")
        await s.ingest(IngestBatch(messages=[*ms[:3], unknown]))
        await s.ingest(IngestBatch(messages=[*ms[3:], jt]))
        asc = [ms[1], ms[3], ms[2], ms[5], ms[0], ms[4]]  # by time, then insertion order

        assert await s.messages([d], TimeQuery()) == asc
        assert await s.messages([d], TimeQuery(reverse=True)) == asc[::-1]
        assert await s.messages([d], TimeQuery(count=3)) == asc[:3]
        assert await s.messages([d], TimeQuery(count=3, reverse=True)) == asc[::-1][:3]
        assert await s.messages([d], TimeQuery(count=0)) == []
        assert await s.messages([d], TimeQuery(from_ts=20.0, to_ts=30.0)) == [ms[2], ms[5], ms[0]]
        assert await s.messages([d], TimeQuery(from_ts=20.0)) == [ms[2], ms[5], ms[0], ms[4]]
        assert await s.messages([d], TimeQuery(to_ts=10.0)) == [ms[1], ms[3]]
        assert await s.messages([d], TimeQuery(from_ts=20.0, to_ts=40.0, count=2, reverse=True)) == [ms[4], ms[0]]
        assert await s.messages([d], TimeQuery(from_ts=11.0, to_ts=19.0)) == []
        assert await s.messages([], TimeQuery()) == []
        assert await s.messages([d, j], TimeQuery()) == [ms[1], ms[3], jt, ms[2], ms[5], ms[0], ms[4]]
        assert await s.messages(None, TimeQuery()) == [ms[1], ms[3], jt, ms[2], ms[5], unknown, ms[0], ms[4]]
        assert await s.messages(None, TimeQuery(), protocol="jt808") == [jt]
        assert await s.messages([d], TimeQuery(), protocol="jt808") == []

    run(store, body)


def test_messages_raw_is_the_stored_json_of_messages(store: Store) -> None:
    async def body(s: Store) -> None:
        d = await new_device(s, ident="1")
        ms = [
            msg("1", 20.0, {"text": 'quote " and é', "list": [1, 2.5, None], "obj": {"k": True}}, device=d),
            msg("1", 10.0, {"position.latitude": 52.400999999999996}, device=d),
        ]
        await s.ingest(IngestBatch(messages=ms))
        raw = await s.messages_raw([d], TimeQuery())
        assert raw == [dumps(ms[1]), dumps(ms[0])]
        assert [json.loads(r) for r in raw] == await s.messages([d], TimeQuery()) == [ms[1], ms[0]]
        assert await s.messages_raw([d], TimeQuery(reverse=True, count=1)) == [dumps(ms[0])]

    run(store, body)


def test_iter_messages_chunks_in_order(store: Store) -> None:
    async def body(s: Store) -> None:
        d = await new_device(s, ident="1")
        other = await new_device(s, ident="2")
        # Groups of three at one time, so ties straddle the chunk boundaries.
        ms = [msg("1", float(100 - (i // 3) * 10), {"n": i}, device=d) for i in range(23)]
        noise = [msg("2", float(i * 5), {"n": i}, device=other) for i in range(30)]
        await s.ingest(IngestBatch(messages=[m for pair in zip(ms, noise, strict=False) for m in pair] + noise[23:]))
        asc = await s.messages([d], TimeQuery())
        assert len(asc) == 23 and asc[:2] == ms[21:] and asc[-3:] == ms[:3]

        async def it(query: TimeQuery, chunk: int) -> list[Message]:
            return [m async for m in s.iter_messages(d, query, chunk=chunk)]

        for chunk in (1, 5, 23, 2000):
            assert await it(TimeQuery(), chunk) == asc
        assert await it(TimeQuery(count=12), 5) == asc[:12]
        assert await it(TimeQuery(count=12, reverse=True), 5) == asc[:12]  # reverse is ignored
        assert await it(TimeQuery(count=0), 5) == []
        bounded = TimeQuery(from_ts=40.0, to_ts=80.0)
        assert await it(bounded, 4) == await s.messages([d], bounded)
        assert len(await it(bounded, 4)) == 15
        assert await it(TimeQuery(from_ts=40.0, to_ts=80.0, count=7), 2) == (await s.messages([d], bounded))[:7]
        assert [m async for m in s.iter_messages(other + 1, TimeQuery(), chunk=3)] == []

    run(store, body)


def test_delete_messages_counts_and_keeps_telemetry(store: Store) -> None:
    async def body(s: Store) -> None:
        d1 = await new_device(s, ident="1")
        d2 = await new_device(s, ident="2")
        m1 = [msg("1", float(t), {"v": t}, device=d1) for t in (10, 20, 30, 40, 50)]
        m2 = [msg("2", float(t), {"v": t}, device=d2) for t in (10, 20, 30, 40, 50)]
        await s.ingest(IngestBatch(messages=m1 + m2))
        telemetry = await s.telemetry(d1)
        assert telemetry["v"] == {"value": 50, "ts": 50.0}
        assert await s.delete_messages([d1], TimeQuery(from_ts=20.0, to_ts=40.0)) == 3
        assert await all_messages(s, [d1]) == [m1[0], m1[4]]
        assert await all_messages(s, [d2]) == m2
        assert await s.telemetry(d1) == telemetry
        assert await s.delete_messages([], TimeQuery()) == 0
        assert await s.delete_messages([d1], TimeQuery()) == 2
        assert await all_messages(s, [d1]) == []
        assert await s.telemetry(d1) == telemetry
        # A deleted message is no longer stored, so receiving it again stores it again.
        await s.ingest(IngestBatch(messages=[m1[2]]))
        assert await all_messages(s, [d1]) == [m1[2]]

    run(store, body)


# --- telemetry -------------------------------------------------------------------------------------

def test_telemetry_is_the_newest_value_by_device_time(store: Store) -> None:
    async def body(s: Store) -> None:
        d = await new_device(s, ident="1")
        await s.ingest(IngestBatch(messages=[msg("1", 100.0, {"a": 1, "b": 1}, device=d, server_ts=1.0)]))
        await s.ingest(IngestBatch(messages=[msg("1", 300.0, {"a": 3}, device=d, server_ts=2.0)]))
        # Late (a blind-area batch): fills what is older than it, never overwrites newer values.
        await s.ingest(IngestBatch(messages=[msg("1", 200.0, {"a": 2, "b": 2, "c": 2}, device=d, server_ts=3.0)]))
        await s.ingest(IngestBatch(messages=[msg("1", 50.0, {"a": 0, "d": 0}, device=d, server_ts=4.0)]))
        t = await s.telemetry(d)
        assert t["a"] == {"value": 3, "ts": 300.0}
        assert t["b"] == {"value": 2, "ts": 200.0}
        assert t["c"] == {"value": 2, "ts": 200.0}
        assert t["d"] == {"value": 0, "ts": 50.0}
        assert t["timestamp"] == {"value": 300.0, "ts": 300.0}
        assert t["server.timestamp"] == {"value": 2.0, "ts": 300.0}
        assert t["device.id"] == {"value": d, "ts": 300.0}
        assert await s.telemetry(d, ["a", "d", "missing"]) == {
            "a": {"value": 3, "ts": 300.0}, "d": {"value": 0, "ts": 50.0},
        }
        assert await s.telemetry(d, []) == {}
        assert await s.telemetry(d + 1) == {}
        # The same device time as the newest: the later arrival wins.
        await s.ingest(IngestBatch(messages=[msg("1", 300.0, {"a": 4}, device=d, server_ts=5.0)]))
        assert await s.telemetry(d, ["a", "b"]) == {"a": {"value": 4, "ts": 300.0}, "b": {"value": 2, "ts": 200.0}}

    run(store, body)


def test_flagged_and_unknown_messages_never_reach_telemetry(store: Store) -> None:
    async def body(s: Store) -> None:
        d = await new_device(s, ident="1")
        ok = msg("1", 100.0, {"a": 1}, device=d)
        flagged = msg("1", 900.0, {"a": 99, "z": 1}, device=d, flagged=True)  # a device time that cannot be right
        unknown = msg("1", 950.0, {"a": 98})  # no device.id
        await s.ingest(IngestBatch(messages=[ok, flagged, unknown]))
        assert await all_messages(s) == [ok, flagged, unknown]  # all stored
        t = await s.telemetry(d)
        assert t["a"] == {"value": 1, "ts": 100.0}
        assert "z" not in t and "timestamp.flagged" not in t
        # The flagged time did not move the "newest" mark either.
        await s.ingest(IngestBatch(messages=[msg("1", 200.0, {"a": 2}, device=d)]))
        assert (await s.telemetry(d, ["a"])) == {"a": {"value": 2, "ts": 200.0}}

    run(store, body)


def test_delete_telemetry_all_or_named(store: Store) -> None:
    async def body(s: Store) -> None:
        d = await new_device(s, ident="1")
        other = await new_device(s, ident="2")
        await s.ingest(IngestBatch(messages=[
            msg("1", 100.0, {"a": 1, "b": 2, "c": 3}, device=d), msg("2", 100.0, {"a": 1}, device=other),
        ]))
        everything = set(await s.telemetry(d))
        assert await s.delete_telemetry(d, ["a", "missing"]) == 1
        assert set(await s.telemetry(d)) == everything - {"a"}
        assert await s.delete_telemetry(d) == len(everything) - 1
        assert await s.telemetry(d) == {}
        assert await s.delete_telemetry(d) == 0
        assert (await s.telemetry(other, ["a"])) == {"a": {"value": 1, "ts": 100.0}}
        assert await all_messages(s, [d]) != []  # the messages stay
        # Forgotten values no longer hold newer times: an older message fills them again.
        await s.ingest(IngestBatch(messages=[msg("1", 50.0, {"a": 5}, device=d)]))
        assert await s.telemetry(d, ["a", "b"]) == {"a": {"value": 5, "ts": 50.0}}

    run(store, body)


@sqlite_only
def test_sqlite_telemetry_survives_close_and_reopen(store: Store, tmp_path: Path) -> None:
    async def body(s: Store) -> int:
        d = await new_device(s, ident="1")
        await s.ingest(IngestBatch(messages=[msg("1", 300.0, {"a": 3}, device=d)]))
        await s.ingest(IngestBatch(messages=[msg("1", 100.0, {"a": 1, "b": 1}, device=d)]))
        return d

    d = run(store, body)

    async def reopened(s: Store) -> None:
        assert await s.telemetry(d, ["a", "b"]) == {"a": {"value": 3, "ts": 300.0}, "b": {"value": 1, "ts": 100.0}}
        await s.ingest(IngestBatch(messages=[msg("1", 200.0, {"a": 2, "b": 2}, device=d)]))  # late, after reopen
        assert await s.telemetry(d, ["a", "b"]) == {"a": {"value": 3, "ts": 300.0}, "b": {"value": 2, "ts": 200.0}}

    run(SQLiteStore(tmp_path / "c.sqlite"), reopened)


@sqlite_only
def test_sqlite_deleted_telemetry_stays_deleted_after_reopen(store: Store, tmp_path: Path) -> None:
    async def body(s: Store) -> tuple[int, int]:
        d = await new_device(s, ident="1")
        gone = await new_device(s, ident="2")
        await s.ingest(IngestBatch(messages=[
            msg("1", 100.0, {"a": 1}, device=d), msg("2", 100.0, {"a": 1}, device=gone),
        ]))
        assert await s.delete_telemetry(d, ["a"]) == 1
        await s.delete_device(gone)
        return d, gone

    d, gone = run(store, body)

    async def reopened(s: Store) -> None:
        assert "a" not in await s.telemetry(d)
        assert await s.telemetry(gone) == {}

    run(SQLiteStore(tmp_path / "c.sqlite"), reopened)


@sqlite_only
def test_sqlite_a_batch_the_database_rejects_leaves_telemetry_alone(store: Store) -> None:
    async def body(s: Store) -> None:
        d = await new_device(s, ident="1")
        await s.ingest(IngestBatch(messages=[msg("1", 100.0, {"a": 1}, device=d)]))
        bad_packet = PacketRecord(200.0, PACKET_RECEIVED, 1, "h02", None, "1", d, b"x")  # type: ignore[arg-type]
        with pytest.raises(sqlite3.IntegrityError):  # NOT NULL constraint failed: packets.peer
            await s.ingest(IngestBatch(messages=[msg("1", 200.0, {"a": 2}, device=d)], packets=[bad_packet]))
        assert [m["a"] for m in await all_messages(s, [d])] == [1]
        assert await s.telemetry(d, ["a"]) == {"a": {"value": 1, "ts": 100.0}}

    run(store, body)


# --- traffic ---------------------------------------------------------------------------------------

def test_packets_shape_order_and_filters(store: Store) -> None:
    async def body(s: Store) -> None:
        d = await new_device(s, ident="1001")
        records = [
            PacketRecord(10.0, PACKET_RECEIVED, 7, "h02", "1.2.3.4:1", "1001", d, b"*HQ,1001#"),
            PacketRecord(10.0, PACKET_SENT, 7, "h02", "1.2.3.4:1", "1001", d, b"ack"),
            PacketRecord(5.0, PACKET_CONNECT, 8, "jt808", "5.6.7.8:2"),
            PacketRecord(20.0, PACKET_RECEIVED + PACKET_UDP, 9, "h02", "1.2.3.4:9", "2002", None, b"\x00\xff"),
        ]
        await s.ingest(IngestBatch(packets=records[:2]))
        await s.ingest(IngestBatch(packets=records[2:]))
        got = await s.packets(TimeQuery())
        ids = [p["id"] for p in got]
        assert all(isinstance(i, int) for i in ids)
        p1, p2, p3, p4 = (next(p for p in got if p["data"] == r.data and p["type"] == r.type) for r in records)
        assert p1["id"] < p2["id"] < p3["id"] < p4["id"]  # ids follow insertion
        assert p1 == {
            "id": p1["id"], "timestamp": 10.0, "type": PACKET_RECEIVED, "conn": 7, "protocol": "h02",
            "peer": "1.2.3.4:1", "ident": "1001", "device_id": d, "data": b"*HQ,1001#",
        }
        assert p3 == {
            "id": p3["id"], "timestamp": 5.0, "type": PACKET_CONNECT, "conn": 8, "protocol": "jt808",
            "peer": "5.6.7.8:2", "ident": None, "device_id": None, "data": b"",
        }
        assert isinstance(p4["data"], bytes) and p4["type"] == PACKET_RECEIVED + PACKET_UDP
        assert got == [p3, p1, p2, p4]
        assert await s.packets(TimeQuery(reverse=True)) == [p4, p2, p1, p3]
        assert await s.packets(TimeQuery(count=2)) == [p3, p1]
        assert await s.packets(TimeQuery(count=2, reverse=True)) == [p4, p2]
        assert await s.packets(TimeQuery(from_ts=10.0, to_ts=10.0)) == [p1, p2]
        assert await s.packets(TimeQuery(), device_ids=[d]) == [p1, p2]
        assert await s.packets(TimeQuery(), device_ids=[]) == []
        assert await s.packets(TimeQuery(), protocol="jt808") == [p3]
        assert await s.packets(TimeQuery(), ident="2002") == [p4]
        assert await s.packets(TimeQuery(), protocol="h02", ident="1001", device_ids=[d]) == [p1, p2]
        assert await s.packets(TimeQuery(from_ts=6.0), protocol="jt808") == []

    run(store, body)


def test_logs_shape_order_and_filters(store: Store) -> None:
    async def body(s: Store) -> None:
        d = await new_device(s, ident="1001")
        connect = LogRecord(10.0, "connect", "h02", conn=7, ident="1001", device_id=d, peer="1.2.3.4:1")
        close = LogRecord(
            10.0, "disconnect", "h02", conn=7, ident="1001", device_id=d, peer="1.2.3.4:1", transport="udp",
            recv=120, send=30, msgs=4, duration=12.5, reason="timeout",
        )
        early = LogRecord(5.0, "connect", "jt808", conn=8, peer="5.6.7.8:2")
        await s.ingest(IngestBatch(logs=[connect, close, early]))
        got = await s.logs(TimeQuery())
        assert [g["event"] for g in got] == ["connect", "connect", "disconnect"]
        e, c, x = got
        assert c["id"] < x["id"] and e["id"] > x["id"]
        assert x == {
            "id": x["id"], "timestamp": 10.0, "event": "disconnect", "protocol": "h02", "conn": 7, "ident": "1001",
            "device_id": d, "peer": "1.2.3.4:1", "transport": "udp", "recv": 120, "send": 30, "msgs": 4,
            "duration": 12.5, "reason": "timeout",
        }
        assert e == {
            "id": e["id"], "timestamp": 5.0, "event": "connect", "protocol": "jt808", "conn": 8, "ident": None,
            "device_id": None, "peer": "5.6.7.8:2", "transport": "tcp", "recv": 0, "send": 0, "msgs": 0,
            "duration": None, "reason": None,
        }
        assert await s.logs(TimeQuery(reverse=True)) == [x, c, e]
        assert await s.logs(TimeQuery(count=1, reverse=True)) == [x]
        assert await s.logs(TimeQuery(from_ts=10.0, to_ts=10.0)) == [c, x]
        assert await s.logs(TimeQuery(), device_ids=[d]) == [c, x]
        assert await s.logs(TimeQuery(), device_ids=[]) == []
        assert await s.logs(TimeQuery(), protocol="jt808") == [e]

    run(store, body)


def test_idents_upsert_and_order(store: Store) -> None:
    async def body(s: Store) -> None:
        d = await new_device(s, ident="1001")
        await s.ingest(IngestBatch(idents=[IdentSeen("h02", "1001", 10.0, "10.0.0.1:1", b"\x01\x02")]))
        assert await s.idents() == [{
            "protocol": "h02", "ident": "1001", "first_seen": 10.0, "last_seen": 10.0, "peer": "10.0.0.1:1",
            "sample": "0102", "device_id": None,
        }]
        await s.ingest(IngestBatch(idents=[IdentSeen("jt808", "013900000000", 15.0, "10.0.0.3:3", b"~\x02")]))
        await s.ingest(IngestBatch(idents=[IdentSeen("h02", "1001", 20.0, "10.0.0.2:2", b"\x03", d)]))
        await s.ingest(IngestBatch(idents=[IdentSeen("h02", "1001", 30.0, "10.0.0.4:4", b"")]))  # no device_id
        h02, jt = await s.idents()  # the most recently seen first
        assert {k: v for k, v in h02.items() if k != "sample"} == {
            "protocol": "h02", "ident": "1001", "first_seen": 10.0, "last_seen": 30.0, "peer": "10.0.0.4:4",
            "device_id": d,
        }
        assert isinstance(h02["sample"], str)
        assert jt == {
            "protocol": "jt808", "ident": "013900000000", "first_seen": 15.0, "last_seen": 15.0,
            "peer": "10.0.0.3:3", "sample": "7e02", "device_id": None,
        }
        assert await s.idents("jt808") == [jt]
        assert await s.idents("none") == []
        await s.ingest(IngestBatch(idents=[IdentSeen("jt808", "013900000000", 40.0, "10.0.0.3:4")]))
        assert [i["ident"] for i in await s.idents()] == ["013900000000", "1001"]

    run(store, body)


# --- commands --------------------------------------------------------------------------------------

def test_commands_create_update_get(store: Store) -> None:
    async def body(s: Store) -> None:
        d = await new_device(s, ident="1001")
        before = time.time()
        c = await s.create_command({
            "device_id": d, "ident": "1001", "protocol": "h02", "name": "interval.set",
            "properties": {"seconds": 30}, "expire": 1_800_000_000.0, "id": 999, "bogus": 1,  # id, bogus ignored
        })
        after = time.time()
        assert set(c) == set(COMMAND_FIELDS)
        assert isinstance(c["id"], int) and c["id"] != 999
        assert isinstance(c["created"], float) and before <= c["created"] <= after
        assert c == {
            "id": c["id"], "device_id": d, "ident": "1001", "protocol": "h02", "name": "interval.set",
            "properties": {"seconds": 30}, "status": "queued", "realtime": False, "created": c["created"],
            "expire": 1_800_000_000.0, "attempts": 0, "max_attempts": 10, "sent": None, "finished": None,
            "executed": None, "response": None, "reply": None, "match": None, "payload": None, "reason": None,
        }
        assert await s.get_command(c["id"]) == c
        c2 = await s.create_command({
            "device_id": d, "name": "reboot", "properties": {}, "status": "sending", "created": 5.0,
            "realtime": True, "max_attempts": 1,
        })
        assert c2["id"] > c["id"]
        assert (c2["status"], c2["created"], c2["realtime"], c2["max_attempts"]) == ("sending", 5.0, True, 1)

        changes = {
            "status": "executed", "attempts": 1, "sent": 101.0, "finished": 102.5, "executed": True,
            "response": "OK", "reply": {"ack": [1, 2], "text": "é"}, "match": {"seq": 5}, "payload": b"\x01\x02",
            "bogus": 2,
        }
        updated = await s.update_command(c["id"], changes)
        expected = {**c, **{k: v for k, v in changes.items() if k != "bogus"}}
        assert updated == expected
        assert await s.get_command(c["id"]) == expected
        assert isinstance(updated["payload"], bytes)
        assert (await s.update_command(c["id"], {"executed": False, "reason": "refused"}))["executed"] is False
        assert await s.get_command(c2["id"]) == c2  # the other one is untouched

        with pytest.raises(NotFound):
            await s.update_command(c2["id"] + 100, {"status": "failed"})
        with pytest.raises(NotFound):
            await s.get_command(c2["id"] + 100)

    run(store, body)


def test_a_command_needs_a_name(store: Store) -> None:
    async def body(s: Store) -> None:
        d = await new_device(s, ident="1")
        for fields in ({"device_id": d, "properties": {}}, {"device_id": d, "name": None, "properties": {}}):
            with pytest.raises(StoreError):  # not the database's NOT NULL error
                await s.create_command(fields)
        assert await s.commands() == []
        c = await s.create_command({"device_id": d, "name": "x"})
        with pytest.raises(StoreError):
            await s.update_command(c["id"], {"name": None})
        assert await s.get_command(c["id"]) == c

    run(store, body)


def test_commands_filters_and_order(store: Store) -> None:
    async def body(s: Store) -> None:
        d1 = await new_device(s, ident="1")
        d2 = await new_device(s, ident="2")

        async def cmd(device_id: int | None, created: float | None, status: str = "queued") -> dict[str, Any]:
            fields: dict[str, Any] = {"device_id": device_id, "name": "x", "properties": {}, "status": status}
            if created is not None:
                fields["created"] = created
            return await s.create_command(fields)

        c1 = await cmd(d1, 100.0)
        c2 = await cmd(d1, 50.0, "sent")
        c3 = await cmd(d1, 100.0, "executed")
        c4 = await cmd(d2, None, "sent")  # created now
        c5 = await cmd(None, 75.0)
        asc = [c2, c5, c1, c3, c4]
        assert await s.commands() == asc
        assert await s.commands(query=TimeQuery(reverse=True)) == asc[::-1]
        assert await s.commands(query=TimeQuery(count=2)) == [c2, c5]
        assert await s.commands(query=TimeQuery(count=2, reverse=True)) == [c4, c3]
        assert await s.commands(query=TimeQuery(from_ts=75.0, to_ts=100.0)) == [c5, c1, c3]
        assert await s.commands(device_ids=[d1]) == [c2, c1, c3]
        assert await s.commands(device_ids=[d2, d1]) == [c2, c1, c3, c4]
        assert await s.commands(device_ids=[]) == []
        assert await s.commands(statuses=("sent",)) == [c2, c4]
        assert await s.commands(statuses=("queued", "executed")) == [c5, c1, c3]
        assert await s.commands(statuses=()) == []
        assert await s.commands(device_ids=[d1], statuses=("sent", "queued"), query=TimeQuery(to_ts=99.0)) == [c2]

    run(store, body)


# --- key/value and handler state -------------------------------------------------------------------

def test_key_value(store: Store) -> None:
    async def body(s: Store) -> None:
        assert await s.kv_get("tokens", "abc") is None
        assert await s.kv_list("tokens") == {}
        value = {"read_only": True, "devices": [1, 2], "name": "viewer"}
        await s.kv_set("tokens", "abc", value)
        value["devices"].append(3)  # the caller's object is not the stored one
        got = await s.kv_get("tokens", "abc")
        assert got == {"read_only": True, "devices": [1, 2], "name": "viewer"}
        got["devices"].clear()  # nor is the returned one
        assert await s.kv_get("tokens", "abc") == {"read_only": True, "devices": [1, 2], "name": "viewer"}
        for key, v in [("zeta", 1), ("alpha", [1, "x"]), ("mid", None), ("Beta", "text"), ("n", 2.5)]:
            await s.kv_set("settings", key, v)
        listed = await s.kv_list("settings")
        assert list(listed) == ["Beta", "alpha", "mid", "n", "zeta"]
        assert listed == {"Beta": "text", "alpha": [1, "x"], "mid": None, "n": 2.5, "zeta": 1}
        await s.kv_set("settings", "zeta", {"replaced": True})
        assert await s.kv_get("settings", "zeta") == {"replaced": True}
        assert await s.kv_list("tokens") == {"abc": {"read_only": True, "devices": [1, 2], "name": "viewer"}}
        await s.kv_delete("settings", "alpha")
        await s.kv_delete("settings", "never-set")
        await s.kv_delete("nowhere", "x")
        assert list(await s.kv_list("settings")) == ["Beta", "mid", "n", "zeta"]
        assert await s.kv_get("settings", "alpha") is None

    run(store, body)


def test_handler_states_save_load_and_go_with_the_device(store: Store) -> None:
    async def body(s: Store) -> None:
        d1 = await new_device(s, ident="1")
        d2 = await new_device(s, ident="2")
        assert await s.load_states() == {}
        state = {"trip": {"start": 100.0, "points": [1, 2]}, "geofence": ["depot"]}
        await s.save_states({d1: state, d2: {"trip": None}})
        state["geofence"].append("mutated")
        loaded = await s.load_states()
        assert loaded == {d1: {"trip": {"start": 100.0, "points": [1, 2]}, "geofence": ["depot"]}, d2: {"trip": None}}
        loaded[d1]["trip"]["points"].clear()
        await s.save_states({d1: {"geofence": []}})  # replaces d1's state only
        await s.save_states({})
        assert await s.load_states() == {d1: {"geofence": []}, d2: {"trip": None}}
        await s.delete_device(d1)
        assert await s.load_states() == {d2: {"trip": None}}

    run(store, body)


# --- retention and lifecycle -----------------------------------------------------------------------

def test_purge_by_server_time_and_packet_time(store: Store) -> None:
    async def body(s: Store) -> None:
        d = await new_device(s, ident="1")
        # Device times run against reception times: purge must go by reception (server) time.
        a = msg("1", 900.0, {"n": "a"}, device=d, server_ts=100.0)
        b = msg("1", 800.0, {"n": "b"}, device=d, server_ts=200.0)
        c = msg("1", 700.0, {"n": "c"}, device=d, server_ts=300.0)
        await s.ingest(IngestBatch(
            messages=[a, b, c],
            packets=[PacketRecord(float(t), PACKET_RECEIVED, 1, "h02", "p", "1", d, b"x") for t in (10, 20, 30)],
            logs=[LogRecord(float(t), "connect", "h02", device_id=d) for t in (10, 20, 30)],
        ))
        telemetry = await s.telemetry(d)
        assert await s.purge(None, None) == {"messages": 0, "packets": 0, "logs": 0}
        assert await s.purge(200.0, None) == {"messages": 1, "packets": 0, "logs": 0}  # strictly before
        assert await all_messages(s, [d]) == [c, b]
        assert await s.purge(None, 20.0) == {"messages": 0, "packets": 1, "logs": 1}
        assert [p["timestamp"] for p in await s.packets(TimeQuery())] == [20.0, 30.0]
        assert [lg["timestamp"] for lg in await s.logs(TimeQuery())] == [20.0, 30.0]
        assert await s.purge(1000.0, 1000.0) == {"messages": 2, "packets": 2, "logs": 2}
        assert await all_messages(s) == [] and await s.packets(TimeQuery()) == [] and await s.logs(TimeQuery()) == []
        assert await s.telemetry(d) == telemetry

    run(store, body)


async def _closed(s: Store) -> tuple[int, int]:
    d = await new_device(s, ident="1")
    c = await s.create_command({"device_id": d, "name": "x", "properties": {}})
    await s.ingest(IngestBatch(messages=[msg("1", 1.0, {"a": 1}, device=d)]))
    await s.close()
    return d, int(c["id"])


def test_a_closed_store_refuses_writes(store: Store) -> None:
    async def body(s: Store) -> None:
        d, c = await _closed(s)
        writes: list[Callable[[], Awaitable[Any]]] = [
            lambda: s.create_device({"ident": "2", "protocol": "h02"}),
            lambda: s.update_device(d, {"name": "x"}),
            lambda: s.delete_device(d),
            lambda: s.set_connected(d, True, 5.0),
            lambda: s.ingest(IngestBatch(messages=[msg("1", 2.0, device=d)])),
            lambda: s.delete_messages([d], TimeQuery()),
            lambda: s.delete_telemetry(d),
            lambda: s.create_command({"device_id": d, "name": "x", "properties": {}}),
            lambda: s.update_command(c, {"status": "failed"}),
            lambda: s.kv_set("ns", "k", 1),
            lambda: s.kv_delete("ns", "k"),
            lambda: s.save_states({d: {"a": 1}}),
            lambda: s.purge(1e12, 1e12),
        ]
        for write in writes:
            with pytest.raises(StoreError, match="closed"):
                await write()

    run(store, body)


def test_a_closed_store_refuses_reads(store: Store) -> None:
    async def body(s: Store) -> None:
        d, c = await _closed(s)

        async def iterate() -> list[Message]:
            return [m async for m in s.iter_messages(d, TimeQuery())]

        reads: list[Callable[[], Awaitable[Any]]] = [
            lambda: s.get_device(d),
            s.list_devices,
            lambda: s.messages([d], TimeQuery()),
            lambda: s.messages_raw([d], TimeQuery()),
            iterate,
            lambda: s.telemetry(d),
            lambda: s.packets(TimeQuery()),
            lambda: s.logs(TimeQuery()),
            s.idents,
            lambda: s.get_command(c),
            s.commands,
            lambda: s.kv_get("ns", "k"),
            lambda: s.kv_list("ns"),
            s.load_states,
        ]
        for read in reads:
            with pytest.raises(StoreError):
                await read()

    run(store, body)


def test_integers_beyond_64_bits_come_back_exactly(store: Store) -> None:
    async def body(s: Store) -> None:
        d = await new_device(s, ident="1")
        m = msg("1", 1.0, {"raw": 2**70 + 1}, device=d)  # no float is equal to it
        await s.ingest(IngestBatch(messages=[m]))
        await s.kv_set("ns", "big", {"n": -(2**65) - 1})
        assert await all_messages(s, [d]) == [m]
        assert await s.kv_get("ns", "big") == {"n": -(2**65) - 1}

    run(store, body)


# --- intervals ---------------------------------------------------------------------------------------

def interval(calc: int, device: int, begin: float, end: float, **extra: Any) -> dict[str, Any]:
    """A closed interval as the calcs handler makes it (no id yet)."""
    return {"calc.id": calc, "device.id": device, "begin": begin, "end": end, "duration": end - begin,
            "active": False, "distance": 1.5, "max.speed": 60.0, "avg.speed": None,
            "begin.position.latitude": 52.0, "begin.position.longitude": 13.0, "end.position.latitude": 52.1,
            "end.position.longitude": 13.1, **extra}


def test_intervals_are_stored_with_the_batch_and_get_ids(store: Store) -> None:
    async def body(s: Store) -> None:
        d = await new_device(s, ident="1")
        e = await new_device(s, ident="2")
        items = [interval(1, d, 100.0, 200.0), interval(2, d, 200.0, 500.0),
                 interval(3, d, 150.0, 160.0, **{"geofence.id": 4, "geofence.name": "depot"}),
                 interval(1, e, 50.0, 120.0)]
        await s.ingest(IngestBatch(messages=[msg("1", 100.0, device=d)], intervals=items))
        ids = [i["id"] for i in items]
        assert all(isinstance(i, int) for i in ids) and ids == sorted(ids) and len(set(ids)) == 4
        got = await s.intervals(None, None, TimeQuery())
        assert got == sorted(items, key=lambda i: i["begin"])  # every field comes back, the id too
        assert await s.intervals([1], [d], TimeQuery()) == [items[0]]
        assert await s.intervals([1, 2], None, TimeQuery()) == [items[3], items[0], items[1]]
        # The query's span selects what overlaps it, bounds inclusive.
        assert await s.intervals(None, [d], TimeQuery(200.0, 210.0)) == [items[0], items[1]]
        assert await s.intervals(None, [d], TimeQuery(161.0, 199.0)) == [items[0]]
        assert await s.intervals(None, [d], TimeQuery(None, 149.0)) == [items[0]]
        assert await s.intervals(None, [d], TimeQuery(501.0, None)) == []
        assert await s.intervals(None, None, TimeQuery(reverse=True, count=2)) == [items[1], items[2]]
        assert await s.intervals([], None, TimeQuery()) == []

    run(store, body)


def test_an_ingest_that_raises_stores_no_interval(store: Store) -> None:
    async def body(s: Store) -> None:
        d = await new_device(s, ident="1")
        bad = msg("1", 200.0, {"v": {1, 2}}, device=d)  # JSON cannot encode a set
        with pytest.raises(TypeError):
            await s.ingest(IngestBatch(messages=[bad], intervals=[interval(1, d, 100.0, 200.0)]))
        assert await s.intervals(None, None, TimeQuery()) == []
        await s.ingest(IngestBatch(intervals=[interval(1, d, 100.0, 200.0)]))  # intervals alone are a batch
        assert len(await s.intervals(None, None, TimeQuery())) == 1

    run(store, body)


def test_replace_intervals_for_a_recalculation(store: Store) -> None:
    async def body(s: Store) -> None:
        d = await new_device(s, ident="1")
        e = await new_device(s, ident="2")
        old = [interval(1, d, 100.0, 200.0), interval(1, d, 300.0, 400.0), interval(1, d, 500.0, 600.0),
               interval(2, d, 300.0, 310.0), interval(1, e, 300.0, 400.0)]
        await s.ingest(IngestBatch(intervals=old))
        new = [interval(1, d, 290.0, 420.0, distance=9.0), interval(1, d, 450.0, 460.0)]
        # Intervals of calc 1 and device d that begin within [250, 500] go; others stay.
        deleted = await s.replace_intervals(1, d, 250.0, 500.0, new)
        assert deleted == [old[1]["id"], old[2]["id"]]
        assert all(isinstance(i["id"], int) and i["id"] > old[-1]["id"] for i in new)
        assert await s.intervals([1], [d], TimeQuery()) == [old[0], *new]
        assert await s.intervals([2], None, TimeQuery()) == [old[3]]
        assert await s.intervals(None, [e], TimeQuery()) == [old[4]]
        # No upper bound: everything from begin on.
        assert await s.replace_intervals(1, d, 100.0, None, []) == sorted([old[0]["id"], *(i["id"] for i in new)])
        assert await s.intervals([1], [d], TimeQuery()) == []

    run(store, body)


def test_delete_intervals_of_a_calc(store: Store) -> None:
    async def body(s: Store) -> None:
        d = await new_device(s, ident="1")
        e = await new_device(s, ident="2")
        items = [interval(100, d, 1.0, 2.0), interval(100, e, 1.0, 2.0), interval(101, d, 1.0, 2.0)]
        await s.ingest(IngestBatch(intervals=items))
        assert await s.delete_intervals(100, [e]) == 1
        assert await s.intervals(None, None, TimeQuery()) == [items[0], items[2]]
        assert await s.delete_intervals(100) == 1
        assert await s.delete_intervals(100) == 0
        assert await s.intervals(None, None, TimeQuery()) == [items[2]]

    run(store, body)
