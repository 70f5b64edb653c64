"""SQLite schema. Messages keep their JSON as stored text so reads can pass it through unparsed."""

SCHEMA = """
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

COMMAND_COLUMNS = (
    "device_id", "ident", "protocol", "name", "properties", "status", "realtime", "created", "expire",
    "attempts", "max_attempts", "sent", "finished", "executed", "response", "reply", "match", "payload",
    "reason",
)
COMMAND_JSON_COLUMNS = ("properties", "reply", "match")
