"""The SQLite store on its own: group commit, failure isolation, dedup, late data, chunked reads."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from sinogate.store.base import Conflict, IngestBatch, TimeQuery
from sinogate.store.sqlite import SQLiteStore


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def msg(device_id: int, ts: float, **fields: object) -> dict:
    return {"ident": "1", "protocol.name": "h02", "device.id": device_id, "timestamp": ts,
            "server.timestamp": time.time(), **fields}


def test_a_failing_write_does_not_undo_the_others_in_its_commit(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = SQLiteStore(tmp_path / "s.sqlite")
        await store.open()
        device = await store.create_device({"ident": "1", "protocol": "h02"})
        results = await asyncio.gather(
            *[store.ingest(IngestBatch(messages=[msg(device["id"], 1000.0 + i)])) for i in range(50)],
            store.create_device({"ident": "1", "protocol": "h02"}),
            *[store.ingest(IngestBatch(messages=[msg(device["id"], 2000.0 + i)])) for i in range(50)],
            return_exceptions=True,
        )
        assert isinstance(results[50], Conflict)
        assert [r for r in results if isinstance(r, Exception)] == [results[50]]
        assert len(await store.messages([device["id"]], TimeQuery())) == 100
        assert store.commits < 60  # the writes were grouped into few transactions
        await store.close()

    run(scenario())


def test_duplicates_ignored_and_late_values_never_win(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = SQLiteStore(tmp_path / "s.sqlite")
        await store.open()
        d = (await store.create_device({"ident": "1", "protocol": "h02"}))["id"]
        await store.ingest(IngestBatch(messages=[msg(d, 500.0, speed=5), msg(d, 500.0, speed=5)]))
        await store.ingest(IngestBatch(messages=[msg(d, 500.0, speed=6)]))  # same time, other content
        await store.ingest(IngestBatch(messages=[msg(d, 400.0, speed=1, extra=True)]))
        stored = await store.messages([d], TimeQuery())
        assert [m["speed"] for m in stored] == [1, 5, 6]
        telemetry = await store.telemetry(d)
        assert telemetry["speed"] == {"value": 6, "ts": 500.0}
        assert telemetry["extra"] == {"value": True, "ts": 400.0}  # older, but nothing newer had it
        await store.close()

    run(scenario())


def test_iter_messages_streams_in_order_in_chunks(tmp_path: Path) -> None:
    async def scenario() -> list[float]:
        store = SQLiteStore(tmp_path / "s.sqlite")
        await store.open()
        d = (await store.create_device({"ident": "1", "protocol": "h02"}))["id"]
        await store.ingest(IngestBatch(messages=[msg(d, float(i % 7 * 100 + i)) for i in range(250)]))
        seen = [m["timestamp"] async for m in store.iter_messages(d, TimeQuery(from_ts=100.0), chunk=16)]
        await store.close()
        return seen

    seen = run(scenario())
    assert seen == sorted(seen) and min(seen) >= 100.0
    assert len(seen) == len({t for t in (float(i % 7 * 100 + i) for i in range(250)) if t >= 100.0})


def test_reopen_after_clean_close(tmp_path: Path) -> None:
    async def scenario() -> dict:
        store = SQLiteStore(tmp_path / "s.sqlite")
        await store.open()
        d = (await store.create_device({"ident": "9", "protocol": "jt808", "settings": {"time_offset": 0}}))["id"]
        await store.ingest(IngestBatch(messages=[msg(d, 10.0, v=1)]))
        await store.kv_set("ns", "k", {"a": [1, 2]})
        await store.close()
        again = SQLiteStore(tmp_path / "s.sqlite")
        await again.open()
        out = {"device": await again.get_device(d), "kv": await again.kv_get("ns", "k"),
               "telemetry": await again.telemetry(d, ["v"])}
        await again.close()
        return out

    out = run(scenario())
    assert out["device"]["settings"] == {"time_offset": 0}
    assert out["kv"] == {"a": [1, 2]}
    assert out["telemetry"] == {"v": {"value": 1, "ts": 10.0}}
    assert not (tmp_path / "s.sqlite-wal").exists() or (tmp_path / "s.sqlite-wal").stat().st_size == 0


@pytest.mark.parametrize("bad", [{"ident": "", "protocol": "h02"}, {"ident": "1"}])
def test_device_needs_ident_and_protocol(tmp_path: Path, bad: dict) -> None:
    from sinogate.store.base import StoreError

    async def scenario() -> None:
        store = SQLiteStore(tmp_path / "s.sqlite")
        await store.open()
        with pytest.raises(StoreError):
            await store.create_device(bad)
        await store.close()

    run(scenario())


def test_a_batch_with_some_duplicates_feeds_telemetry_only_what_it_inserted(tmp_path: Path) -> None:
    async def scenario() -> tuple[dict, list, dict]:
        store = SQLiteStore(tmp_path / "s.sqlite")
        await store.open()
        d = (await store.create_device({"ident": "1", "protocol": "h02"}))["id"]
        await store.ingest(IngestBatch(messages=[msg(d, 100.0, a=0)], digests=[1]))
        await store.ingest(IngestBatch(
            messages=[
                msg(d, 100.0, a=99, b=99),  # the stored frame again (same digest): skipped
                msg(d, 200.0, c=1),
                msg(d, 200.0, c=2, d=2),  # a duplicate of the one before it in this batch: skipped
                msg(d, 50.0, e=5),
            ],
            digests=[1, 2, 2, 3],
        ))
        telemetry = await store.telemetry(d, ["a", "b", "c", "d", "e"])
        stored = [(m["timestamp"], m.get("a"), m.get("c"), m.get("e")) for m in await store.messages([d], TimeQuery())]
        await store.close()
        again = SQLiteStore(tmp_path / "s.sqlite")
        await again.open()
        reopened = await again.telemetry(d, ["a", "b", "c", "d", "e"])
        await again.close()
        return telemetry, stored, reopened

    telemetry, stored, reopened = run(scenario())
    assert stored == [(50.0, None, None, 5), (100.0, 0, None, None), (200.0, None, 1, None)]
    assert telemetry == {"a": {"value": 0, "ts": 100.0}, "c": {"value": 1, "ts": 200.0}, "e": {"value": 5, "ts": 50.0}}
    assert reopened == telemetry


def test_replay_after_a_crash_keeps_deletions_and_what_came_after(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import sinogate.store.sqlite as sqlite_store

    monkeypatch.setattr(sqlite_store, "TELEMETRY_FLUSH_SECONDS", 1e9)  # no write-back: only the replay

    async def scenario() -> tuple[dict, dict, dict]:
        store = SQLiteStore(tmp_path / "s.sqlite")
        await store.open()
        d = (await store.create_device({"ident": "1", "protocol": "h02"}))["id"]
        gone = (await store.create_device({"ident": "2", "protocol": "h02"}))["id"]
        await store.ingest(IngestBatch(messages=[msg(d, 100.0, a=1, b=1), msg(gone, 100.0, a=1)]))
        await store.delete_telemetry(d, ["a"])
        await store.delete_device(gone)
        # Received before the delete but committed after it: its values stay.
        late = {**msg(d, 150.0, a=3, b=2), "server.timestamp": time.time() - 60}
        await store.ingest(IngestBatch(messages=[late]))
        live = await store.telemetry(d)
        crashed = SQLiteStore(tmp_path / "s.sqlite")  # the first one never closed: as after kill -9
        await crashed.open()
        replayed, replayed_gone = await crashed.telemetry(d), await crashed.telemetry(gone)
        await crashed.close()
        await store.close()
        return live, replayed, replayed_gone

    live, replayed, replayed_gone = run(scenario())
    assert (live["a"], live["b"]) == ({"value": 3, "ts": 150.0}, {"value": 2, "ts": 150.0})
    assert replayed == live
    assert replayed_gone == {}


def test_a_device_time_that_is_no_number_stores_nothing(tmp_path: Path) -> None:
    async def scenario() -> tuple[list, dict]:
        store = SQLiteStore(tmp_path / "s.sqlite")
        await store.open()
        d = (await store.create_device({"ident": "1", "protocol": "h02"}))["id"]
        await store.ingest(IngestBatch(messages=[msg(d, 100.0, v=1)]))
        with pytest.raises(TypeError):
            await store.ingest(IngestBatch(messages=[msg(d, 200.0, v=2), msg(d, "300", v=3)]))  # type: ignore[arg-type]
        out = [m["v"] for m in await store.messages([d], TimeQuery())], await store.telemetry(d, ["v"])
        await store.close()
        return out

    stored, telemetry = run(scenario())
    assert stored == [1]
    assert telemetry == {"v": {"value": 1, "ts": 100.0}}
