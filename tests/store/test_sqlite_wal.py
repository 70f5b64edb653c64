"""The SQLite WAL stays bounded (issue 11: 500,000 junk datagrams grew it to 3.28 GB, never
truncated until shutdown): journal_size_limit, a RESTART checkpoint when it grows over the limit
under a steady flood of writes and a reader, a TRUNCATE one once the writer is idle. Bounded: ~40 MB
written, seconds."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from sinogate.store.base import IngestBatch, PacketRecord, TimeQuery
from sinogate.store.sqlite import SQLiteStore

LIMIT = 1024 * 1024


def test_the_wal_is_capped_under_load_and_truncated_when_idle(tmp_path: Path) -> None:
    async def scenario() -> tuple[int, int, int]:
        store = SQLiteStore(tmp_path / "wal.sqlite", wal_limit=LIMIT)
        await store.open()
        payload = os.urandom(4000)
        biggest = 0
        started = time.monotonic()
        try:
            db = store._connect()
            assert db.execute("PRAGMA journal_size_limit").fetchone()[0] == LIMIT
            db.close()
            for i in range(400):  # 40 MB of raw packets over ~4 s: a steady flood (~10 MB/s)
                batch = IngestBatch(packets=[PacketRecord(time.time(), 1, i, "h02", "192.0.2.1:1", None, None, payload)
                                             for _ in range(25)])
                await store.ingest(batch)
                await asyncio.sleep(0.01)
                if i % 20 == 0:
                    await store.packets(TimeQuery(count=10))  # readers come and go meanwhile
                biggest = max(biggest, store.wal_size())
            elapsed = time.monotonic() - started
            deadline = time.monotonic() + 10
            while store.wal_size() and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            return biggest, store.wal_size(), int(elapsed)
        finally:
            await store.close()

    biggest, after, elapsed = asyncio.run(scenario())
    # About what one second of writes adds past the limit before the next RESTART, never the whole
    # 40 MB (~58 MB of WAL without the cap).
    assert elapsed >= 3 and biggest < 20 * 1024 * 1024, (biggest, elapsed)
    assert after == 0  # idle: truncated to nothing
