"""BatchWriter: what one turn of the event loop submits reaches the writer thread in one hand-off."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from sinogate.store.sqlite_writer import BatchWriter


def test_one_turn_is_one_handoff_and_every_op_commits(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "w.sqlite", isolation_level=None, check_same_thread=False)
    db.execute("CREATE TABLE t(v INTEGER)")
    writer = BatchWriter(db)
    writer.start()

    async def main() -> list[int]:
        futures = [writer.submit(lambda c, v=v: c.execute("INSERT INTO t VALUES (?)", (v,)).rowcount)
                   for v in range(50)]  # one turn: nothing awaited in between
        results = await asyncio.gather(*futures)
        late = await writer.submit(lambda c: c.execute("INSERT INTO t VALUES (50)").rowcount)
        return [*results, late]

    try:
        assert asyncio.run(main()) == [1] * 51
        assert writer.handoffs == 2
        assert db.execute("SELECT count(*), sum(v) FROM t").fetchone() == (51, sum(range(51)))
    finally:
        writer.stop()
        db.close()
