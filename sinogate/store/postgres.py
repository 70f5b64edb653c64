"""The store contract (``base``) on PostgreSQL, through asyncpg.

- **Driver.** asyncpg: native asyncio (no thread hop on the event loop the gateway already runs
  on), the binary protocol (floats, bytea and ints cross without text parsing), and prepared
  statements cached per connection, so the batched ``unnest`` inserts below are parsed once.
- **Writes** go through one writer connection and one task that commits everything queued since
  the last commit in one transaction (group commit). Consecutive ``ingest`` calls of a group are
  merged: one multi-row ``INSERT … SELECT FROM unnest(…) ON CONFLICT DO NOTHING`` per table. A call
  resolves only after COMMIT returned. When a group fails, it runs again with each call in its own
  savepoint, so the failing call gets its error and the others still commit.
- **Reads** use a small pool; a write resolved before a read started is visible to it.
- **Messages** live in a table partitioned by RANGE on the device time (``postgres_schema``):
  monthly partitions created on demand inside the writing transaction, a default partition for
  device times outside the window. ``purge`` drops a month whose every row is older than the
  retention bound and deletes single rows elsewhere.
- **Telemetry** follows ``sinogate.store.telemetry`` in memory, applied after COMMIT and only for
  the messages the INSERT actually stored (``RETURNING`` their ids and dedup keys). It is written
  back every ``TELEMETRY_FLUSH_SECONDS``: each device's row carries ``upto``, the id of the last
  message it reflects, and ``checkpoints.telemetry`` the last id every row covers. ``open`` loads
  the rows and replays the messages past the checkpoint whose id is past their device's ``upto``,
  so a crash loses nothing, a deleted device's telemetry stays deleted (its row is gone and its
  messages are skipped) and forgotten values stay forgotten (``delete_telemetry`` writes its row
  at once, with the device's ``upto``).
- **Shared** (``shared=True``, several nodes on one database): a node caches the telemetry of the
  devices it ingests only. A device's row and its messages past ``upto`` are read when the node
  first ingests it (so whatever the previous node did not write back, even after ``kill -9``, is
  replayed from the messages), written back without a global checkpoint and only over an older
  ``upto``, and dropped by ``release_telemetry`` when the device moves to another node. Reads of a
  device cached elsewhere compute it the same way from the database.

URL: ``postgresql://user[:password]@host[:port]/database[?schema=NAME]`` (``postgres://`` too);
``schema`` keeps the tables in that schema (created when missing), other query parameters are
asyncpg's (``sslmode``…) or server settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from sinogate.jsonenc import dumps as _dumps
from sinogate.jsonenc import dumps_bytes, encode_message
from sinogate.jsonenc import loads as _loads
from sinogate.store.base import (
    COMMAND_FIELDS,
    Conflict,
    IngestBatch,
    Message,
    NotFound,
    Store,
    StoreError,
    TimeQuery,
)
from sinogate.store.postgres_schema import MIGRATIONS, SCHEMA_VERSION, SEQUENCES, statements
from sinogate.store.telemetry import TelemetryTable

T = TypeVar("T")
log = logging.getLogger("sinogate.store")

_DEVICE_COLUMNS = ("name", "ident", "protocol", "model", "phone", "settings", "enabled", "messages_ttl")
_COMMAND_COLUMNS = tuple(f for f in COMMAND_FIELDS if f != "id")
_COMMAND_JSON = ("properties", "reply", "match")
_COMMAND_FLOAT = ("created", "expire", "sent", "finished")
_COMMAND_INT = ("device_id", "attempts", "max_attempts")
_COMMAND_BOOL = ("realtime", "executed")
_COMMAND_TEXT = ("ident", "protocol", "name", "status", "response", "reason")

# Monthly partitions exist for device times in [PARTITION_START, now + PARTITION_AHEAD); anything
# else (a tracker whose clock says 1980 or 2080) goes to messages_default.
PARTITION_START = datetime(2010, 1, 1, tzinfo=UTC).timestamp()
PARTITION_AHEAD = 32 * 86400.0
MAX_GROUP = 2000  # writes per transaction
TELEMETRY_FLUSH_SECONDS = 2.0
_LOCK_SALT = "sinogate"


def _month(ts: float) -> int:
    """Months since year 0 of the UTC month holding ``ts`` (year * 12 + month - 1)."""
    t = datetime.fromtimestamp(ts, UTC)
    return t.year * 12 + t.month - 1


@functools.lru_cache(maxsize=1024)
def _month_start(month: int) -> float:
    return datetime(month // 12, month % 12 + 1, 1, tzinfo=UTC).timestamp()


_last_month: tuple[float, float, int] = (0.0, 0.0, 0)  # (start, end, month) last looked up


def _month_of(ts: float) -> int:
    """``_month``, remembering the last month (nearly every message falls in it)."""
    global _last_month
    start, end, month = _last_month
    if not start <= ts < end:
        month = _month(ts)
        _last_month = (_month_start(month), _month_start(month + 1), month)
    return month


def _partition_name(month: int) -> str:
    return f"messages_y{month // 12:04d}m{month % 12 + 1:02d}"


def _interval_row(item: dict[str, Any]) -> tuple[int, int, float, float, str]:
    """(calc, device, begin, end, JSON without id) of an interval."""
    return (int(item["calc.id"]), int(item["device.id"]), float(item["begin"]), float(item["end"]),
            _dumps({k: v for k, v in item.items() if k != "id"}))


async def _insert_with_ids(
    conn: asyncpg.Connection, sequence: str, items: list[dict[str, Any]], rows: list[tuple[Any, ...]], sql: str
) -> None:
    """Inserts ``rows`` with ids drawn first from ``sequence`` (``sql`` takes the ids, then the
    columns, as arrays), so they increase in the order of ``items`` whatever order the INSERT
    writes in; sets each item's ``id`` in place."""
    ids = sorted(r[0] for r in await conn.fetch(
        f"SELECT nextval('{sequence}') FROM generate_series(1, $1)", len(items)
    ))
    await conn.execute(sql, ids, *zip(*rows, strict=True))
    for item, item_id in zip(items, ids, strict=True):
        item["id"] = item_id


async def _insert_intervals(conn: asyncpg.Connection, items: list[dict[str, Any]], rows: list[tuple[Any, ...]]) -> None:
    await _insert_with_ids(
        conn, "intervals_id_seq", items, rows,
        "INSERT INTO intervals(id, calc_id, device_id, ts_begin, ts_end, data)"
        " SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::float8[], $5::float8[], $6::text[])",
    )


def _detached_future() -> asyncio.Future[Any]:
    """A future nobody awaits (the writer's own telemetry write-back): its error is logged."""
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    def done(f: asyncio.Future[Any]) -> None:
        if not f.cancelled() and f.exception() is not None:
            log.warning("telemetry write-back failed (retried later): %s", f.exception())

    future.add_done_callback(done)
    return future


