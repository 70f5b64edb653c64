"""The default store: one SQLite file in WAL mode, one batching writer thread, pooled readers."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar, overload

from sinogate.jsonenc import dumps as _dumps
from sinogate.jsonenc import dumps_bytes, encode_message
from sinogate.jsonenc import loads as _loads
from sinogate.store.base import (
    Conflict,
    IngestBatch,
    Message,
    NotFound,
    Store,
    StoreError,
    TimeQuery,
)
from sinogate.store.sqlite_schema import COMMAND_COLUMNS, COMMAND_JSON_COLUMNS, SchemaError, migrate
from sinogate.store.sqlite_writer import BatchWriter
from sinogate.store.telemetry import TelemetryTable

T = TypeVar("T")
U = TypeVar("U")

TELEMETRY_FLUSH_SECONDS = 2.0
CHECKPOINT_SECONDS = 1.0
WAL_LIMIT = 64 * 1024 * 1024  # journal_size_limit, and the WAL size that forces a RESTART checkpoint
# Reception times are not strictly ordered across connections; replay a margin before the mark.
TELEMETRY_REPLAY_MARGIN = 300.0
# kv namespace of the marks delete_telemetry leaves (key: the device id), so the replay on open
# does not bring back what was deleted: {"all": [server time, message id] | None, "names": {name: [...]}}.
_CLEARED = "store.telemetry_cleared"
_DEVICE_COLUMNS = ("name", "ident", "protocol", "model", "phone", "settings", "enabled", "messages_ttl")
_DEVICE_NOT_NULL = ("name", "ident", "protocol")
_COMMAND_NOT_NULL = ("name", "properties", "status", "realtime", "created", "attempts", "max_attempts")
_DEDUP_LOOKUP = "SELECT id FROM messages WHERE protocol = ? AND ident = ? AND ts = ? AND digest = ?"


def _device_row(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "ident": row["ident"],
        "protocol": row["protocol"],
        "model": row["model"],
        "phone": row["phone"],
        "settings": _loads(row["settings"]),
        "enabled": bool(row["enabled"]),
        "connected": bool(row["connected"]),
        "last_active": row["last_active"],
        "created": row["created"],
        "messages_ttl": row["messages_ttl"],
    }


def _command_row(row: sqlite3.Row) -> dict[str, Any]:
    out = dict(row)
    for col in COMMAND_JSON_COLUMNS:
        if out.get(col) is not None:
            out[col] = _loads(out[col])
    out["realtime"] = bool(out["realtime"])
    if out["executed"] is not None:
        out["executed"] = bool(out["executed"])
    if out.get("payload") is not None:
        out["payload"] = bytes(out["payload"])
    return out


def _check_device_time(ts: Any) -> None:
    """Raises, as the telemetry rule would, for a device time that is not a number."""
    if not isinstance(ts or 0.0, int | float):
        raise TypeError(f"a message's timestamp must be a number, not {type(ts).__name__}")


def _inserted(
    db: sqlite3.Connection, rows: list[tuple[Any, ...]], messages: list[Message], added: int
) -> list[Message]:
    """The messages whose rows INSERT OR IGNORE just inserted (``added`` of them), in batch order.

    SQLite gives a new row the rowid one above the largest in the table, so of the rows holding
    the batch's dedup keys the ``added`` highest are the new ones; of duplicates inside the batch
    only the first can have gone in."""
    if added <= 0:
        return []
    found: list[tuple[int, Message]] = []
    keys: set[tuple[Any, ...]] = set()
    for row, message in zip(rows, messages, strict=True):
        key = (row[1], row[2], row[3], row[6])  # protocol, ident, ts, digest
        if key in keys:
            continue
        keys.add(key)
        hit = db.execute(_DEDUP_LOOKUP, key).fetchone()
        if hit is not None:
            found.append((hit[0], message))
    new = set(sorted(row_id for row_id, _ in found)[-added:])
    return [message for row_id, message in found if row_id in new]


def _message_rows(messages: list[Message], digests: list[int] | None) -> tuple[list[tuple[Any, ...]], float]:
    """The ``messages`` rows of a batch and the newest reception time among them. Raises, as the
    telemetry rule would after the commit (where it must not fail), for a device time that is not
    a number."""
    rows = []
    newest = 0.0  # reception time
    for i, m in enumerate(messages):
        if digests is not None:
            data, digest = dumps_bytes(m), digests[i]
        else:
            data, digest = encode_message(m)
        get = m.get
        ts, device_id, flagged = get("timestamp"), get("device.id"), get("timestamp.flagged")
        if ts.__class__ is not float and device_id is not None and not flagged:
            _check_device_time(ts)
        server_ts = get("server.timestamp")
        server_ts = server_ts if server_ts.__class__ is float else float(server_ts or 0.0)
        if server_ts > newest:
            newest = server_ts
        # JSON stored as TEXT: measured faster under load than BLOB
        rows.append((device_id, get("protocol.name", ""), str(get("ident", "")), float(ts or 0.0), server_ts,
                     1 if flagged else 0, digest, data.decode()))
    return rows, newest


# Pages of a new database. A stored message is 1.8 KB of JSON on average (JT/T 808 about 2.3 KB):
# with SQLite's default 4 KiB pages one or two fit per page, and a third of every page written to
# the WAL and again by the checkpoint was empty (2.7 KB of table per row; 2.0 KB with 16 KiB
# pages). Measured at saturation (bench/ingest.py): 44 µs of server CPU per stored message with
# 4 KiB, 39 with 8 KiB, 36-37 with 16 KiB and 36 with 32 KiB pages. An existing database keeps its
# page size (README "Storage" tells how to convert one).
PAGE_SIZE = 16384

_INSERT_MESSAGE = ("INSERT OR IGNORE INTO messages(device_id, protocol, ident, ts, server_ts, flagged, digest, data)"
                   " VALUES ")
_INSERT_PACKET = "INSERT INTO packets(ts, type, conn, protocol, peer, ident, device_id, data) VALUES "
_ROWS_PER_INSERT = 64  # x 8 columns: within the 999 variables of SQLite builds before 3.32


@functools.cache
def _multi_row(head: str, width: int, rows: int) -> str:
    row = "(" + ",".join("?" * width) + ")"
    return head + ",".join([row] * rows)


def _insert_many(db: sqlite3.Connection, head: str, rows: list[tuple[Any, ...]]) -> None:
    """``rows`` inserted with multi-row statements, in order: one statement step (one release
    of the GIL, one return to Python) per up to 64 rows, where ``executemany`` takes one per row
    and the event loop's thread holds the GIL in between. Row counts are powers of two, so a few
    prepared statements serve every batch (the module's statement cache keeps them)."""
    width = len(rows[0])
    i, n = 0, len(rows)
    while i < n:
        k = min(_ROWS_PER_INSERT, n - i)
        k = 1 << (k.bit_length() - 1)  # the largest power of two not above what is left
        chunk = rows[i:i + k]
        db.execute(_multi_row(head, width, k), list(itertools.chain.from_iterable(chunk)))
        i += k


def _cleared(mark: list[float] | None, row_id: int, server_ts: float) -> bool:
    """Whether a message (its row id and reception time) came before a delete_telemetry mark."""
    return mark is not None and row_id <= mark[1] and server_ts <= mark[0]


def _uncleared(message: Message, marks: dict[str, Any], row_id: int, server_ts: float) -> Message | None:
    """The message without the values deleted after it was stored (``None``: all of them were)."""
    if _cleared(marks.get("all"), row_id, server_ts):
        return None
    names = [n for n, mark in (marks.get("names") or {}).items() if n in message and _cleared(mark, row_id, server_ts)]
    if names:
        message = {k: v for k, v in message.items() if k not in names}
    return message


def telemetry_watermark(db: sqlite3.Connection) -> float:
    """The reception time up to which the written-back telemetry reflects every message (0: none)."""
    row = db.execute("SELECT value FROM kv WHERE namespace = 'store' AND key = 'telemetry_watermark'").fetchone()
    return float(_loads(row[0])) if row else 0.0


def replay_telemetry(db: sqlite3.Connection, table: TelemetryTable) -> tuple[set[int], float]:
    """Fills ``table`` with the telemetry ``SQLiteStore`` serves from the database ``db``: the
    written-back rows, then the messages received after the watermark (less the margin), except
    what delete_telemetry removed and the devices that no longer exist. Returns the devices the
    replay changed and the newest reception time the telemetry now reflects."""
    devices = {row[0] for row in db.execute("SELECT id FROM devices")}
    for device_id, data in db.execute("SELECT device_id, data FROM telemetry"):
        if device_id in devices:
            table.load(device_id, _loads(data))
    watermark = telemetry_watermark(db)
    cleared: dict[int, dict[str, Any]] = {
        int(key): _loads(value)
        for key, value in db.execute("SELECT key, value FROM kv WHERE namespace = ?", (_CLEARED,))
    }
    changed: set[int] = set()
    for row_id, server_ts, device_id, data in db.execute(
        "SELECT id, server_ts, device_id, data FROM messages"  # in server_ts order (its index): no full scan
        " WHERE server_ts > ? AND device_id IS NOT NULL AND flagged = 0",
        (watermark - TELEMETRY_REPLAY_MARGIN,),
    ):
        if device_id not in devices:  # deleted: its telemetry went with it
            continue
        message: Message | None = _loads(data)
        marks = cleared.get(device_id)
        if marks is not None and message is not None:
            message = _uncleared(message, marks, row_id, server_ts)
        applied = None if message is None else table.apply(message)
        if applied is not None:
            changed.add(applied)
            watermark = max(watermark, server_ts)
    return changed, watermark


def _interval_row(item: dict[str, Any]) -> tuple[int, int, float, float, str]:
    return (int(item["calc.id"]), int(item["device.id"]), float(item["begin"]), float(item["end"]),
            _dumps({k: v for k, v in item.items() if k != "id"}))


def _insert_intervals(db: sqlite3.Connection, intervals: list[dict[str, Any]],
                      rows: list[tuple[int, int, float, float, str]]) -> None:
    for item, row in zip(intervals, rows, strict=True):  # few: one statement each for the id
        cur = db.execute("INSERT INTO intervals(calc_id, device_id, ts_begin, ts_end, data) VALUES (?,?,?,?,?)", row)
        item["id"] = cur.lastrowid


def _time_clause(query: TimeQuery, column: str = "ts") -> tuple[str, list[Any]]:
    parts: list[str] = []
    args: list[Any] = []
    if query.from_ts is not None:
        parts.append(f"{column} >= ?")
        args.append(query.from_ts)
    if query.to_ts is not None:
        parts.append(f"{column} <= ?")
        args.append(query.to_ts)
    return " AND ".join(parts), args


def _where(*clauses: tuple[str, list[Any]]) -> tuple[str, list[Any]]:
    parts = [c for c, _ in clauses if c]
    args = [a for _, group in clauses for a in group]
    return (" WHERE " + " AND ".join(parts)) if parts else "", args


def _in(column: str, values: list[Any] | None) -> tuple[str, list[Any]]:
    if values is None:
        return "", []
    if not values:
        return "0", []
    return f"{column} IN ({','.join('?' * len(values))})", list(values)


def _eq(column: str, value: Any) -> tuple[str, list[Any]]:
    return (f"{column} = ?", [value]) if value is not None else ("", [])


def _order(query: TimeQuery, column: str = "ts") -> str:
    direction = "DESC" if query.reverse else "ASC"
    limit = f" LIMIT {int(query.count)}" if query.count is not None else ""
    return f" ORDER BY {column} {direction}, id {direction}{limit}"


class SQLiteStore(Store):
    """The store contract (``base``) on one SQLite file: WAL, one batching writer thread with group
    commit, pooled reader threads, telemetry in memory written back every 2 s with a watermark.

    Telemetry follows only what was committed: the writer thread applies an ingest's inserted
    messages (not the duplicates it skipped) after its transaction committed, in commit order, and
    it is the only thread that changes telemetry or writes it back. Deletions leave durable marks,
    so the replay on open brings back neither deleted values nor a deleted device's telemetry."""

    def __init__(self, path: str | Path, synchronous: str = "NORMAL", readers: int = 4,
                 wal_limit: int = WAL_LIMIT) -> None:
        self.path = Path(path)
        self._synchronous = synchronous.upper()
        self._wal_limit = wal_limit  # bytes the WAL keeps after a checkpoint; above it a RESTART
        self._writer: BatchWriter | None = None
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(max_workers=readers, thread_name_prefix="sqlite-read")
        # Telemetry lives in memory and is written back every few seconds; on open, messages stored
        # after the last write-back are replayed, so a crash loses no telemetry.
        self._telemetry = TelemetryTable()
        self._dirty: set[int] = set()
        self._deleted: set[int] = set()  # devices deleted since open: late messages of theirs are ignored
        self._applied_server_ts = 0.0  # newest reception time of what telemetry reflects: the watermark
        self._seen_server_ts = 0.0  # newest reception time written (committed or not)
        self._last_flush = 0.0
        self._telemetry_lock = threading.Lock()  # readers on the event loop vs the writer thread
        self._closed = False
        self._closing = threading.Event()
        self._checkpointer: threading.Thread | None = None
        self._readers: list[sqlite3.Connection] = []
        self.migrated: list[int] = []  # schema versions the last open applied

    # lifecycle -------------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        db.row_factory = sqlite3.Row
        db.execute(f"PRAGMA page_size={PAGE_SIZE}")  # takes effect only on a new, empty database
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={self._synchronous}")
        db.execute("PRAGMA busy_timeout=30000")
        db.execute(f"PRAGMA journal_size_limit={int(self._wal_limit)}")
        return db

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = self._connect()
        try:
            self.migrated = migrate(db)
        except (SchemaError, sqlite3.DatabaseError) as exc:
            db.close()
            raise StoreError(f"cannot open {self.path}: {exc}") from exc
        since = telemetry_watermark(db) - TELEMETRY_REPLAY_MARGIN
        self._dirty, self._applied_server_ts = replay_telemetry(db, self._telemetry)
        newest = db.execute("SELECT max(server_ts) FROM messages").fetchone()[0]
        self._seen_server_ts = max(self._applied_server_ts, newest or 0.0)
        for key, value in db.execute("SELECT key, value FROM kv WHERE namespace = ?", (_CLEARED,)).fetchall():
            marks = _loads(value)
            times = [m[0] for m in [marks.get("all"), *(marks.get("names") or {}).values()] if m is not None]
            if max(times, default=since) <= since:  # no message a replay reads is that old: it has served
                db.execute("DELETE FROM kv WHERE namespace = ? AND key = ?", (_CLEARED, key))
        # Checkpoints copy the WAL into the database file; done inside a commit they stall every
        # writer for as long as the copy and fsync take. A separate thread does them passively.
        db.execute("PRAGMA wal_autocheckpoint=0")
        self._writer = BatchWriter(db, housekeeping=self._housekeeping)
        self._writer.start()
        self._checkpointer = threading.Thread(target=self._checkpoint_loop, name="sqlite-checkpoint", daemon=True)
        self._checkpointer.start()

    def _checkpoint_loop(self) -> None:
        """Every second: a PASSIVE checkpoint while the writer is busy; a TRUNCATE one when it was
        idle for the last second (the WAL file shrinks to nothing); a RESTART one when the WAL grew
        over ``wal_limit`` even under load (writers wait for it, briefly), so that a flood of writes
        cannot grow the WAL without end. ``journal_size_limit`` trims the file after each reset."""
        db = self._connect()
        db.execute("PRAGMA busy_timeout=1000")  # never hold up the writer for long
        wal = Path(f"{self.path}-wal")
        last_commits = -1
        try:
            while not self._closing.wait(CHECKPOINT_SECONDS):
                commits = self.commits
                idle, last_commits = commits == last_commits, commits
                try:
                    size = wal.stat().st_size
                except OSError:
                    size = 0
                mode = "TRUNCATE" if idle and size else "RESTART" if size > self._wal_limit else "PASSIVE"
                try:
                    db.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
                except sqlite3.Error:
                    pass  # busy: the next round catches up
        finally:
            db.close()

    def wal_size(self) -> int:
        """Bytes of the WAL file now (0 when there is none)."""
        try:
            return Path(f"{self.path}-wal").stat().st_size
        except OSError:
            return 0

    async def close(self) -> None:
        self._closed = True
        try:
            if self._writer is not None:
                try:
                    # Writes queued before now commit (and reach telemetry) first; then the write-back.
                    await self._write(lambda db: None)
                    await self._write(self._flush_telemetry)
                finally:  # a full disk fails the write-back (replayed on the next open), never the close
                    await asyncio.to_thread(self._writer.stop)
                    self._writer = None
                    self._closing.set()
                    if self._checkpointer is not None:
                        await asyncio.to_thread(self._checkpointer.join)
                db = self._connect()
                try:
                    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                finally:
                    db.close()
        finally:
            self._pool.shutdown(wait=True)
            for db in self._readers:
                db.close()

    @property
    def commits(self) -> int:
        return self._writer.commits if self._writer else 0

    @overload
    async def _write(self, op: Callable[[sqlite3.Connection], T]) -> T: ...

    @overload
    async def _write(self, op: Callable[[sqlite3.Connection], U], after_commit: Callable[[U], T]) -> T: ...

    async def _write(
        self, op: Callable[[sqlite3.Connection], Any], after_commit: Callable[[Any], Any] | None = None
    ) -> Any:
        """Runs ``op`` in the writer's next transaction; once it committed, the result of
        ``after_commit(op's result)`` when given (run in the writer thread), else op's result."""
        if self._writer is None:
            raise StoreError("store is closed")
        return await self._writer.submit(op, after_commit)

    def _reader(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._connect()
            self._local.db = db
            self._readers.append(db)
        return db

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise StoreError("store is closed")
        loop = asyncio.get_running_loop()
        try:
            future = loop.run_in_executor(self._pool, lambda: fn(self._reader()))
        except RuntimeError as exc:  # the pool is shut down
            raise StoreError("store is closed") from exc
        return await future

    # devices ---------------------------------------------------------------------------------
    async def create_device(self, fields: dict[str, Any]) -> dict[str, Any]:
        ident, protocol = fields.get("ident"), fields.get("protocol")
        if not ident or not protocol:
            raise StoreError("a device needs an ident and a protocol")

        def op(db: sqlite3.Connection) -> int:
            try:
                cur = db.execute(
                    "INSERT INTO devices(name, ident, protocol, model, phone, settings, enabled, created,"
                    " messages_ttl) VALUES (?,?,?,?,?,?,?,?,?)",
                    (
                        fields.get("name") or "",
                        str(ident),
                        protocol,
                        fields.get("model"),
                        fields.get("phone"),
                        _dumps(fields.get("settings") or {}),
                        int(fields.get("enabled", True)),
                        time.time(),
                        fields.get("messages_ttl"),
                    ),
                )
            except sqlite3.IntegrityError as exc:
                raise Conflict(f"a {protocol} device with ident {ident} already exists") from exc
            device_id = int(cur.lastrowid or 0)
            # Claim what was stored while the ident was unknown.
            db.execute(
                "UPDATE messages SET device_id = ? WHERE device_id IS NULL AND protocol = ? AND ident = ?",
                (device_id, protocol, str(ident)),
            )
            db.execute(
                "UPDATE packets SET device_id = ? WHERE device_id IS NULL AND protocol = ? AND ident = ?",
                (device_id, protocol, str(ident)),
            )
            db.execute(
                "UPDATE idents SET device_id = ? WHERE protocol = ? AND ident = ?",
                (device_id, protocol, str(ident)),
            )
            return device_id

        device_id = await self._write(op)
        return await self.get_device(device_id)

    async def update_device(self, device_id: int, fields: dict[str, Any]) -> dict[str, Any]:
        sets = {k: v for k, v in fields.items() if k in _DEVICE_COLUMNS}
        for column in _DEVICE_NOT_NULL:  # else NOT NULL fails, which would read as a Conflict
            if column in sets and sets[column] is None:
                raise StoreError(f"a device's {column} cannot be null")
        if "settings" in sets:
            sets["settings"] = _dumps(sets["settings"] or {})
        if "enabled" in sets:
            sets["enabled"] = int(bool(sets["enabled"]))

        def op(db: sqlite3.Connection) -> None:
            if not sets:
                return
            try:
                cur = db.execute(
                    f"UPDATE devices SET {', '.join(f'{k} = ?' for k in sets)} WHERE id = ?",
                    (*sets.values(), device_id),
                )
            except sqlite3.IntegrityError as exc:
                raise Conflict("another device already has that protocol and ident") from exc
            if cur.rowcount == 0:
                raise NotFound(f"device {device_id} not found")

        await self._write(op)
        return await self.get_device(device_id)

    async def delete_device(self, device_id: int) -> None:
        def op(db: sqlite3.Connection) -> None:
            if db.execute("DELETE FROM devices WHERE id = ?", (device_id,)).rowcount == 0:
                raise NotFound(f"device {device_id} not found")
            db.execute("DELETE FROM telemetry WHERE device_id = ?", (device_id,))
            db.execute("DELETE FROM kv WHERE namespace = ? AND key = ?", (_CLEARED, str(device_id)))
            db.execute("DELETE FROM device_state WHERE device_id = ?", (device_id,))
            db.execute("UPDATE idents SET device_id = NULL WHERE device_id = ?", (device_id,))

        def committed(_: None) -> None:
            with self._telemetry_lock:
                self._telemetry.drop(device_id)
            self._dirty.discard(device_id)
            self._deleted.add(device_id)

        await self._write(op, committed)

    async def list_devices(self) -> list[dict[str, Any]]:
        rows = await self._read(lambda db: db.execute("SELECT * FROM devices ORDER BY id").fetchall())
        return [_device_row(r) for r in rows]

    async def get_device(self, device_id: int) -> dict[str, Any]:
        row = await self._read(lambda db: db.execute("SELECT * FROM devices WHERE id = ?", (device_id,)).fetchone())
        if row is None:
            raise NotFound(f"device {device_id} not found")
        return _device_row(row)

    async def set_connected(self, device_id: int, connected: bool, last_active: float | None) -> None:
        def op(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE devices SET connected = ?, last_active = COALESCE(?, last_active) WHERE id = ?",
                (int(connected), last_active, device_id),
            )

        await self._write(op)

    # ingest ----------------------------------------------------------------------------------
    async def ingest(self, batch: IngestBatch) -> None:
        digests = batch.digests
        packets = [
            (p.timestamp, p.type, p.conn, p.protocol, p.peer, p.ident, p.device_id, p.data) for p in batch.packets
        ]
        logs = [
            (
                lg.timestamp, lg.event, lg.protocol, lg.conn, lg.ident, lg.device_id, lg.peer, lg.transport,
                lg.recv, lg.send, lg.msgs, lg.duration, lg.reason,
            )
            for lg in batch.logs
        ]
        idents = [(i.protocol, i.ident, i.timestamp, i.timestamp, i.peer, i.sample, i.device_id) for i in batch.idents]
        events = batch.events
        event_rows = [(e.get("device.id"), float(e.get("timestamp") or 0.0), str(e["type"]),
                       _dumps({k: v for k, v in e.items() if k != "id"})) for e in events]
        intervals = batch.intervals
        interval_rows = [_interval_row(i) for i in intervals]
        messages = batch.messages

        def op(db: sqlite3.Connection) -> tuple[list[Message], float]:
            # The rows are built here, in the writer thread: the event loop only hands the batch over.
            rows, newest = _message_rows(messages, digests)
            inserted = messages
            if rows:
                if newest > self._seen_server_ts:
                    self._seen_server_ts = newest
                before = db.total_changes
                _insert_many(db, _INSERT_MESSAGE, rows)
                added = db.total_changes - before
                if added != len(rows):  # duplicates were skipped (the usual case inserts them all)
                    inserted = _inserted(db, rows, messages, added)
            if packets:
                _insert_many(db, _INSERT_PACKET, packets)
            if logs:
                db.executemany(
                    "INSERT INTO logs(ts, event, protocol, conn, ident, device_id, peer, transport, recv, send,"
                    " msgs, duration, reason) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    logs,
                )
            if idents:
                db.executemany(
                    "INSERT INTO idents(protocol, ident, first_seen, last_seen, peer, sample, device_id)"
                    " VALUES (?,?,?,?,?,?,?) ON CONFLICT(protocol, ident) DO UPDATE SET"
                    " last_seen = excluded.last_seen, peer = excluded.peer,"
                    " device_id = COALESCE(excluded.device_id, idents.device_id)",
                    idents,
                )
            for event, event_row in zip(events, event_rows, strict=True):  # few: one statement each for the id
                cur = db.execute("INSERT INTO events(device_id, ts, type, data) VALUES (?,?,?,?)", event_row)
                event["id"] = cur.lastrowid
            _insert_intervals(db, intervals, interval_rows)
            return inserted, newest

        await self._write(op, self._apply_committed)

    def _apply_committed(self, ingested: tuple[list[Message], float]) -> None:
        """After an ingest committed (writer thread): telemetry takes the messages it inserted."""
        messages, newest = ingested
        if newest > self._applied_server_ts:
            self._applied_server_ts = newest
        with self._telemetry_lock:
            touched = self._telemetry.apply_many(messages)
            if self._deleted and not touched.isdisjoint(self._deleted):  # sent while it was being deleted
                for gone in touched & self._deleted:
                    self._telemetry.drop(gone)
                touched -= self._deleted
        self._dirty |= touched

    def _housekeeping(self, db: sqlite3.Connection) -> None:
        """After every commit (writer thread, no transaction open): the periodic write-back."""
        if time.monotonic() - self._last_flush < TELEMETRY_FLUSH_SECONDS:
            return
        dirty = set(self._dirty)
        try:
            db.execute("BEGIN")
            self._flush_telemetry(db)
            db.execute("COMMIT")
        except Exception:
            self._dirty |= dirty  # written the next time
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise

    def _flush_telemetry(self, db: sqlite3.Connection) -> None:
        """Writes back the devices changed since the last time, and the watermark: telemetry now
        reflects every message received before it (less the replay's margin). Writer thread only,
        the one thread that changes telemetry, so reading it needs no lock."""
        data = [(d, _dumps(self._telemetry.snapshot(d))) for d in self._dirty]
        self._dirty = set()
        self._last_flush = time.monotonic()
        if data:
            db.executemany("INSERT OR REPLACE INTO telemetry(device_id, data) VALUES (?, ?)", data)
        if self._applied_server_ts:
            db.execute(
                "INSERT OR REPLACE INTO kv(namespace, key, value) VALUES ('store', 'telemetry_watermark', ?)",
                (_dumps(self._applied_server_ts),),
            )

    # time series -----------------------------------------------------------------------------
    def _messages_sql(
        self, device_ids: list[int] | None, query: TimeQuery, protocol: str | None
    ) -> tuple[str, list[Any]]:
        where, args = _where(_in("device_id", device_ids), _eq("protocol", protocol), _time_clause(query))
        return f"SELECT data FROM messages{where}{_order(query)}", args

    async def messages_raw(
        self, device_ids: list[int] | None, query: TimeQuery, protocol: str | None = None
    ) -> list[str]:
        sql, args = self._messages_sql(device_ids, query, protocol)
        rows = await self._read(lambda db: db.execute(sql, args).fetchall())
        return [r[0] for r in rows]

    async def messages(
        self, device_ids: list[int] | None, query: TimeQuery, protocol: str | None = None
    ) -> list[Message]:
        return [_loads(r) for r in await self.messages_raw(device_ids, query, protocol)]

    async def iter_messages(self, device_id: int, query: TimeQuery, chunk: int = 2000) -> AsyncIterator[Message]:
        last_ts = query.from_ts
        last_id = -1
        remaining = query.count

        def fetch(db: sqlite3.Connection) -> list[sqlite3.Row]:
            args: list[Any] = [device_id]
            sql = "SELECT id, ts, data FROM messages WHERE device_id = ?"
            if last_ts is not None:
                sql += " AND (ts > ? OR (ts = ? AND id > ?))"
                args += [last_ts, last_ts, last_id]
            if query.to_ts is not None:
                sql += " AND ts <= ?"
                args.append(query.to_ts)
            sql += " ORDER BY ts, id LIMIT ?"
            args.append(chunk if remaining is None else min(chunk, remaining))
            return db.execute(sql, args).fetchall()

        while remaining is None or remaining > 0:
            rows = await self._read(fetch)
            if not rows:
                return
            for row in rows:
                yield _loads(row["data"])
            last_ts, last_id = rows[-1]["ts"], rows[-1]["id"]
            if remaining is not None:
                remaining -= len(rows)
            if len(rows) < chunk:
                return

    async def delete_messages(self, device_ids: list[int], query: TimeQuery) -> int:
        where, args = _where(_in("device_id", device_ids), _time_clause(query))
        return await self._write(lambda db: db.execute(f"DELETE FROM messages{where}", args).rowcount)

    async def telemetry(self, device_id: int, names: list[str] | None = None) -> dict[str, dict[str, Any]]:
        if self._closed:
            raise StoreError("store is closed")
        with self._telemetry_lock:
            return self._telemetry.get(device_id, names)

    async def delete_telemetry(self, device_id: int, names: list[str] | None = None) -> int:
        wanted = None if names is None else list(names)

        def op(db: sqlite3.Connection) -> None:
            if wanted == [] or db.execute("SELECT 1 FROM devices WHERE id = ?", (device_id,)).fetchone() is None:
                return
            # The row as it is after the delete (what messages committed along with it add is
            # written back later: they mark the device changed)...
            snapshot = self._telemetry.snapshot(device_id)
            values, times = snapshot["values"], snapshot["times"]
            if wanted is None:
                values, times = {}, {}
            else:
                values = {k: v for k, v in values.items() if k not in wanted}
                times = {k: v for k, v in times.items() if k not in wanted}
            db.execute(
                "INSERT OR REPLACE INTO telemetry(device_id, data) VALUES (?, ?)",
                (device_id, _dumps({"values": values, "times": times})),
            )
            # ... and a mark: for these names, the replay on open skips every message stored
            # before now. By row id, so one received earlier but committed later still counts, and
            # by reception time, as SQLite gives the id of a deleted newest row to the next one.
            last_id = db.execute("SELECT max(id) FROM messages").fetchone()[0] or 0
            mark = [max(time.time(), self._seen_server_ts), last_id]
            key = str(device_id)
            marks: dict[str, Any] = {"all": mark, "names": {}}
            if wanted is not None:
                row = db.execute("SELECT value FROM kv WHERE namespace = ? AND key = ?", (_CLEARED, key)).fetchone()
                marks = _loads(row[0]) if row is not None else {"all": None, "names": {}}
                marks["names"].update(dict.fromkeys(wanted, mark))
            db.execute(
                "INSERT OR REPLACE INTO kv(namespace, key, value) VALUES (?, ?, ?)", (_CLEARED, key, _dumps(marks))
            )

        def committed(_: None) -> int:
            with self._telemetry_lock:
                return self._telemetry.forget(device_id, names)

        return await self._write(op, committed)

    async def packets(
        self,
        query: TimeQuery,
        device_ids: list[int] | None = None,
        protocol: str | None = None,
        ident: str | None = None,
    ) -> list[dict[str, Any]]:
        where, args = _where(
            _in("device_id", device_ids), _eq("protocol", protocol), _eq("ident", ident), _time_clause(query)
        )
        sql = f"SELECT * FROM packets{where}{_order(query)}"
        rows = await self._read(lambda db: db.execute(sql, args).fetchall())
        return [
            {
                "id": r["id"], "timestamp": r["ts"], "type": r["type"], "conn": r["conn"],
                "protocol": r["protocol"], "peer": r["peer"], "ident": r["ident"],
                "device_id": r["device_id"], "data": bytes(r["data"]),
            }
            for r in rows
        ]

    async def logs(
        self, query: TimeQuery, device_ids: list[int] | None = None, protocol: str | None = None
    ) -> list[dict[str, Any]]:
        where, args = _where(_in("device_id", device_ids), _eq("protocol", protocol), _time_clause(query))
        sql = f"SELECT * FROM logs{where}{_order(query)}"
        rows = await self._read(lambda db: db.execute(sql, args).fetchall())
        out = []
        for r in rows:
            rec = dict(r)
            rec["timestamp"] = rec.pop("ts")
            out.append(rec)
        return out

    async def events(self, device_ids: list[int] | None, query: TimeQuery,
                     types: list[str] | None = None) -> list[dict[str, Any]]:
        where, args = _where(_in("device_id", device_ids), _in("type", types), _time_clause(query))
        sql = f"SELECT id, data FROM events{where}{_order(query)}"
        rows = await self._read(lambda db: db.execute(sql, args).fetchall())
        return [{"id": r[0], **_loads(r[1])} for r in rows]

    async def intervals(self, calc_ids: list[int] | None, device_ids: list[int] | None,
                        query: TimeQuery) -> list[dict[str, Any]]:
        where, args = _where(_in("calc_id", calc_ids), _in("device_id", device_ids),
                             _time_clause(TimeQuery(None, query.to_ts), "ts_begin"),
                             _time_clause(TimeQuery(query.from_ts, None), "ts_end"))
        sql = f"SELECT id, data FROM intervals{where}{_order(query, 'ts_begin')}"
        rows = await self._read(lambda db: db.execute(sql, args).fetchall())
        return [{**_loads(r[1]), "id": r[0]} for r in rows]

    async def replace_intervals(self, calc_id: int, device_id: int, begin: float, end: float | None,
                                intervals: list[dict[str, Any]]) -> list[int]:
        rows = [_interval_row(i) for i in intervals]
        where, args = _where(_eq("calc_id", calc_id), _eq("device_id", device_id),
                             _time_clause(TimeQuery(begin, end), "ts_begin"))

        def op(db: sqlite3.Connection) -> list[int]:
            doomed = [r[0] for r in db.execute(f"SELECT id FROM intervals{where} ORDER BY id", args)]
            db.execute(f"DELETE FROM intervals{where}", args)
            _insert_intervals(db, intervals, rows)
            return doomed

        return await self._write(op)

    async def delete_intervals(self, calc_id: int, device_ids: list[int] | None = None) -> int:
        where, args = _where(_eq("calc_id", calc_id), _in("device_id", device_ids))
        return await self._write(lambda db: db.execute(f"DELETE FROM intervals{where}", args).rowcount)

    async def idents(self, protocol: str | None = None) -> list[dict[str, Any]]:
        where, args = _where(_eq("protocol", protocol))
        sql = f"SELECT * FROM idents{where} ORDER BY last_seen DESC"
        rows = await self._read(lambda db: db.execute(sql, args).fetchall())
        return [
            {
                "protocol": r["protocol"], "ident": r["ident"], "first_seen": r["first_seen"],
                "last_seen": r["last_seen"], "peer": r["peer"],
                "sample": bytes(r["sample"] or b"").hex(), "device_id": r["device_id"],
            }
            for r in rows
        ]

    # commands --------------------------------------------------------------------------------
    @staticmethod
    def _command_values(fields: dict[str, Any]) -> dict[str, Any]:
        values = {k: v for k, v in fields.items() if k in COMMAND_COLUMNS}
        for col in _COMMAND_NOT_NULL:  # a StoreError, not the IntegrityError of NOT NULL
            if col in values and values[col] is None:
                raise StoreError(f"a command's {col} cannot be null")
        for col in COMMAND_JSON_COLUMNS:
            if col in values and values[col] is not None:
                values[col] = _dumps(values[col])
        return values

    async def create_command(self, fields: dict[str, Any]) -> dict[str, Any]:
        values = self._command_values({"created": time.time(), "status": "queued", **fields})
        if "name" not in values:
            raise StoreError("a command needs a name")

        def op(db: sqlite3.Connection) -> int:
            cur = db.execute(
                f"INSERT INTO commands({', '.join(values)}) VALUES ({','.join('?' * len(values))})",
                tuple(values.values()),
            )
            return int(cur.lastrowid or 0)

        return await self.get_command(await self._write(op))

    async def update_command(self, command_id: int, fields: dict[str, Any]) -> dict[str, Any]:
        values = self._command_values(fields)

        def op(db: sqlite3.Connection) -> None:
            if values:
                cur = db.execute(
                    f"UPDATE commands SET {', '.join(f'{k} = ?' for k in values)} WHERE id = ?",
                    (*values.values(), command_id),
                )
                if cur.rowcount == 0:
                    raise NotFound(f"command {command_id} not found")

        await self._write(op)
        return await self.get_command(command_id)

    async def get_command(self, command_id: int) -> dict[str, Any]:
        row = await self._read(lambda db: db.execute("SELECT * FROM commands WHERE id = ?", (command_id,)).fetchone())
        if row is None:
            raise NotFound(f"command {command_id} not found")
        return _command_row(row)

    async def commands(
        self,
        device_ids: list[int] | None = None,
        statuses: tuple[str, ...] | None = None,
        query: TimeQuery | None = None,
    ) -> list[dict[str, Any]]:
        query = query or TimeQuery()
        where, args = _where(
            _in("device_id", device_ids),
            _in("status", list(statuses) if statuses is not None else None),
            _time_clause(query, "created"),
        )
        sql = f"SELECT * FROM commands{where}{_order(query, 'created')}"
        rows = await self._read(lambda db: db.execute(sql, args).fetchall())
        return [_command_row(r) for r in rows]

    # key/value -------------------------------------------------------------------------------
    async def kv_get(self, namespace: str, key: str) -> Any | None:
        row = await self._read(
            lambda db: db.execute("SELECT value FROM kv WHERE namespace = ? AND key = ?", (namespace, key)).fetchone()
        )
        return None if row is None else _loads(row[0])

    async def kv_set(self, namespace: str, key: str, value: Any) -> None:
        text = _dumps(value)
        await self._write(
            lambda db: db.execute(
                "INSERT OR REPLACE INTO kv(namespace, key, value) VALUES (?,?,?)", (namespace, key, text)
            )
        )

    async def kv_delete(self, namespace: str, key: str) -> None:
        await self._write(lambda db: db.execute("DELETE FROM kv WHERE namespace = ? AND key = ?", (namespace, key)))

    async def kv_list(self, namespace: str) -> dict[str, Any]:
        rows = await self._read(
            lambda db: db.execute("SELECT key, value FROM kv WHERE namespace = ? ORDER BY key", (namespace,)).fetchall()
        )
        return {r[0]: _loads(r[1]) for r in rows}

    # handler state ---------------------------------------------------------------------------
    async def load_states(self, device_ids: list[int] | None = None) -> dict[int, dict[str, Any]]:
        rows = await self._read(lambda db: db.execute("SELECT device_id, data FROM device_state").fetchall())
        wanted = None if device_ids is None else set(device_ids)
        return {r[0]: _loads(r[1]) for r in rows if wanted is None or r[0] in wanted}

    async def save_states(self, states: dict[int, dict[str, Any]]) -> None:
        rows = [(device_id, _dumps(state)) for device_id, state in states.items()]
        if rows:
            await self._write(
                lambda db: db.executemany("INSERT OR REPLACE INTO device_state(device_id, data) VALUES (?, ?)", rows)
            )

    # retention -------------------------------------------------------------------------------
    async def purge(self, messages_before: float | None, packets_before: float | None) -> dict[str, int]:
        def op(db: sqlite3.Connection) -> dict[str, int]:
            out = {"messages": 0, "packets": 0, "logs": 0}
            if messages_before is not None:
                out["messages"] = db.execute("DELETE FROM messages WHERE server_ts < ?", (messages_before,)).rowcount
            if packets_before is not None:
                out["packets"] = db.execute("DELETE FROM packets WHERE ts < ?", (packets_before,)).rowcount
                out["logs"] = db.execute("DELETE FROM logs WHERE ts < ?", (packets_before,)).rowcount
            return out

        return await self._write(op)
