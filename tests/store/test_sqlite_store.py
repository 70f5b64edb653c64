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