def _affected(status: str) -> int:
    """Rows of a command status such as ``DELETE 3`` or ``UPDATE 1``."""
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def split_url(url: str) -> tuple[str, str | None]:
    """(DSN for asyncpg, schema) of a store URL; ``schema`` is ours, every other parameter asyncpg's."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise StoreError(f"not a PostgreSQL URL: {url!r}")
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in query if k == "schema"), None)
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    return urlunsplit(parts._replace(query=rest)), schema or None


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


# --- rows --------------------------------------------------------------------------------------

def _device_row(r: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": r["id"],
        "name": r["name"],
        "ident": r["ident"],
        "protocol": r["protocol"],
        "model": r["model"],
        "phone": r["phone"],
        "settings": _loads(r["settings"]),
        "enabled": r["enabled"],
        "connected": r["connected"],
        "last_active": r["last_active"],
        "created": r["created"],
        "messages_ttl": r["messages_ttl"],
    }


def _command_row(r: asyncpg.Record) -> dict[str, Any]:
    out = {name: r[name] for name in COMMAND_FIELDS}
    for col in _COMMAND_JSON:
        if out[col] is not None:
            out[col] = _loads(out[col])
    return out


def _command_values(fields: dict[str, Any]) -> dict[str, Any]:
    values = {k: v for k, v in fields.items() if k in _COMMAND_COLUMNS}
    for col, value in values.items():
        if value is None:
            continue
        if col in _COMMAND_JSON:
            values[col] = _dumps(value)
        elif col in _COMMAND_FLOAT:
            values[col] = float(value)
        elif col in _COMMAND_INT:
            values[col] = int(value)
        elif col in _COMMAND_BOOL:
            values[col] = bool(value)
        elif col in _COMMAND_TEXT:
            values[col] = str(value)
        elif col == "payload":
            values[col] = bytes(value)
    return values


class _Where:
    """A WHERE clause with numbered parameters."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.args: list[Any] = []

    def arg(self, value: Any) -> str:
        self.args.append(value)
        return f"${len(self.args)}"

    def any(self, column: str, values: list[Any] | None, cast_to: str) -> _Where:
        if values is not None:
            self.parts.append(f"{column} = ANY({self.arg(list(values))}::{cast_to}[])" if values else "FALSE")
        return self

    def eq(self, column: str, value: Any) -> _Where:
        if value is not None:
            self.parts.append(f"{column} = {self.arg(value)}")
        return self

    def time(self, query: TimeQuery, column: str = "ts") -> _Where:
        if query.from_ts is not None:
            self.parts.append(f"{column} >= {self.arg(float(query.from_ts))}")
        if query.to_ts is not None:
            self.parts.append(f"{column} <= {self.arg(float(query.to_ts))}")
        return self

    def sql(self) -> str:
        return (" WHERE " + " AND ".join(self.parts)) if self.parts else ""


def _order(query: TimeQuery, column: str = "ts") -> str:
    direction = "DESC" if query.reverse else "ASC"
    limit = f" LIMIT {int(query.count)}" if query.count is not None and query.count >= 0 else ""
    return f" ORDER BY {column} {direction}, id {direction}{limit}"


# --- the write path ----------------------------------------------------------------------------

_MESSAGE_COLUMNS = ("device_id", "protocol", "ident", "ts", "server_ts", "flagged", "digest", "data")
_PACKET_COLUMNS = ["ts", "type", "conn", "protocol", "peer", "ident", "device_id", "data"]
_LOG_COLUMNS = ["ts", "event", "protocol", "conn", "ident", "device_id", "peer", "transport", "recv", "send", "msgs",
                "duration", "reason"]


@dataclass(slots=True)
class _Rows:
    """One or more ``ingest`` calls as rows: messages for ``unnest``, packets and logs for COPY."""

    messages: list[tuple[Any, ...]] = field(default_factory=list)  # _MESSAGE_COLUMNS
    dicts: list[Message] = field(default_factory=list)  # the messages, parallel, for telemetry
    months: set[int] = field(default_factory=set)  # monthly partitions the messages need
    packets: list[tuple[Any, ...]] = field(default_factory=list)
    logs: list[tuple[Any, ...]] = field(default_factory=list)
    idents: list[tuple[Any, ...]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)  # the caller's dicts: ids are set in place
    event_rows: list[tuple[Any, ...]] = field(default_factory=list)
    intervals: list[dict[str, Any]] = field(default_factory=list)  # likewise
    interval_rows: list[tuple[Any, ...]] = field(default_factory=list)

    @staticmethod
    def merge(calls: list[_Rows]) -> _Rows:
        out = _Rows()
        for c in calls:
            out.messages += c.messages
            out.dicts += c.dicts
            out.months |= c.months
            out.packets += c.packets
            out.logs += c.logs
            out.idents += c.idents
            out.events += c.events
            out.event_rows += c.event_rows
            out.intervals += c.intervals
            out.interval_rows += c.interval_rows
        return out


Snapshot = dict[str, Any]
# A telemetry change a transaction makes, applied to memory after COMMIT, in order:
# (device, message, its id) applies a stored message; (device, names, None) forgets values
# (names None: all); (device, None, None) drops a deleted device.
TelemetryOp = tuple[int, Any, int | None]


_ABSENT = object()


class _Tx:
    """What one group transaction changed besides the database: telemetry operations and
    partitions to take over after COMMIT, with a journal per call so a rolled-back savepoint
    undoes its part."""

    __slots__ = ("conn", "flushed", "journal", "known", "last_id", "telemetry")

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.telemetry: list[TelemetryOp] = []
        self.known: list[int] = []  # months whose partition exists for this transaction
        self.last_id = 0  # the highest message id this transaction stored
        self.flushed: set[int] = set()  # devices whose telemetry row this transaction wrote back
        self.journal: tuple[int, int, int] | None = None

    def begin_call(self) -> None:
        self.journal = (len(self.telemetry), len(self.known), self.last_id)

    def undo_call(self) -> None:
        assert self.journal is not None
        telemetry, known, self.last_id = self.journal
        del self.telemetry[telemetry:]
        del self.known[known:]
        self.journal = None


Op = Callable[[_Tx], Awaitable[Any]]
_Work = _Rows | Op
_STOP: Any = object()


