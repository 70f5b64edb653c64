"""The PostgreSQL store on its own: reopening, partitions by device time, retention by dropping
partitions, group commit, migrations, two stores on one schema (two nodes), events.

The shared rules are in ``test_contract.py``, which runs on PostgreSQL too; this file covers what
only a persistent, partitioned store has."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncpg
import pytest

from sinogate.store.base import (
    PACKET_RECEIVED,
    Conflict,
    IngestBatch,
    LogRecord,
    Message,
    PacketRecord,
    StoreError,
    TimeQuery,
)
from sinogate.store.postgres import PostgresStore, split_url
from tests.store import test_contract as contract
from tests.store.pg import schema_url

T = TypeVar("T")


def ts(year: int, month: int, day: int = 15) -> float:
    return datetime(year, month, day, 12, tzinfo=UTC).timestamp()


def msg(ident: str, t: float, device: int | None, server_ts: float = 1_700_000_000.0, **content: Any) -> Message:
    m: Message = {"ident": ident, "message.type": "V1", "timestamp": t, **content,
                  "server.timestamp": server_ts, "protocol.name": "h02"}
    if device is not None:
        m["device.id"] = device
    return m


@pytest.fixture
def url(request: pytest.FixtureRequest) -> str:
    return schema_url(request)


def run(url: str, body: Callable[[PostgresStore], Awaitable[T]]) -> T:
    async def main() -> T:
        store = PostgresStore(url)
        await store.open()
        try:
            return await body(store)
        finally:
            await store.close()

    return asyncio.run(main())


async def asql(url: str, query: str, *args: Any) -> list[Any]:
    dsn, schema = split_url(url)
    conn = await asyncpg.connect(dsn, server_settings={"search_path": f'"{schema}"'})
    try:
        return [tuple(r) for r in await conn.fetch(query, *args)]
    finally:
        await conn.close()


def sql(url: str, query: str, *args: Any) -> list[Any]:
    return asyncio.run(asql(url, query, *args))


async def apartitions(url: str) -> dict[str, int]:
    """Partition name → rows."""
    rows = await asql(url, "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                           " WHERE i.inhparent = 'messages'::regclass ORDER BY 1")
    return {name: (await asql(url, f"SELECT count(*) FROM {name}"))[0][0] for (name,) in rows}


def partitions(url: str) -> dict[str, int]:
    return asyncio.run(apartitions(url))


# --- the rules the suite runs on some stores only ---------------------------------------------------

def test_a_closed_store_refuses_reads(url: str) -> None:
    """``test_contract`` runs this one on memory and (as a strict xfail) on SQLite only."""
    contract.test_a_closed_store_refuses_reads(PostgresStore(url))


async def crash(s: PostgresStore) -> None:
    """The process dies: no final write-back, connections cut (every write had returned)."""
    assert s._writer is not None and s._conn is not None and s._pool is not None
    s._writer.cancel()
    s._conn.terminate()
    s._pool.terminate()
    s._open = False


def crashed(url: str, body: Callable[[PostgresStore], Awaitable[T]]) -> T:
    async def main() -> T:
        store = PostgresStore(url)
        await store.open()
        try:
            return await body(store)
        finally:
            await crash(store)

    return asyncio.run(main())


def test_telemetry_after_a_crash_is_replayed_from_the_messages(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    async def before(s: PostgresStore) -> tuple[int, int, int]:
        d = int((await s.create_device({"ident": "1", "protocol": "h02"}))["id"])
        forgetful = int((await s.create_device({"ident": "2", "protocol": "h02"}))["id"])
        gone = int((await s.create_device({"ident": "3", "protocol": "h02"}))["id"])
        await s.ingest(IngestBatch(messages=[msg("1", 300.0, d, a=3), msg("2", 100.0, forgetful, a=1, b=1),
                                             msg("3", 100.0, gone, a=1)]))
        monkeypatch.setattr("sinogate.store.postgres.TELEMETRY_FLUSH_SECONDS", 0.0)
        await s.ingest(IngestBatch(messages=[msg("1", 100.0, d, a=1, b=1)]))  # written back before this
        await s.ingest(IngestBatch(messages=[msg("1", 200.0, d, b=2, c=2)]))  # and this one
        monkeypatch.setattr("sinogate.store.postgres.TELEMETRY_FLUSH_SECONDS", 3600.0)
        await s.ingest(IngestBatch(messages=[msg("1", 400.0, d, a=4)]))  # only in the messages
        await s.ingest(IngestBatch(messages=[msg("1", 50.0, d, z=0, server_ts=1.0, **{"timestamp.flagged": True})]))
        await s.ingest(IngestBatch(messages=[msg("2", 200.0, forgetful, a=2)]))
        assert await s.delete_telemetry(forgetful, ["a"]) == 1
        await s.delete_device(gone)
        return d, forgetful, gone

    d, forgetful, gone = crashed(url, before)
    assert sql(url, "SELECT value FROM checkpoints WHERE name = 'telemetry'")[0][0] > 0

    async def after(s: PostgresStore) -> None:
        assert await s.telemetry(d, ["a", "b", "c", "z"]) == {
            "a": {"value": 4, "ts": 400.0}, "b": {"value": 2, "ts": 200.0}, "c": {"value": 2, "ts": 200.0},
        }
        assert await s.telemetry(forgetful, ["a", "b"]) == {"b": {"value": 1, "ts": 100.0}}  # "a" stays forgotten
        assert await s.telemetry(gone) == {}
        await s.ingest(IngestBatch(messages=[msg("1", 500.0, d, a=5)]))

    crashed(url, after)

    async def again(s: PostgresStore) -> None:  # replays twice, applies once
        assert (await s.telemetry(d, ["a", "b"])) == {"a": {"value": 5, "ts": 500.0}, "b": {"value": 2, "ts": 200.0}}

    run(url, again)


def test_telemetry_survives_close_and_reopen(url: str) -> None:
    async def first(s: PostgresStore) -> int:
        d = int((await s.create_device({"ident": "1", "protocol": "h02"}))["id"])
        await s.ingest(IngestBatch(messages=[msg("1", 300.0, d, a=3)]))
        await s.ingest(IngestBatch(messages=[msg("1", 100.0, d, a=1, b=1)]))
        return d

    d = run(url, first)

    async def reopened(s: PostgresStore) -> None:
        assert s.migrated == []
        assert await s.telemetry(d, ["a", "b"]) == {"a": {"value": 3, "ts": 300.0}, "b": {"value": 1, "ts": 100.0}}
        await s.ingest(IngestBatch(messages=[msg("1", 200.0, d, a=2, b=2)]))  # late, after the reopen
        assert await s.telemetry(d, ["a", "b"]) == {"a": {"value": 3, "ts": 300.0}, "b": {"value": 2, "ts": 200.0}}

    run(url, reopened)


def test_deleted_telemetry_stays_deleted_after_reopen(url: str) -> None:
    async def first(s: PostgresStore) -> tuple[int, int]:
        d = int((await s.create_device({"ident": "1", "protocol": "h02"}))["id"])
        gone = int((await s.create_device({"ident": "2", "protocol": "h02"}))["id"])
        await s.ingest(IngestBatch(messages=[msg("1", 100.0, d, a=1, b=1), msg("2", 100.0, gone, a=1)]))
        assert await s.delete_telemetry(d, ["a"]) == 1
        await s.delete_device(gone)
        return d, gone

    d, gone = run(url, first)

    async def reopened(s: PostgresStore) -> None:
        telemetry = await s.telemetry(d)
        assert "a" not in telemetry and telemetry["b"] == {"value": 1, "ts": 100.0}
        assert await s.telemetry(gone) == {}

    run(url, reopened)


def test_a_batch_the_database_rejects_leaves_telemetry_alone(url: str) -> None:
    async def body(s: PostgresStore) -> None:
        d = int((await s.create_device({"ident": "1", "protocol": "h02"}))["id"])
        await s.ingest(IngestBatch(messages=[msg("1", 100.0, d, a=1)]))
        bad_packet = PacketRecord(200.0, PACKET_RECEIVED, 1, "h02", None, "1", d, b"x")  # type: ignore[arg-type]
        with pytest.raises(asyncpg.NotNullViolationError):  # packets.peer
            await s.ingest(IngestBatch(messages=[msg("1", 200.0, d, a=2)], packets=[bad_packet]))
        assert [m["a"] for m in await s.messages([d], TimeQuery())] == [1]
        assert await s.telemetry(d, ["a"]) == {"a": {"value": 1, "ts": 100.0}}

    run(url, body)
    assert json.loads(sql(url, "SELECT data FROM telemetry")[0][0])["values"]["a"] == 1  # the stored row too


def test_telemetry_of_deleted_or_purged_messages_survives_a_crash(url: str) -> None:
    async def delete(s: PostgresStore) -> int:
        d = int((await s.create_device({"ident": "1", "protocol": "h02"}))["id"])
        await s.ingest(IngestBatch(messages=[msg("1", 100.0, d, a=1)]))
        assert await s.delete_messages([d], TimeQuery()) == 1
        return d

    d = crashed(url, delete)

    async def purge(s: PostgresStore) -> int:
        assert await s.telemetry(d, ["a"]) == {"a": {"value": 1, "ts": 100.0}}
        p = int((await s.create_device({"ident": "2", "protocol": "h02"}))["id"])
        await s.ingest(IngestBatch(messages=[msg("2", 100.0, p, a=2, server_ts=5.0)]))
        assert (await s.purge(10.0, None))["messages"] == 1
        return p

    p = crashed(url, purge)

    async def after(s: PostgresStore) -> None:
        assert await s.messages(None, TimeQuery()) == []
        assert await s.telemetry(d, ["a"]) == {"a": {"value": 1, "ts": 100.0}}
        assert await s.telemetry(p, ["a"]) == {"a": {"value": 2, "ts": 100.0}}

    run(url, after)


# --- partitions and retention ----------------------------------------------------------------------

def test_messages_go_to_monthly_partitions_and_odd_times_to_the_default(url: str) -> None:
    async def body(s: PostgresStore) -> None:
        d = int((await s.create_device({"ident": "1", "protocol": "h02"}))["id"])
        await s.ingest(IngestBatch(messages=[
            msg("1", ts(2023, 11), d, n=1), msg("1", ts(2023, 11, 30), d, n=2), msg("1", ts(2024, 1), d, n=3),
            msg("1", 100.0, d, n=4),  # a clock in 1970
            msg("1", ts(2080, 1), d, n=5),  # and one in 2080
        ]))
        assert [m["n"] for m in await s.messages([d], TimeQuery())] == [4, 1, 2, 3, 5]
        assert [m["n"] for m in await s.messages([d], TimeQuery(from_ts=ts(2023, 11, 20), to_ts=ts(2024, 2)))] == [2, 3]

    run(url, body)
    assert partitions(url) == {"messages_default": 2, "messages_y2023m11": 2, "messages_y2024m01": 1}


def test_a_new_partition_takes_its_rows_out_of_the_default_one(url: str) -> None:
    async def first(s: PostgresStore) -> int:
        return int((await s.create_device({"ident": "1", "protocol": "h02"}))["id"])

    d = run(url, first)
    # A row of a month without a partition lands in the default partition (as when a month
    # was outside the window when its first message came).
    sql(url, "INSERT INTO messages(device_id, protocol, ident, ts, server_ts, digest, data)"
             " VALUES ($1, 'h02', '1', $2, 1, 42, '{\"n\":0}')", d, ts(2023, 12, 1))
    assert partitions(url) == {"messages_default": 1}

    async def second(s: PostgresStore) -> None:
        await s.ingest(IngestBatch(messages=[msg("1", ts(2023, 12, 2), d, n=1)]))
        await s.ingest(IngestBatch(messages=[msg("1", ts(2023, 12, 1), d, n=9)], digests=[42]))  # a duplicate
        assert [m["n"] for m in await s.messages([d], TimeQuery())] == [0, 1]

    run(url, second)
    assert partitions(url) == {"messages_default": 0, "messages_y2023m12": 2}


def test_purge_drops_partitions_whose_messages_are_all_old(url: str) -> None:
    async def body(s: PostgresStore) -> None:
        d = int((await s.create_device({"ident": "1", "protocol": "h02"}))["id"])
        await s.ingest(IngestBatch(messages=[
            *[msg("1", ts(2023, 10, day), d, server_ts=1000.0 + day, n=day) for day in range(1, 11)],  # all old
            msg("1", ts(2023, 11, 1), d, server_ts=1000.0, n=20),  # old, with a recent one in its month
            msg("1", ts(2023, 11, 2), d, server_ts=5000.0, n=21),
            msg("1", 50.0, d, server_ts=1000.0, n=30),  # old, in the default partition
        ]))
        assert await s.purge(2000.0, None) == {"messages": 12, "packets": 0, "logs": 0}
        assert [m["n"] for m in await s.messages([d], TimeQuery())] == [21]
        assert "messages_y2023m10" not in await apartitions(url)
        # The month comes back on demand.
        await s.ingest(IngestBatch(messages=[msg("1", ts(2023, 10, 5), d, server_ts=6000.0, n=40)]))
        assert [m["n"] for m in await s.messages([d], TimeQuery())] == [40, 21]
        assert await s.purge(1e12, None) == {"messages": 2, "packets": 0, "logs": 0}

    run(url, body)
    assert partitions(url) == {"messages_default": 0}


# --- writes -----------------------------------------------------------------------------------------

def test_group_commit_merges_concurrent_ingests_and_isolates_a_failure(url: str) -> None:
    async def body(s: PostgresStore) -> None:
        d = int((await s.create_device({"ident": "1", "protocol": "h02"}))["id"])
        commits = s.commits
        results = await asyncio.gather(
            *[s.ingest(IngestBatch(
                messages=[msg("1", 1000.0 + i, d, v=i)],
                packets=[PacketRecord(1000.0 + i, PACKET_RECEIVED, 1, "h02", "p", "1", d, b"%d" % i)],
                logs=[LogRecord(1000.0 + i, "connect", "h02", device_id=d)],
            )) for i in range(50)],
            s.create_device({"ident": "1", "protocol": "h02"}),
            *[s.ingest(IngestBatch(messages=[msg("1", 2000.0 + i, d, v=100 + i)])) for i in range(50)],
            return_exceptions=True,
        )
        assert isinstance(results[50], Conflict)
        assert [r for r in results if isinstance(r, BaseException)] == [results[50]]
        assert s.commits - commits < 20  # grouped into few transactions
        assert len(await s.messages([d], TimeQuery())) == 100
        assert [p["data"] for p in await s.packets(TimeQuery())] == [b"%d" % i for i in range(50)]
        assert len(await s.logs(TimeQuery())) == 50
        assert (await s.telemetry(d, ["v"])) == {"v": {"value": 149, "ts": 2049.0}}

    run(url, body)


def test_two_stores_on_one_schema_share_partitions_and_dedup(url: str) -> None:
    """Two gateway nodes on one database: both create the same month at once, both receive the
    same frames; every message is stored once."""

    async def main() -> None:
        a, b = PostgresStore(url), PostgresStore(url)
        await a.open()
        await b.open()
        try:
            d = int((await a.create_device({"ident": "1", "protocol": "h02"}))["id"])
            batches = [IngestBatch(messages=[msg("1", ts(2024, 3, 1) + i, d, v=i)]) for i in range(40)]
            again = [IngestBatch(messages=[msg("1", ts(2024, 3, 1) + i, d, v=i)]) for i in range(40)]
            await asyncio.gather(*(a.ingest(x) for x in batches), *(b.ingest(x) for x in again))
            assert len(await b.messages([d], TimeQuery())) == 40
        finally:
            await a.close()
            await b.close()

    asyncio.run(main())
    assert partitions(url)["messages_y2024m03"] == 40


def test_events_get_increasing_ids_in_place_and_filter(url: str) -> None:
    async def body(s: PostgresStore) -> None:
        d = int((await s.create_device({"ident": "1", "protocol": "h02"}))["id"])
        e1 = {"device.id": d, "timestamp": 20.0, "type": "ignition.on"}
        e2 = {"device.id": d, "timestamp": 10.0, "type": "alarm", "alarm": "sos"}
        e3 = {"device.id": d + 1, "timestamp": 30.0, "type": "alarm"}
        await asyncio.gather(s.ingest(IngestBatch(events=[e1, e2])), s.ingest(IngestBatch(events=[e3])))
        assert e1["id"] < e2["id"] < e3["id"]
        assert await s.events(None, TimeQuery()) == [e2, e1, e3]
        assert await s.events([d], TimeQuery(reverse=True)) == [e1, e2]
        assert await s.events(None, TimeQuery(), types=["alarm"]) == [e2, e3]
        assert await s.events(None, TimeQuery(from_ts=15.0, count=1)) == [e1]
        assert await s.events([], TimeQuery()) == []

    run(url, body)


# --- schema -----------------------------------------------------------------------------------------

def test_migrations_are_recorded_and_a_newer_schema_is_refused(url: str) -> None:
    async def first(s: PostgresStore) -> None:
        assert s.migrated == [1, 2, 3]

    run(url, first)
    assert [r[0] for r in sql(url, "SELECT version FROM migrations ORDER BY version")] == [1, 2, 3]
    sql(url, "INSERT INTO migrations VALUES (99, 'from the future', 0)")

    async def newer() -> None:
        store = PostgresStore(url)
        with pytest.raises(StoreError, match="schema version 99"):
            await store.open()

    asyncio.run(newer())


def test_url() -> None:
    assert split_url("postgresql://u@h/db?schema=s1&sslmode=disable") == ("postgresql://u@h/db?sslmode=disable", "s1")
    assert split_url("postgres://u@h:5433/db") == ("postgres://u@h:5433/db", None)
    with pytest.raises(StoreError):
        split_url("mysql://u@h/db")


def test_an_unreachable_server_is_a_store_error() -> None:
    async def main() -> None:
        with pytest.raises(StoreError, match="cannot connect"):
            await PostgresStore("postgresql://postgres@127.0.0.1:1/test").open()

    asyncio.run(main())
