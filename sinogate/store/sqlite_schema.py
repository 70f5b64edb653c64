"""SQLite schema as versioned migrations, applied in order and recorded in ``migrations``.

Messages keep their JSON as stored text so reads can pass it through unparsed. A database made
by a release before migrations existed has exactly version 1's tables (they were created with
``IF NOT EXISTS``, as version 1 still is), so opening it records version 1 and applies the rest.
Never edit a released migration: add the next one.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS devices (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL DEFAULT '',
    ident TEXT NOT NULL,
    protocol TEXT NOT NULL,
    model TEXT,
    phone TEXT,
    settings TEXT NOT NULL DEFAULT '{}',
    enabled INTEGER NOT NULL DEFAULT 1,
    connected INTEGER NOT NULL DEFAULT 0,
    last_active REAL,
    created REAL NOT NULL,
    messages_ttl INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS devices_ident ON devices(protocol, ident);

CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    device_id INTEGER,
    protocol TEXT NOT NULL,
    ident TEXT NOT NULL,
    ts REAL NOT NULL,
    server_ts REAL NOT NULL,
    flagged INTEGER NOT NULL DEFAULT 0,
    digest INTEGER NOT NULL,
    data TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS messages_dedup ON messages(protocol, ident, ts, digest);
CREATE INDEX IF NOT EXISTS messages_device_ts ON messages(device_id, ts);
CREATE INDEX IF NOT EXISTS messages_server_ts ON messages(server_ts);

CREATE TABLE IF NOT EXISTS telemetry (
    device_id INTEGER PRIMARY KEY,
    data TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS packets (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    type INTEGER NOT NULL,
    conn INTEGER NOT NULL,
    protocol TEXT NOT NULL,
    peer TEXT NOT NULL,
    ident TEXT,
    device_id INTEGER,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS packets_device_ts ON packets(device_id, ts);
CREATE INDEX IF NOT EXISTS packets_ident_ts ON packets(protocol, ident, ts);
CREATE INDEX IF NOT EXISTS packets_ts ON packets(ts);

CREATE TABLE IF NOT EXISTS logs (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    event TEXT NOT NULL,
    protocol TEXT NOT NULL,
    conn INTEGER,
    ident TEXT,
    device_id INTEGER,
    peer TEXT,
    transport TEXT NOT NULL DEFAULT 'tcp',
    recv INTEGER NOT NULL DEFAULT 0,
    send INTEGER NOT NULL DEFAULT 0,
    msgs INTEGER NOT NULL DEFAULT 0,
    duration REAL,
    reason TEXT
);
CREATE INDEX IF NOT EXISTS logs_device_ts ON logs(device_id, ts);
CREATE INDEX IF NOT EXISTS logs_protocol_ts ON logs(protocol, ts);

CREATE TABLE IF NOT EXISTS idents (
    protocol TEXT NOT NULL,
    ident TEXT NOT NULL,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL,
    peer TEXT,
    sample BLOB,
    device_id INTEGER,
    PRIMARY KEY (protocol, ident)
);

CREATE TABLE IF NOT EXISTS commands (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id INTEGER,
    ident TEXT,
    protocol TEXT,
    name TEXT NOT NULL,
    properties TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL,
    realtime INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    expire REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL DEFAULT 10,
    sent REAL,
    finished REAL,
    executed INTEGER,
    response TEXT,
    reply TEXT,
    match TEXT,
    payload BLOB,
    reason TEXT
);
CREATE INDEX IF NOT EXISTS commands_device_status ON commands(device_id, status);

CREATE TABLE IF NOT EXISTS kv (
    namespace TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (namespace, key)
);
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial schema (release 0.1)", SCHEMA_V1),
    Migration(2, "per-device pipeline handler state", """
CREATE TABLE IF NOT EXISTS device_state (
    device_id INTEGER PRIMARY KEY,
    data TEXT NOT NULL
);
"""),
    Migration(3, "analytics events", """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id INTEGER,
    ts REAL NOT NULL,
    type TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_device_ts ON events(device_id, ts);
"""),
    Migration(4, "calculator intervals", """
CREATE TABLE IF NOT EXISTS intervals (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    calc_id INTEGER NOT NULL,
    device_id INTEGER NOT NULL,
    ts_begin REAL NOT NULL,
    ts_end REAL NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS intervals_calc_device_begin ON intervals(calc_id, device_id, ts_begin);
CREATE INDEX IF NOT EXISTS intervals_device_begin ON intervals(device_id, ts_begin);
"""),
)

SCHEMA_VERSION = MIGRATIONS[-1].version


class SchemaError(Exception):
    """The database was written by a newer release than this one."""


def migrate(db: sqlite3.Connection) -> list[int]:
    """Brings ``db`` (autocommit connection) to ``SCHEMA_VERSION``; returns the versions applied.

    Each migration runs in its own transaction together with its record, so a crash leaves the
    database at a version boundary. Raises ``SchemaError`` for a database from a newer release."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied REAL NOT NULL)"
    )
    done = {row[0] for row in db.execute("SELECT version FROM migrations")}
    newest = max(done, default=0)
    if newest > SCHEMA_VERSION:
        raise SchemaError(f"the database has schema version {newest}; this release knows up to {SCHEMA_VERSION}")
    applied = []
    for migration in MIGRATIONS:
        if migration.version in done:
            continue
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(migration.sql):
                db.execute(statement)
            db.execute("INSERT INTO migrations(version, name, applied) VALUES (?, ?, ?)",
                       (migration.version, migration.name, time.time()))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        applied.append(migration.version)
    return applied


def _statements(sql: str) -> list[str]:
    return [part.strip() for part in sql.split(";") if part.strip()]

COMMAND_COLUMNS = (
    "device_id", "ident", "protocol", "name", "properties", "status", "realtime", "created", "expire",
    "attempts", "max_attempts", "sent", "finished", "executed", "response", "reply", "match", "payload",
    "reason",
)
COMMAND_JSON_COLUMNS = ("properties", "reply", "match")