class PostgresStore(Store):
    """The store contract on PostgreSQL (see the module docstring for the design)."""

    def __init__(self, url: str, readers: int = 4, shared: bool = False) -> None:
        self.url = url
        self.shared = shared
        # Shared: told the device whose values delete_telemetry forgot (the cluster tells the node
        # caching it to read it again).
        self.on_forget: Callable[[int], None] | None = None
        self._loaded: set[int] = set()  # shared: devices whose telemetry is cached here
        self._dsn, self._schema = split_url(url)
        self._readers = readers
        self._pool: asyncpg.Pool | None = None
        self._conn: asyncpg.Connection | None = None
        self._queue: asyncio.Queue[tuple[_Work, asyncio.Future[Any]]] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._open = False
        self._telemetry = TelemetryTable()
        self._upto: dict[int, int] = {}  # device → id of the last message its telemetry reflects
        self._dirty: set[int] = set()  # devices whose telemetry changed since it was written back
        self._last_id = 0  # the highest message id stored (and applied to telemetry)
        self._last_flush = 0.0
        self._partitions: set[int] = set()
        self._lock_key = 0
        self.commits = 0
        self.migrated: list[int] = []  # schema versions the last open applied

    # lifecycle -------------------------------------------------------------------------------
    def _settings(self) -> dict[str, str]:
        return {"search_path": _quote(self._schema)} if self._schema else {}

    async def _connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(self._dsn, server_settings=self._settings())

    async def open(self) -> None:
        try:
            conn = await self._connect()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StoreError(f"cannot connect to {self._safe_url()}: {exc}") from exc
        try:
            await self._prepare_schema(conn)
            if self.shared:
                self._telemetry, self._upto, self._dirty, self._loaded = TelemetryTable(), {}, set(), set()
                self._last_flush = time.monotonic()
            else:
                await self._load_telemetry(conn)
            await self._load_partitions(conn)
            self._pool = await asyncpg.create_pool(
                self._dsn, min_size=1, max_size=self._readers, server_settings=self._settings()
            )
        except BaseException as exc:
            await conn.close()
            if isinstance(exc, asyncpg.PostgresError):
                raise StoreError(f"cannot open {self._safe_url()}: {exc}") from exc
            raise
        self._conn = conn
        self._queue = asyncio.Queue()
        self._writer = asyncio.create_task(self._write_loop(), name="postgres-writer")
        self._open = True

    def _safe_url(self) -> str:
        parts = urlsplit(self.url)
        if parts.password:
            netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
            return urlunsplit(parts._replace(netloc=netloc))
        return self.url

    async def _prepare_schema(self, conn: asyncpg.Connection) -> None:
        if self._schema:
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {_quote(self._schema)}")
        schema = await conn.fetchval("SELECT current_schema()")
        if schema is None:
            raise StoreError(f"{self._safe_url()}: no schema of the search_path exists (add ?schema=NAME)")
        self._lock_key = int(await conn.fetchval("SELECT hashtext($1)", f"{_LOCK_SALT}:{schema}"))
        self.migrated = await migrate(conn, self._lock_key)

    async def _load_telemetry(self, conn: asyncpg.Connection) -> None:
        """The written-back rows, then the messages stored after them (see the module docstring)."""
        self._telemetry, self._upto, self._dirty = TelemetryTable(), {}, set()
        for row in await conn.fetch("SELECT device_id, data, upto FROM telemetry"):
            self._telemetry.load(row["device_id"], _loads(row["data"]))
            self._upto[row["device_id"]] = row["upto"]
        checkpoint = await conn.fetchval("SELECT value FROM checkpoints WHERE name = 'telemetry'") or 0
        async with conn.transaction():
            replay = conn.cursor(
                "SELECT m.id, m.device_id, m.data FROM messages m JOIN devices d ON d.id = m.device_id"
                " WHERE m.id > $1 AND NOT m.flagged ORDER BY m.id", checkpoint, prefetch=2000,
            )
            async for message_id, device_id, data in replay:
                if message_id > self._upto.get(device_id, 0):
                    self._telemetry.apply(_loads(data))
                    self._upto[device_id] = message_id
                    self._dirty.add(device_id)
        self._last_id = max(checkpoint, await conn.fetchval("SELECT max(id) FROM messages") or 0)
        self._last_flush = time.monotonic()

    async def _load_partitions(self, conn: asyncpg.Connection) -> None:
        rows = await conn.fetch(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'messages'::regclass"
        )
        self._partitions = set()
        for row in rows:
            name = row["relname"]
            if name.startswith("messages_y") and len(name) == len("messages_y0000m00"):
                self._partitions.add(int(name[10:14]) * 12 + int(name[15:17]) - 1)

    async def close(self) -> None:
        if not self._open:
            return
        self._open = False
        if self._queue is not None and self._writer is not None:
            self._queue.put_nowait((_STOP, asyncio.get_running_loop().create_future()))
            await self._writer
        self._writer = None
        if self._conn is not None:
            await self._conn.close()
            self._conn = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    def _check(self) -> None:
        if not self._open:
            raise StoreError("store is closed")

    @contextlib.asynccontextmanager
    async def _reader(self) -> AsyncIterator[asyncpg.Connection]:
        self._check()
        assert self._pool is not None
        async with self._pool.acquire() as conn:
            yield conn

    async def _fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        async with self._reader() as conn:
            return cast(list[asyncpg.Record], await conn.fetch(sql, *args))

    async def _fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        async with self._reader() as conn:
            return await conn.fetchrow(sql, *args)

    # the writer ------------------------------------------------------------------------------
    def _submit(self, work: _Work) -> asyncio.Future[Any]:
        self._check()
        assert self._queue is not None
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((work, future))
        return future

    async def _write(self, op: Callable[[_Tx], Awaitable[T]]) -> T:
        return cast(T, await self._submit(op))

    async def _write_loop(self) -> None:
        assert self._queue is not None
        queue = self._queue
        while True:
            item = await queue.get()
            group = []
            stop = item[0] is _STOP
            if not stop:
                group.append(item)
            while not stop and len(group) < MAX_GROUP and not queue.empty():
                nxt = queue.get_nowait()
                if nxt[0] is _STOP:
                    stop = True
                else:
                    group.append(nxt)
            if self._dirty and (stop or time.monotonic() - self._last_flush >= TELEMETRY_FLUSH_SECONDS):
                group.insert(0, (self._flush_telemetry, _detached_future()))
            if group:
                try:
                    await self._commit(group)
                except Exception as exc:  # a bug, not a database error: the writer must go on
                    log.exception("PostgreSQL writer failed on a group of %d writes", len(group))
                    for _work, future in group:
                        if not future.done():
                            future.set_exception(exc)
            if stop:
                return

    async def _commit(self, group: list[tuple[_Work, asyncio.Future[Any]]]) -> None:
        works = [work for work, _ in group]
        try:
            conn = await self._writer_conn()
            tx = _Tx(conn)
            try:
                results = await self._run_group(tx, works, isolate=False)
            except Exception:
                # Something in the group failed: run it again with each call in its own savepoint,
                # so the failing call gets its error and the others still commit.
                conn = await self._writer_conn()
                tx = _Tx(conn)
                results = await self._run_group(tx, works, isolate=True)
        except Exception as exc:  # the commit itself failed: nothing of the group is durable
            self._partitions.clear()
            results = [(False, exc)] * len(group)
        else:
            self.commits += 1
            self._dirty -= tx.flushed
            self._apply_ops(tx.telemetry)
            self._last_id = max(self._last_id, tx.last_id)
            self._partitions.update(tx.known)
        for (ok, value), (_work, future) in zip(results, group, strict=True):
            if future.done():
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

    async def _writer_conn(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            self._conn = await self._connect()
        return self._conn

    async def _run_group(self, tx: _Tx, works: list[_Work], isolate: bool) -> list[tuple[bool, Any]]:
        results: list[tuple[bool, Any]] = []
        async with tx.conn.transaction():
            if isolate:
                for work in works:
                    tx.begin_call()
                    try:
                        async with tx.conn.transaction():  # a savepoint
                            value = await self._run(tx, work)
                    except Exception as exc:  # the caller gets it; the rest of the group commits
                        tx.undo_call()
                        self._partitions.clear()
                        results.append((False, exc))
                    else:
                        results.append((True, value))
                return results
            i = 0
            while i < len(works):
                work = works[i]
                if isinstance(work, _Rows):  # consecutive ingests become one statement per table
                    j = i + 1
                    while j < len(works) and isinstance(works[j], _Rows):
                        j += 1
                    merged = work if j == i + 1 else _Rows.merge(cast(list[_Rows], works[i:j]))
                    await self._insert(tx, merged)
                    results.extend([(True, None)] * (j - i))
                    i = j
                else:
                    results.append((True, await work(tx)))
                    i += 1
        return results

    async def _run(self, tx: _Tx, work: _Work) -> Any:
        if isinstance(work, _Rows):
            await self._insert(tx, work)
            return None
        return await work(tx)

    # devices ---------------------------------------------------------------------------------
    async def create_device(self, fields: dict[str, Any]) -> dict[str, Any]:
        ident, protocol = fields.get("ident"), fields.get("protocol")
        if not ident or not protocol:
            raise StoreError("a device needs an ident and a protocol")
        ident, protocol = str(ident), str(protocol)
        ttl = fields.get("messages_ttl")
        values = (
            str(fields.get("name") or ""), ident, protocol, fields.get("model"), fields.get("phone"),
            _dumps(fields.get("settings") or {}), bool(fields.get("enabled", True)), time.time(),
            None if ttl is None else int(ttl),
        )

        async def op(tx: _Tx) -> dict[str, Any]:
            try:
                row = await tx.conn.fetchrow(
                    "INSERT INTO devices(name, ident, protocol, model, phone, settings, enabled, created,"
                    " messages_ttl) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9) RETURNING *",
                    *values,
                )
            except asyncpg.UniqueViolationError as exc:
                raise Conflict(f"a {protocol} device with ident {ident} already exists") from exc
            device_id = row["id"]
            # Claim what was stored while the ident was unknown.
            for table in ("messages", "packets"):
                await tx.conn.execute(
                    f"UPDATE {table} SET device_id = $1 WHERE device_id IS NULL AND protocol = $2 AND ident = $3",
                    device_id, protocol, ident,
                )
            await tx.conn.execute(
                "UPDATE idents SET device_id = $1 WHERE protocol = $2 AND ident = $3", device_id, protocol, ident
            )
            return _device_row(row)

        return await self._write(op)

    async def update_device(self, device_id: int, fields: dict[str, Any]) -> dict[str, Any]:
        sets = {k: v for k, v in fields.items() if k in _DEVICE_COLUMNS}
        for column in ("name", "ident", "protocol"):
            if column in sets:
                if sets[column] is None:
                    raise StoreError(f"a device's {column} cannot be null")
                sets[column] = str(sets[column])
        if "settings" in sets:
            sets["settings"] = _dumps(sets["settings"] or {})
        if "enabled" in sets:
            sets["enabled"] = bool(sets["enabled"])
        if sets.get("messages_ttl") is not None:
            sets["messages_ttl"] = int(sets["messages_ttl"])

        async def op(tx: _Tx) -> dict[str, Any]:
            if sets:
                assignments = ", ".join(f"{k} = ${n}" for n, k in enumerate(sets, start=2))
                try:
                    row = await tx.conn.fetchrow(
                        f"UPDATE devices SET {assignments} WHERE id = $1 RETURNING *", device_id, *sets.values()
                    )
                except asyncpg.UniqueViolationError as exc:
                    raise Conflict("another device already has that protocol and ident") from exc
            else:
                row = await tx.conn.fetchrow("SELECT * FROM devices WHERE id = $1", device_id)
            if row is None:
                raise NotFound(f"device {device_id} not found")
            return _device_row(row)

        return await self._write(op)

    async def delete_device(self, device_id: int) -> None:
        async def op(tx: _Tx) -> None:
            if _affected(await tx.conn.execute("DELETE FROM devices WHERE id = $1", device_id)) == 0:
                raise NotFound(f"device {device_id} not found")
            await tx.conn.execute("DELETE FROM telemetry WHERE device_id = $1", device_id)
            await tx.conn.execute("DELETE FROM device_state WHERE device_id = $1", device_id)
            await tx.conn.execute("UPDATE idents SET device_id = NULL WHERE device_id = $1", device_id)
            tx.telemetry.append((device_id, None, None))

        await self._write(op)

    async def list_devices(self) -> list[dict[str, Any]]:
        return [_device_row(r) for r in await self._fetch("SELECT * FROM devices ORDER BY id")]

    async def get_device(self, device_id: int) -> dict[str, Any]:
        row = await self._fetchrow("SELECT * FROM devices WHERE id = $1", device_id)
        if row is None:
            raise NotFound(f"device {device_id} not found")
        return _device_row(row)

    async def set_connected(self, device_id: int, connected: bool, last_active: float | None) -> None:
        active = None if last_active is None else float(last_active)

        async def op(tx: _Tx) -> None:
            await tx.conn.execute(
                "UPDATE devices SET connected = $2, last_active = COALESCE($3, last_active) WHERE id = $1",
                device_id, bool(connected), active,
            )

        await self._write(op)

    # ingest ----------------------------------------------------------------------------------
    async def ingest(self, batch: IngestBatch) -> None:
        rows = self._rows(batch)
        if self.shared:
            missing = {r[0] for r in rows.messages if r[0] is not None} - self._loaded
            if missing:
                await self._cache_telemetry(sorted(missing))
        await self._submit(rows)

    async def _read_telemetry(self, device_ids: list[int]) -> tuple[TelemetryTable, dict[int, int]]:
        """The devices' telemetry as the database has it: the written-back rows, then the messages
        stored after each row's ``upto``."""
        table, upto = TelemetryTable(), {}
        async with self._reader() as conn:
            for row in await conn.fetch("SELECT device_id, data, upto FROM telemetry"
                                        " WHERE device_id = ANY($1::bigint[])", device_ids):
                table.load(row["device_id"], _loads(row["data"]))
                upto[row["device_id"]] = row["upto"]
            with_row = [d for d in device_ids if d in upto]
            replay: list[asyncpg.Record] = []
            if with_row:  # the recent tail of the id index: small while the owner writes back
                replay += await conn.fetch(
                    "SELECT id, device_id, data FROM messages WHERE id > $1 AND device_id = ANY($2::bigint[])"
                    " AND NOT flagged ORDER BY id", min(upto[d] for d in with_row), with_row)
            for device_id in device_ids:
                if device_id not in upto:  # never written back: all of its messages
                    replay += await conn.fetch("SELECT id, device_id, data FROM messages WHERE device_id = $1"
                                               " AND NOT flagged ORDER BY id", device_id)
        for message_id, device_id, data in replay:
            if message_id > upto.get(device_id, 0):
                table.apply(_loads(data))
                upto[device_id] = message_id
        return table, upto

    async def _cache_telemetry(self, device_ids: list[int]) -> None:
        table, upto = await self._read_telemetry(device_ids)
        for device_id in device_ids:
            if device_id in self._loaded:
                continue  # loaded by a concurrent call meanwhile
            snapshot = table.snapshot(device_id)
            if snapshot["times"]:
                self._telemetry.load(device_id, snapshot)
            else:
                self._telemetry.drop(device_id)
            if device_id in upto:
                self._upto[device_id] = upto[device_id]
            self._loaded.add(device_id)

    async def release_telemetry(self, device_id: int, write_back: bool = True) -> None:
        if not self.shared or device_id not in self._loaded:
            return

        async def op(tx: _Tx) -> None:
            if write_back and device_id in self._dirty:
                await self._write_back(tx, [device_id])
            # Dropped now: operations of this device still queued behind are skipped, and the
            # next node (or this one, later) replays them from the messages.
            self._loaded.discard(device_id)
            self._dirty.discard(device_id)
            self._telemetry.drop(device_id)
            self._upto.pop(device_id, None)

        await self._write(op)

    def _rows(self, batch: IngestBatch) -> _Rows:
        """Encodes the batch into rows (everything that can fail on the caller's side)."""
        rows = _Rows()
        digests = batch.digests
        if digests is not None and len(digests) != len(batch.messages):
            raise StoreError("digests must be parallel to messages")
        low, high = PARTITION_START, time.time() + PARTITION_AHEAD
        append = rows.messages.append
        months = rows.months
        for i, m in enumerate(batch.messages):
            if digests is not None:
                data, digest = dumps_bytes(m), digests[i]
            else:
                data, digest = encode_message(m)
            device_id = m.get("device.id")
            ts = float(m.get("timestamp") or 0.0)
            append((
                None if device_id is None else int(device_id), str(m.get("protocol.name", "")),
                str(m.get("ident", "")), ts, float(m.get("server.timestamp") or 0.0),
                bool(m.get("timestamp.flagged")), int(digest), data.decode(),
            ))
            if low <= ts < high:
                months.add(_month_of(ts))
        rows.dicts = batch.messages
        rows.packets = [
            (float(p.timestamp), p.type, p.conn, p.protocol, p.peer, p.ident, p.device_id, bytes(p.data))
            for p in batch.packets
        ]
        rows.logs = [
            (
                float(lg.timestamp), lg.event, lg.protocol, lg.conn, lg.ident, lg.device_id, lg.peer, lg.transport,
                lg.recv, lg.send, lg.msgs, None if lg.duration is None else float(lg.duration), lg.reason,
            )
            for lg in batch.logs
        ]
        rows.idents = [
            (i.protocol, i.ident, float(i.timestamp), i.peer, bytes(i.sample), i.device_id) for i in batch.idents
        ]
        rows.events = batch.events
        rows.event_rows = [
            (
                None if e.get("device.id") is None else int(e["device.id"]), float(e.get("timestamp") or 0.0),
                str(e["type"]), _dumps({k: v for k, v in e.items() if k != "id"}),
            )
            for e in batch.events
        ]
        rows.intervals = batch.intervals
        rows.interval_rows = [_interval_row(i) for i in batch.intervals]
        return rows

    async def _insert(self, tx: _Tx, rows: _Rows) -> None:
        conn = tx.conn
        if rows.messages:
            for month in sorted(rows.months - self._partitions):
                await self._ensure_partition(tx, month)
            stored = await conn.fetch(
                "INSERT INTO messages(device_id, protocol, ident, ts, server_ts, flagged, digest, data)"
                " SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::float8[], $5::float8[],"
                " $6::bool[], $7::bigint[], $8::text[])"
                " ON CONFLICT DO NOTHING RETURNING id, protocol, ident, ts, digest",
                *zip(*rows.messages, strict=True),
            )
            if stored:
                self._apply_telemetry(tx, rows, stored)
        # Packets and logs have no key to conflict on: COPY, the cheapest way in.
        if rows.packets:
            await conn.copy_records_to_table("packets", records=rows.packets, columns=_PACKET_COLUMNS)
        if rows.logs:
            await conn.copy_records_to_table("logs", records=rows.logs, columns=_LOG_COLUMNS)
        if rows.idents:
            # One statement per record: an upsert may not touch one row twice in a statement.
            await conn.executemany(
                "INSERT INTO idents(protocol, ident, first_seen, last_seen, peer, sample, device_id)"
                " VALUES ($1, $2, $3, $3, $4, $5, $6) ON CONFLICT (protocol, ident) DO UPDATE SET"
                " last_seen = excluded.last_seen, peer = excluded.peer,"
                " device_id = COALESCE(excluded.device_id, idents.device_id)",
                rows.idents,
            )
        if rows.events:
            await _insert_with_ids(
                conn, "events_id_seq", rows.events, rows.event_rows,
                "INSERT INTO events(id, device_id, ts, type, data)"
                " SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::float8[], $4::text[], $5::text[])",
            )
        if rows.intervals:
            await _insert_intervals(conn, rows.intervals, rows.interval_rows)

    def _apply_telemetry(self, tx: _Tx, rows: _Rows, stored: list[asyncpg.Record]) -> None:
        """Queues the messages the INSERT stored (the first of equal keys) for telemetry; they
        take effect after COMMIT."""
        ids = {(r[1], r[2], r[3], r[4]): r[0] for r in stored}
        tx.last_id = max(tx.last_id, max(ids.values()))
        queue = tx.telemetry.append
        for row, message in zip(rows.messages, rows.dicts, strict=True):
            device_id, protocol, ident, ts, _server_ts, flagged, digest, _data = row
            if device_id is None or flagged:
                continue
            message_id = ids.pop((protocol, ident, ts, digest), None)
            if message_id is not None:  # else a duplicate: skipped, touches nothing
                queue((device_id, message, message_id))

    def _apply_ops(self, ops: list[TelemetryOp], table: TelemetryTable | None = None,
                   upto: dict[int, int] | None = None) -> None:
        """Runs telemetry operations on the committed state (or on ``table`` and ``upto``)."""
        table = self._telemetry if table is None else table
        committed = upto is None
        upto = self._upto if upto is None else upto
        shared = self.shared and committed
        for device_id, what, message_id in ops:
            if shared and device_id not in self._loaded:
                continue  # not cached here: the database's rows and messages are the truth
            if message_id is not None:
                table.apply(what)
                if message_id > upto.get(device_id, 0):
                    upto[device_id] = message_id
            elif what is None:
                table.drop(device_id)
                upto.pop(device_id, None)
                if committed:
                    self._dirty.discard(device_id)
                continue
            else:
                table.forget(device_id, None if what is True else what)
            if committed:
                self._dirty.add(device_id)

    def _device_telemetry(self, tx: _Tx, device_id: int) -> tuple[TelemetryTable, int]:
        """One device's telemetry and upto as this transaction sees them (a copy)."""
        table = TelemetryTable()
        snapshot = self._telemetry.snapshot(device_id)
        if snapshot["times"]:
            table.load(device_id, snapshot)
        upto = {device_id: self._upto.get(device_id, 0)}
        self._apply_ops([op for op in tx.telemetry if op[0] == device_id], table, upto)
        return table, upto.get(device_id, 0)

    async def _flush_telemetry(self, tx: _Tx) -> None:
        """Writes back the committed telemetry of every changed device and moves the checkpoint to
        the last committed message: every message up to it is reflected in the rows. (Messages of
        this transaction come after the checkpoint, so a replay covers them.)"""
        devices = sorted(self._dirty)
        await self._write_back(tx, devices)
        if self.shared:  # no global checkpoint: each node's devices are replayed from their upto
            tx.flushed.update(devices)
            self._last_flush = time.monotonic()
            return
        await tx.conn.execute(
            "INSERT INTO checkpoints(name, value) VALUES ('telemetry', $1)"
            " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            self._last_id,
        )
        tx.flushed.update(devices)
        self._last_flush = time.monotonic()

    async def _write_back(self, tx: _Tx, devices: list[int]) -> None:
        data = [_dumps(self._telemetry.snapshot(d)) for d in devices]
        upto = [self._upto.get(d, 0) for d in devices]
        # Shared: a node that lost a device late must not write over the newer row of the next one.
        guard = " WHERE telemetry.upto <= excluded.upto" if self.shared else ""
        await tx.conn.execute(
            "INSERT INTO telemetry(device_id, data, upto) SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[])"
            " ON CONFLICT (device_id) DO UPDATE SET data = excluded.data, upto = excluded.upto" + guard,
            devices, data, upto,
        )

    async def _ensure_partition(self, tx: _Tx, month: int) -> None:
        """Makes sure the month's partition exists (known to this transaction until COMMIT)."""
        conn = tx.conn
        name = _partition_name(month)
        if month in tx.known:
            return
        if await conn.fetchval("SELECT to_regclass($1)", name) is None:
            await conn.execute("SELECT pg_advisory_xact_lock($1)", self._lock_key)
            if await conn.fetchval("SELECT to_regclass($1)", name) is None:  # not made while we waited
                await self._create_partition(conn, month)
        tx.known.append(month)

    @staticmethod
    async def _create_partition(conn: asyncpg.Connection, month: int) -> None:
        name = _partition_name(month)
        lo, hi = _month_start(month), _month_start(month + 1)
        await conn.execute(f"CREATE TABLE {name} (LIKE messages INCLUDING DEFAULTS)")
        await conn.execute(
            f"WITH moved AS (DELETE FROM messages_default WHERE ts >= {lo!r} AND ts < {hi!r} RETURNING *)"
            f" INSERT INTO {name} SELECT * FROM moved"
        )
        await conn.execute(f"ALTER TABLE messages ATTACH PARTITION {name} FOR VALUES FROM ({lo!r}) TO ({hi!r})")

    # time series -----------------------------------------------------------------------------
    def _messages_sql(
        self, device_ids: list[int] | None, query: TimeQuery, protocol: str | None
    ) -> tuple[str, list[Any]]:
        where = _Where().any("device_id", device_ids, "bigint").eq("protocol", protocol).time(query)
        return f"SELECT data FROM messages{where.sql()}{_order(query)}", where.args

    async def messages_raw(
        self, device_ids: list[int] | None, query: TimeQuery, protocol: str | None = None
    ) -> list[str]:
        sql, args = self._messages_sql(device_ids, query, protocol)
        return [r[0] for r in await self._fetch(sql, *args)]

    async def messages(
        self, device_ids: list[int] | None, query: TimeQuery, protocol: str | None = None
    ) -> list[Message]:
        return [_loads(r) for r in await self.messages_raw(device_ids, query, protocol)]

    async def iter_messages(self, device_id: int, query: TimeQuery, chunk: int = 2000) -> AsyncIterator[Message]:
        after: tuple[float, int] | None = None if query.from_ts is None else (float(query.from_ts), -1)
        remaining = query.count
        while remaining is None or remaining > 0:
            where = _Where().eq("device_id", device_id)
            if after is not None:
                where.parts.append(f"(ts, id) > ({where.arg(after[0])}, {where.arg(after[1])})")
            if query.to_ts is not None:
                where.parts.append(f"ts <= {where.arg(float(query.to_ts))}")
            limit = chunk if remaining is None else min(chunk, remaining)
            rows = await self._fetch(
                f"SELECT id, ts, data FROM messages{where.sql()} ORDER BY ts, id LIMIT {int(limit)}", *where.args
            )
            if not rows:
                return
            for row in rows:
                yield _loads(row["data"])
            after = (rows[-1]["ts"], rows[-1]["id"])
            if remaining is not None:
                remaining -= len(rows)
            if len(rows) < chunk:
                return

    async def delete_messages(self, device_ids: list[int], query: TimeQuery) -> int:
        if not device_ids:
            self._check()
            return 0
        where = _Where().any("device_id", device_ids, "bigint").time(query)

        async def op(tx: _Tx) -> int:
            if self._dirty:  # the deleted messages can no longer be replayed into telemetry
                await self._flush_telemetry(tx)
            return _affected(await tx.conn.execute(f"DELETE FROM messages{where.sql()}", *where.args))

        return await self._write(op)

    async def telemetry(self, device_id: int, names: list[str] | None = None) -> dict[str, dict[str, Any]]:
        self._check()
        table = self._telemetry
        if self.shared and device_id not in self._loaded:
            table, _ = await self._read_telemetry([device_id])
        out: dict[str, dict[str, Any]] = _loads(dumps_bytes(table.get(device_id, names)))
        return out

    async def delete_telemetry(self, device_id: int, names: list[str] | None = None) -> int:
        if self.shared and device_id not in self._loaded:
            await self._cache_telemetry([device_id])

        async def op(tx: _Tx) -> int:
            table, upto = self._device_telemetry(tx, device_id)
            removed = table.forget(device_id, names)
            if removed:
                # Written at once, with its upto: a replay never brings the values back.
                await tx.conn.execute(
                    "INSERT INTO telemetry(device_id, data, upto) VALUES ($1, $2, $3)"
                    " ON CONFLICT (device_id) DO UPDATE SET data = excluded.data, upto = excluded.upto",
                    device_id, _dumps(table.snapshot(device_id)), upto,
                )
                tx.telemetry.append((device_id, True if names is None else list(names), None))
            return removed

        removed = await self._write(op)
        if self.shared:  # the node caching the device drops its copy too (on_forget); so does this one
            await self.release_telemetry(device_id, write_back=False)
            if self.on_forget is not None:
                self.on_forget(device_id)
        return removed

    # traffic ---------------------------------------------------------------------------------
    async def packets(
        self,
        query: TimeQuery,
        device_ids: list[int] | None = None,
        protocol: str | None = None,
        ident: str | None = None,
    ) -> list[dict[str, Any]]:
        where = _Where().any("device_id", device_ids, "bigint").eq("protocol", protocol).eq("ident", ident)
        where.time(query)
        rows = await self._fetch(f"SELECT * FROM packets{where.sql()}{_order(query)}", *where.args)
        return [
            {
                "id": r["id"], "timestamp": r["ts"], "type": r["type"], "conn": r["conn"],
                "protocol": r["protocol"], "peer": r["peer"], "ident": r["ident"],
                "device_id": r["device_id"], "data": r["data"],
            }
            for r in rows
        ]

    async def logs(
        self, query: TimeQuery, device_ids: list[int] | None = None, protocol: str | None = None
    ) -> list[dict[str, Any]]:
        where = _Where().any("device_id", device_ids, "bigint").eq("protocol", protocol).time(query)
        rows = await self._fetch(f"SELECT * FROM logs{where.sql()}{_order(query)}", *where.args)
        out = []
        for r in rows:
            record = dict(r)
            record["timestamp"] = record.pop("ts")
            out.append(record)
        return out

    async def events(self, device_ids: list[int] | None, query: TimeQuery,
                     types: list[str] | None = None) -> list[dict[str, Any]]:
        where = _Where().any("device_id", device_ids, "bigint").any("type", types, "text").time(query)
        rows = await self._fetch(f"SELECT id, data FROM events{where.sql()}{_order(query)}", *where.args)
        return [{"id": r[0], **_loads(r[1])} for r in rows]

    # intervals -------------------------------------------------------------------------------
    async def intervals(self, calc_ids: list[int] | None, device_ids: list[int] | None,
                        query: TimeQuery) -> list[dict[str, Any]]:
        where = _Where().any("calc_id", calc_ids, "bigint").any("device_id", device_ids, "bigint")
        where.time(TimeQuery(None, query.to_ts), "ts_begin").time(TimeQuery(query.from_ts, None), "ts_end")
        rows = await self._fetch(f"SELECT id, data FROM intervals{where.sql()}{_order(query, 'ts_begin')}",
                                 *where.args)
        return [{**_loads(r[1]), "id": r[0]} for r in rows]

    async def replace_intervals(self, calc_id: int, device_id: int, begin: float, end: float | None,
                                intervals: list[dict[str, Any]]) -> list[int]:
        rows = [_interval_row(i) for i in intervals]
        where = _Where().eq("calc_id", int(calc_id)).eq("device_id", int(device_id))
        where.time(TimeQuery(begin, end), "ts_begin")

        async def op(tx: _Tx) -> list[int]:
            doomed = await tx.conn.fetch(f"DELETE FROM intervals{where.sql()} RETURNING id", *where.args)
            if rows:
                await _insert_intervals(tx.conn, intervals, rows)
            return sorted(r[0] for r in doomed)

        return await self._write(op)

    async def delete_intervals(self, calc_id: int, device_ids: list[int] | None = None) -> int:
        where = _Where().eq("calc_id", int(calc_id)).any("device_id", device_ids, "bigint")

        async def op(tx: _Tx) -> int:
            return _affected(await tx.conn.execute(f"DELETE FROM intervals{where.sql()}", *where.args))

        return await self._write(op)

    async def idents(self, protocol: str | None = None) -> list[dict[str, Any]]:
        where = _Where().eq("protocol", protocol)
        rows = await self._fetch(f"SELECT * FROM idents{where.sql()} ORDER BY last_seen DESC", *where.args)
        return [
            {
                "protocol": r["protocol"], "ident": r["ident"], "first_seen": r["first_seen"],
                "last_seen": r["last_seen"], "peer": r["peer"], "sample": (r["sample"] or b"").hex(),
                "device_id": r["device_id"],
            }
            for r in rows
        ]

    # commands --------------------------------------------------------------------------------
    async def create_command(self, fields: dict[str, Any]) -> dict[str, Any]:
        values = _command_values({"created": time.time(), "status": "queued", **fields})
        if values.get("name") is None:
            raise StoreError("a command needs a name")

        async def op(tx: _Tx) -> dict[str, Any]:
            placeholders = ",".join(f"${n}" for n in range(1, len(values) + 1))
            try:
                row = await tx.conn.fetchrow(
                    f"INSERT INTO commands({', '.join(values)}) VALUES ({placeholders}) RETURNING *",
                    *values.values(),
                )
            except asyncpg.NotNullViolationError as exc:
                raise StoreError(f"a command's {exc.column_name} cannot be null") from exc
            return _command_row(row)

        return await self._write(op)

    async def update_command(self, command_id: int, fields: dict[str, Any]) -> dict[str, Any]:
        values = _command_values(fields)

        async def op(tx: _Tx) -> dict[str, Any]:
            if values:
                assignments = ", ".join(f"{k} = ${n}" for n, k in enumerate(values, start=2))
                try:
                    row = await tx.conn.fetchrow(
                        f"UPDATE commands SET {assignments} WHERE id = $1 RETURNING *", command_id, *values.values()
                    )
                except asyncpg.NotNullViolationError as exc:
                    raise StoreError(f"a command's {exc.column_name} cannot be null") from exc
            else:
                row = await tx.conn.fetchrow("SELECT * FROM commands WHERE id = $1", command_id)
            if row is None:
                raise NotFound(f"command {command_id} not found")
            return _command_row(row)

        return await self._write(op)

    async def get_command(self, command_id: int) -> dict[str, Any]:
        row = await self._fetchrow("SELECT * FROM commands WHERE id = $1", command_id)
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
        where = _Where().any("device_id", device_ids, "bigint")
        where.any("status", list(statuses) if statuses is not None else None, "text").time(query, "created")
        rows = await self._fetch(f"SELECT * FROM commands{where.sql()}{_order(query, 'created')}", *where.args)
        return [_command_row(r) for r in rows]

    # key/value -------------------------------------------------------------------------------
    async def kv_get(self, namespace: str, key: str) -> Any | None:
        row = await self._fetchrow("SELECT value FROM kv WHERE namespace = $1 AND key = $2", namespace, key)
        return None if row is None else _loads(row[0])

    async def kv_set(self, namespace: str, key: str, value: Any) -> None:
        text = _dumps(value)

        async def op(tx: _Tx) -> None:
            await tx.conn.execute(
                "INSERT INTO kv(namespace, key, value) VALUES ($1, $2, $3)"
                " ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value",
                namespace, key, text,
            )

        await self._write(op)

    async def kv_delete(self, namespace: str, key: str) -> None:
        async def op(tx: _Tx) -> None:
            await tx.conn.execute("DELETE FROM kv WHERE namespace = $1 AND key = $2", namespace, key)

        await self._write(op)

    async def kv_list(self, namespace: str) -> dict[str, Any]:
        # COLLATE "C": byte order, as SQLite sorts ("Beta" before "alpha") whatever the database locale.
        rows = await self._fetch(
            'SELECT key, value FROM kv WHERE namespace = $1 ORDER BY key COLLATE "C"', namespace
        )
        return {r[0]: _loads(r[1]) for r in rows}

    # handler state ---------------------------------------------------------------------------
    async def load_states(self, device_ids: list[int] | None = None) -> dict[int, dict[str, Any]]:
        if device_ids is None:
            rows = await self._fetch("SELECT device_id, data FROM device_state")
        else:
            rows = await self._fetch("SELECT device_id, data FROM device_state WHERE device_id = ANY($1::bigint[])",
                                     device_ids)
        return {r[0]: _loads(r[1]) for r in rows}

    async def save_states(self, states: dict[int, dict[str, Any]]) -> None:
        ids = [int(d) for d in states]
        texts = [_dumps(s) for s in states.values()]
        if not ids:
            self._check()
            return

        async def op(tx: _Tx) -> None:
            await tx.conn.execute(
                "INSERT INTO device_state(device_id, data) SELECT * FROM unnest($1::bigint[], $2::text[])"
                " ON CONFLICT (device_id) DO UPDATE SET data = excluded.data",
                ids, texts,
            )

        await self._write(op)

    # retention -------------------------------------------------------------------------------
    async def purge(self, messages_before: float | None, packets_before: float | None) -> dict[str, int]:
        async def op(tx: _Tx) -> dict[str, int]:
            conn = tx.conn
            out = {"messages": 0, "packets": 0, "logs": 0}
            if messages_before is not None:
                if self._dirty:  # the purged messages can no longer be replayed into telemetry
                    await self._flush_telemetry(tx)
                before = float(messages_before)
                out["messages"] = await self._drop_old_partitions(tx, before)
                out["messages"] += _affected(
                    await conn.execute("DELETE FROM messages WHERE server_ts < $1", before)
                )
            if packets_before is not None:
                before = float(packets_before)
                out["packets"] = _affected(await conn.execute("DELETE FROM packets WHERE ts < $1", before))
                out["logs"] = _affected(await conn.execute("DELETE FROM logs WHERE ts < $1", before))
            return out

        return await self._write(op)

    async def _drop_old_partitions(self, tx: _Tx, before: float) -> int:
        """Drops the monthly partitions whose every message was received before ``before``; returns
        how many messages went with them. (The newest reception time of a partition is one index
        probe; the count is paid once, when the partition goes.)"""
        conn = tx.conn
        await self._load_partitions(conn)
        dropped = 0
        for month in sorted(self._partitions):
            name = _partition_name(month)
            newest = await conn.fetchval(f"SELECT max(server_ts) FROM {name}")
            if newest is None or newest >= before:
                continue
            dropped += int(await conn.fetchval(f"SELECT count(*) FROM {name}"))
            await conn.execute(f"DROP TABLE {name}")
            self._partitions.discard(month)  # recreated on demand; a rollback clears the cache anyway
        return dropped

    # helpers for ``sinogate migrate`` ---------------------------------------------------------
    async def copy_rows(self, table: str, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
        """Bulk-loads rows as they are (ids included) through COPY; messages go through the
        partition bookkeeping first. For the copy from another store only."""
        if table == "messages":
            ts_index = columns.index("ts")
            high = time.time() + PARTITION_AHEAD
            months = {_month(r[ts_index]) for r in rows if PARTITION_START <= r[ts_index] < high}
        else:
            months = set()

        async def op(tx: _Tx) -> None:
            for month in sorted(months - self._partitions):
                await self._ensure_partition(tx, month)
            await tx.conn.copy_records_to_table(table, records=rows, columns=columns)

        await self._write(op)

    async def finish_copy(self, floors: dict[str, int] | None = None) -> None:
        """After ``copy_rows``: moves every id sequence past the copied ids (and past ``floors``,
        ids the source handed out once), marks the copied telemetry as covering every copied
        message, and loads it."""
        floors = floors or {}

        async def op(tx: _Tx) -> None:
            for table, sequence in SEQUENCES.items():
                floor = int(floors.get(table, 0))
                await tx.conn.execute(
                    f"SELECT setval('{sequence}', GREATEST((SELECT max(id) FROM {table}), $1) + 1, false)", floor
                )
            await tx.conn.execute(
                "INSERT INTO checkpoints(name, value) SELECT 'telemetry', COALESCE(max(id), 0) FROM messages"
                " ON CONFLICT (name) DO UPDATE SET value = excluded.value"
            )
            await self._load_telemetry(tx.conn)

        await self._write(op)

    async def count(self, table: str) -> int:
        """Rows of one table (for the verification of ``sinogate migrate``)."""
        row = await self._fetchrow(f"SELECT count(*) FROM {_quote(table)}")
        assert row is not None
        return int(row[0])


async def migrate(conn: asyncpg.Connection, lock_key: int) -> list[int]:
    """Brings the schema of ``conn``'s search_path to ``SCHEMA_VERSION``; returns the versions
    applied. Each migration commits with its record; raises ``StoreError`` for a schema written by
    a newer release."""
    applied: list[int] = []
    for migration in MIGRATIONS:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", lock_key)
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS migrations"
                " (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied DOUBLE PRECISION NOT NULL)"
            )
            done = {r[0] for r in await conn.fetch("SELECT version FROM migrations")}
            newest = max(done, default=0)
            if newest > SCHEMA_VERSION:
                raise StoreError(
                    f"the database has schema version {newest}; this release knows up to {SCHEMA_VERSION}"
                )
            if migration.version in done:
                continue
            for statement in statements(migration.sql):
                await conn.execute(statement)
            await conn.execute(
                "INSERT INTO migrations(version, name, applied) VALUES ($1, $2, $3)",
                migration.version, migration.name, time.time(),
            )
        applied.append(migration.version)
    return applied
