"""Copying a SQLite store into a PostgreSQL one (``sinogate migrate``).

The SQLite file is only read (opened read-only; a file of any schema version since release 0.1
works, missing tables count as empty). Rows keep their ids, messages their stored JSON text and
digests, so the copy deduplicates, sorts and answers exactly like the original. Telemetry is what
the SQLite store would serve: its written-back table plus the messages received after the last
write-back (the same replay ``SQLiteStore.open`` does), for the devices that exist.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sinogate.jsonenc import dumps
from sinogate.store.base import StoreError
from sinogate.store.postgres import PostgresStore
from sinogate.store.sqlite import replay_telemetry
from sinogate.store.telemetry import TelemetryTable

Convert = Callable[[Any], Any]


def _opt(fn: Callable[[Any], Any]) -> Convert:
    return lambda v: None if v is None else fn(v)


_TYPES: dict[str, Convert] = {
    "real": _opt(float), "int": _opt(int), "bool": _opt(bool), "text": _opt(str), "blob": _opt(bytes),
}


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    columns: tuple[tuple[str, Convert], ...]
    where: str = ""  # rows of the source that are copied


def _table(name: str, columns: str, where: str = "") -> Table:
    """``_table("kv", "namespace:text key:text")``: columns with the PostgreSQL side's type."""
    return Table(name, tuple((c, _TYPES[t]) for c, t in (spec.split(":") for spec in columns.split())), where)


TABLES: tuple[Table, ...] = (
    _table("devices", "id:int name:text ident:text protocol:text model:text phone:text settings:text enabled:bool"
                      " connected:bool last_active:real created:real messages_ttl:int"),
    _table("messages", "id:int device_id:int protocol:text ident:text ts:real server_ts:real flagged:bool"
                       " digest:int data:text"),
    _table("packets", "id:int ts:real type:int conn:int protocol:text peer:text ident:text device_id:int data:blob"),
    _table("logs", "id:int ts:real event:text protocol:text conn:int ident:text device_id:int peer:text"
                   " transport:text recv:int send:int msgs:int duration:real reason:text"),
    _table("idents", "protocol:text ident:text first_seen:real last_seen:real peer:text sample:blob device_id:int"),
    _table("events", "id:int device_id:int ts:real type:text data:text"),
    _table("intervals", "id:int calc_id:int device_id:int ts_begin:real ts_end:real data:text"),
    _table("commands", "id:int device_id:int ident:text protocol:text name:text properties:text status:text"
                       " realtime:bool created:real expire:real attempts:int max_attempts:int sent:real"
                       " finished:real executed:bool response:text reply:text match:text payload:blob reason:text"),
    # The telemetry watermark is the SQLite store's own bookkeeping.
    _table("kv", "namespace:text key:text value:text",
           "NOT (namespace = 'store' AND key = 'telemetry_watermark') AND namespace != 'store.telemetry_cleared'"),
    _table("device_state", "device_id:int data:text"),
)

# Everything the copy fills, in the order it reports them.
REPORTED = ("devices", "messages", "telemetry", "packets", "logs", "idents", "events", "intervals", "commands",
            "kv", "device_state")

Progress = Callable[[str, int], None]  # (table, rows just copied)


class SQLiteSource:
    """A SQLite store file, read-only."""

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise StoreError(f"no SQLite file at {path}")
        try:
            self.db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            self.tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot read {path}: {exc}") from exc
        if "devices" not in self.tables or "messages" not in self.tables:
            raise StoreError(f"{path} is not a sinogate database")

    def close(self) -> None:
        self.db.close()

    def count(self, table: Table) -> int:
        if table.name not in self.tables:
            return 0
        where = f" WHERE {table.where}" if table.where else ""
        return int(self.db.execute(f"SELECT count(*) FROM {table.name}{where}").fetchone()[0])

    def chunks(self, table: Table, size: int) -> Any:
        """The table's rows converted for PostgreSQL, ``size`` at a time, in rowid order."""
        if table.name not in self.tables:
            return
        names = ", ".join(name for name, _ in table.columns)
        where = f" AND {table.where}" if table.where else ""
        last = -(2**63)
        while True:
            rows = self.db.execute(
                f"SELECT rowid, {names} FROM {table.name} WHERE rowid > ?{where} ORDER BY rowid LIMIT ?", (last, size)
            ).fetchall()
            if not rows:
                return
            last = rows[-1][0]
            yield [tuple(conv(v) for (_, conv), v in zip(table.columns, row[1:], strict=True)) for row in rows]

    def sequence_floors(self) -> dict[str, int]:
        """AUTOINCREMENT high-water marks: ids handed out once (even if deleted) stay unused."""
        if "sqlite_sequence" not in self.tables:
            return {}
        return {name: int(seq) for name, seq in self.db.execute("SELECT name, seq FROM sqlite_sequence")}

    def telemetry(self) -> dict[int, dict[str, Any]]:
        """What ``SQLiteStore`` would serve: the table plus the replay past its watermark."""
        table = TelemetryTable()
        devices = {r[0] for r in self.db.execute("SELECT id FROM devices")}
        replay_telemetry(self.db, table)  # the store's own rule: watermark, deletion marks, live devices
        out = {}
        for device_id in table.devices():
            snapshot = table.snapshot(device_id)
            if device_id in devices and snapshot["times"]:
                out[device_id] = snapshot
        return out


async def check_empty(target: PostgresStore) -> None:
    """Raises ``StoreError`` unless ``target`` holds no devices, messages, commands or kv."""
    held = {name: await target.count(name) for name in ("devices", "messages", "commands", "kv")}
    if any(held.values()):
        listed = ", ".join(f"{n} {name}" for name, n in held.items() if n)
        raise StoreError(f"the target already holds data ({listed}): migrate into an empty database or schema")


async def copy_sqlite(source: SQLiteSource, target: PostgresStore, progress: Progress, chunk: int = 5000,
                      ) -> dict[str, tuple[int, int]]:
    """Copies every table of ``source`` into the empty, open ``target``; returns
    ``{table: (rows in the source, rows in the target)}``."""
    await check_empty(target)
    expected: dict[str, int] = {}
    for table in TABLES:
        expected[table.name] = source.count(table)
        for rows in source.chunks(table, chunk):
            await target.copy_rows(table.name, [name for name, _ in table.columns], rows)
            progress(table.name, len(rows))
    telemetry = source.telemetry()
    expected["telemetry"] = len(telemetry)
    rows = [(device_id, dumps(snapshot)) for device_id, snapshot in sorted(telemetry.items())]
    if rows:
        await target.copy_rows("telemetry", ["device_id", "data"], rows)
    progress("telemetry", len(rows))
    await target.finish_copy(source.sequence_floors())
    return {name: (expected[name], await target.count(name)) for name in REPORTED}


def totals(source: SQLiteSource) -> dict[str, int]:
    """Rows each table will copy (for a progress bar); telemetry counts devices."""
    out = {table.name: source.count(table) for table in TABLES}
    out["telemetry"] = source.count(Table("telemetry", ())) if "telemetry" in source.tables else 0
    return {name: out[name] for name in REPORTED}
