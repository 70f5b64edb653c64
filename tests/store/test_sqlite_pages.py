"""A new SQLite store uses 16 KiB pages (messages are ~2 KB of JSON: 4 KiB pages wasted a third of
what was written); a database an earlier release created keeps its 4 KiB pages and works as before,
and the README's one-off conversion gives it the new size with everything in it."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

from sinogate.store.base import IngestBatch, TimeQuery
from sinogate.store.sqlite import PAGE_SIZE, SQLiteStore


def _page_size(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute("PRAGMA page_size").fetchone()[0])
    finally:
        db.close()


def _messages(n: int) -> list[dict[str, object]]:
    now = time.time()
    return [{"ident": "4210051415", "protocol.name": "h02", "timestamp": now - n + i, "server.timestamp": now,
             "position.latitude": 22.5 + i / 1000, "position.longitude": 114.0, "payload": "x" * 1800}
            for i in range(n)]


async def _store_and_count(path: Path, n: int) -> int:
    store = SQLiteStore(path)
    await store.open()
    try:
        await store.ingest(IngestBatch(messages=_messages(n)))
        return len(await store.messages_raw(None, TimeQuery(count=10_000)))
    finally:
        await store.close()


def test_a_new_database_gets_16_kib_pages(tmp_path: Path) -> None:
    path = tmp_path / "new.sqlite"
    assert asyncio.run(_store_and_count(path, 50)) == 50
    assert PAGE_SIZE == 16384 and _page_size(path) == 16384


def test_an_old_4_kib_database_keeps_working_and_converts(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path, isolation_level=None)  # as an earlier release left it: 4 KiB pages, WAL
    db.execute("PRAGMA page_size=4096")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE earlier(x)")
    db.close()
    assert asyncio.run(_store_and_count(path, 40)) == 40
    assert _page_size(path) == 4096  # an existing database is never rewritten behind the user's back
    # the README's conversion (server stopped)
    db = sqlite3.connect(path, isolation_level=None)
    for statement in ("PRAGMA journal_mode=DELETE", "PRAGMA page_size=16384", "VACUUM", "PRAGMA journal_mode=WAL"):
        db.execute(statement).fetchall()
    db.close()
    assert _page_size(path) == 16384
    assert asyncio.run(_store_and_count(path, 10)) == 50  # the 40 kept, 10 more
