"""PostgreSQL schema as versioned migrations, applied in order and recorded in ``migrations``.

The tables mirror SQLite's (``sqlite_schema``) with PostgreSQL types. ``messages`` is partitioned
by RANGE on the device time ``ts``: one partition per UTC month, created on demand by the store
(``PostgresStore``), and ``messages_default`` for device times outside the window the store
creates months for (a clock in 1980 or 2080). Its dedup key ``(protocol, ident, ts, digest)``
contains the partition key, as a unique index on a partitioned table must. Messages keep their
JSON as text exactly as encoded, so reads pass it through unparsed.

Each migration runs in one transaction with its record, under an advisory lock, so two nodes
opening the same database at once apply it once. Never edit a released migration: add the next one.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


SCHEMA_V1 = """
CREATE TABLE devices (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL DEFAULT '',
    ident TEXT NOT NULL,
    protocol TEXT NOT NULL,
    model TEXT,
    phone TEXT,
    settings TEXT NOT NULL DEFAULT '{}',
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    connected BOOLEAN NOT NULL DEFAULT FALSE,
    last_active DOUBLE PRECISION,
    created DOUBLE PRECISION NOT NULL,
    messages_ttl INTEGER
);
CREATE UNIQUE INDEX devices_ident ON devices(protocol, ident);

CREATE SEQUENCE messages_id_seq AS BIGINT;
CREATE TABLE messages (
    id BIGINT NOT NULL DEFAULT nextval('messages_id_seq'),
    device_id BIGINT,
    protocol TEXT NOT NULL,
    ident TEXT NOT NULL,
    ts DOUBLE PRECISION NOT NULL,
    server_ts DOUBLE PRECISION NOT NULL,
    flagged BOOLEAN NOT NULL DEFAULT FALSE,
    digest BIGINT NOT NULL,
    data TEXT NOT NULL
) PARTITION BY RANGE (ts);
ALTER SEQUENCE messages_id_seq OWNED BY messages.id;
CREATE UNIQUE INDEX messages_dedup ON messages(protocol, ident, ts, digest);
CREATE INDEX messages_device_ts ON messages(device_id, ts, id);
CREATE INDEX messages_server_ts ON messages(server_ts);
CREATE TABLE messages_default PARTITION OF messages DEFAULT;

CREATE TABLE telemetry (
    device_id BIGINT PRIMARY KEY,
    data TEXT NOT NULL
);

CREATE TABLE packets (
    id BIGSERIAL PRIMARY KEY,
    ts DOUBLE PRECISION NOT NULL,
    type INTEGER NOT NULL,
    conn BIGINT NOT NULL,
    protocol TEXT NOT NULL,
    peer TEXT NOT NULL,
    ident TEXT,
    device_id BIGINT,
    data BYTEA NOT NULL
);
CREATE INDEX packets_device_ts ON packets(device_id, ts);
CREATE INDEX packets_ident_ts ON packets(protocol, ident, ts);
CREATE INDEX packets_ts ON packets(ts);

CREATE TABLE logs (
    id BIGSERIAL PRIMARY KEY,
    ts DOUBLE PRECISION NOT NULL,
    event TEXT NOT NULL,
    protocol TEXT NOT NULL,
    conn BIGINT,
    ident TEXT,
    device_id BIGINT,
    peer TEXT,
    transport TEXT NOT NULL DEFAULT 'tcp',
    recv BIGINT NOT NULL DEFAULT 0,
    send BIGINT NOT NULL DEFAULT 0,
    msgs BIGINT NOT NULL DEFAULT 0,
    duration DOUBLE PRECISION,
    reason TEXT
);
CREATE INDEX logs_device_ts ON logs(device_id, ts);
CREATE INDEX logs_protocol_ts ON logs(protocol, ts);
CREATE INDEX logs_ts ON logs(ts);

CREATE TABLE idents (
    protocol TEXT NOT NULL,
    ident TEXT NOT NULL,
    first_seen DOUBLE PRECISION NOT NULL,
    last_seen DOUBLE PRECISION NOT NULL,
    peer TEXT,
    sample BYTEA,
    device_id BIGINT,
    PRIMARY KEY (protocol, ident)
);

CREATE TABLE commands (
    id BIGSERIAL PRIMARY KEY,
    device_id BIGINT,
    ident TEXT,
    protocol TEXT,
    name TEXT NOT NULL,
    properties TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL,
    realtime BOOLEAN NOT NULL DEFAULT FALSE,
    created DOUBLE PRECISION NOT NULL,
    expire DOUBLE PRECISION,
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL DEFAULT 10,
    sent DOUBLE PRECISION,
    finished DOUBLE PRECISION,
    executed BOOLEAN,
    response TEXT,
    reply TEXT,
    match TEXT,
    payload BYTEA,
    reason TEXT
);
CREATE INDEX commands_device_status ON commands(device_id, status);
CREATE INDEX commands_created ON commands(created);

CREATE TABLE kv (
    namespace TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (namespace, key)
);

CREATE TABLE device_state (
    device_id BIGINT PRIMARY KEY,
    data TEXT NOT NULL
);

CREATE TABLE events (
    id BIGSERIAL PRIMARY KEY,
    device_id BIGINT,
    ts DOUBLE PRECISION NOT NULL,
    type TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX events_device_ts ON events(device_id, ts);
CREATE INDEX events_ts ON events(ts);
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial schema: messages partitioned by device time", SCHEMA_V1),
    Migration(2, "telemetry written back with a replay mark", """
ALTER TABLE telemetry ADD COLUMN upto BIGINT NOT NULL DEFAULT 0;
CREATE INDEX messages_id ON messages(id);
CREATE TABLE checkpoints (
    name TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
"""),
    Migration(3, "calculator intervals", """
CREATE TABLE intervals (
    id BIGSERIAL PRIMARY KEY,
    calc_id BIGINT NOT NULL,
    device_id BIGINT NOT NULL,
    ts_begin DOUBLE PRECISION NOT NULL,
    ts_end DOUBLE PRECISION NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX intervals_calc_device_begin ON intervals(calc_id, device_id, ts_begin);
CREATE INDEX intervals_device_begin ON intervals(device_id, ts_begin);
"""),
)

SCHEMA_VERSION = MIGRATIONS[-1].version

# Tables that keep their ids, each with the sequence that hands them out (for ``sinogate migrate``).
SEQUENCES = {
    "devices": "devices_id_seq",
    "messages": "messages_id_seq",
    "packets": "packets_id_seq",
    "logs": "logs_id_seq",
    "commands": "commands_id_seq",
    "events": "events_id_seq",
    "intervals": "intervals_id_seq",
}


def statements(sql: str) -> list[str]:
    return [part.strip() for part in sql.split(";") if part.strip()]
