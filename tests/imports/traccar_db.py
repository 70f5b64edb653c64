"""A Traccar-shaped database in the real PostgreSQL (127.0.0.1:5432) or MariaDB (127.0.0.1:3306) of the
machine, with a few thousand positions, events, geofences and queued commands made up here.

The tables have Traccar 5's names and the columns the importer reads (``tc_devices``, ``tc_positions``
with JSON ``attributes``, ``tc_events``, ``tc_geofences`` with lat-first WKT, ``tc_commands_queue``);
times are UTC ``TIMESTAMP`` columns, speeds knots, distances metres, as Traccar stores them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

PG_BASE = os.environ.get("SINOGATE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
MYSQL_HOST = os.environ.get("SINOGATE_TEST_MYSQL_HOST", "127.0.0.1")
MYSQL_PORT = int(os.environ.get("SINOGATE_TEST_MYSQL_PORT", "3306"))
MYSQL_USER = os.environ.get("SINOGATE_TEST_MYSQL_USER", "root")

T0 = datetime(2024, 3, 1, tzinfo=UTC)

# (traccar id, name, uniqueid, traccar protocol, positions)
DEVICES = [
    (1, "van 1", "4210051401", "h02", 1500),
    (2, "truck jt", "013511221122", "huabao", 1200),
    (3, "van 2", "4210051402", "h02", 800),
    (4, "other brand", "862000000000004", "gt06", 100),
    (5, "never reported", "4210051499", None, 0),
]
IMPORTED = {1, 2, 3}

SCHEMA = {
    "tc_devices": ["id INT PRIMARY KEY", "name VARCHAR(128) NOT NULL", "uniqueid VARCHAR(128) NOT NULL",
                   "lastupdate TIMESTAMP NULL", "positionid INT", "groupid INT", "attributes VARCHAR(4000)",
                   "phone VARCHAR(128)", "model VARCHAR(128)", "contact VARCHAR(512)", "category VARCHAR(128)",
                   "disabled BOOLEAN DEFAULT FALSE"],
    "tc_positions": ["id INT PRIMARY KEY", "protocol VARCHAR(128)", "deviceid INT NOT NULL",
                     "servertime TIMESTAMP NOT NULL", "devicetime TIMESTAMP NOT NULL", "fixtime TIMESTAMP NOT NULL",
                     "valid BOOLEAN NOT NULL", "latitude DOUBLE PRECISION NOT NULL",
                     "longitude DOUBLE PRECISION NOT NULL", "altitude FLOAT NOT NULL", "speed FLOAT NOT NULL",
                     "course FLOAT NOT NULL", "address VARCHAR(512)", "attributes VARCHAR(4000)",
                     "accuracy DOUBLE PRECISION NOT NULL DEFAULT 0", "network VARCHAR(4000)"],
    "tc_events": ["id INT PRIMARY KEY", "type VARCHAR(128) NOT NULL", "eventtime TIMESTAMP NOT NULL",
                  "deviceid INT", "positionid INT", "geofenceid INT", "attributes VARCHAR(4000)", "maintenanceid INT"],
    "tc_geofences": ["id INT PRIMARY KEY", "name VARCHAR(128) NOT NULL", "description VARCHAR(128)",
                     "area VARCHAR(4096) NOT NULL", "attributes VARCHAR(4000)", "calendarid INT"],
    "tc_commands_queue": ["id INT PRIMARY KEY", "deviceid INT NOT NULL", "type VARCHAR(128) NOT NULL",
                          "textchannel BOOLEAN NOT NULL DEFAULT FALSE", "attributes VARCHAR(4000) NOT NULL"],
}

GEOFENCES = [
    (1, "depot", "CIRCLE (52.52 13.405, 500)", "{}"),
    (2, "yard", "POLYGON ((52.50 13.40, 52.50 13.42, 52.51 13.42, 52.51 13.40, 52.50 13.40))",
     '{"speedLimit": 16.198704}'),
    (3, "route 1", "LINESTRING (52.50 13.40, 52.55 13.45, 52.60 13.40)", '{"polylineDistance": 50}'),
    (4, "odd", "RECTANGLE (1 2, 3 4)", "{}"),
]
COMMANDS = [
    (1, 1, "positionPeriodic", '{"frequency": 60}'),
    (2, 3, "engineStop", "{}"),
    (3, 2, "custom", '{"data": "STATUS#"}'),
    (4, 4, "engineResume", "{}"),
]


@dataclass
class TraccarData:
    url: str
    positions: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)


def _naive(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(tzinfo=None)


def make_rows() -> TraccarData:
    """The made-up content: positions of each device every 30 s, interleaved in id order as a server
    receives them, with attributes; events referring to them."""
    data = TraccarData("")
    streams = []
    for tid, _name, _ident, protocol, count in DEVICES:
        for i in range(count):
            streams.append((i, tid, protocol))
    streams.sort(key=lambda s: (s[0], s[1]))
    for pid, (i, tid, protocol) in enumerate(streams, start=1):
        when = T0 + timedelta(seconds=30 * i + tid)
        angle = i / 50.0
        attrs: dict[str, Any] = {"ignition": i % 200 < 150, "sat": 4 + i % 9, "power": round(12.0 + (i % 7) / 10, 1),
                                 "odometer": 1000 * i + tid, "batteryLevel": 100 - i % 50, "io1": i % 2,
                                 "raw": "2a48512c"}
        if i % 97 == 5:
            attrs["alarm"] = "sos"
        if i % 113 == 7:
            attrs["alarm"] = "powerCut,overspeed"
        data.positions.append({
            "id": pid, "protocol": protocol, "deviceid": tid, "servertime": _naive(when + timedelta(seconds=2)),
            "devicetime": _naive(when), "fixtime": _naive(when), "valid": i % 41 != 3,
            "latitude": 52.5 + 0.01 * math.sin(angle) + tid * 0.001, "longitude": 13.4 + 0.01 * math.cos(angle),
            "altitude": float(30 + i % 20), "speed": float((i * 7) % 65) + 0.25, "course": float((i * 13) % 360),
            "address": "Alexanderplatz 1, Berlin" if i % 300 == 0 else None, "attributes": json.dumps(attrs),
            "accuracy": 0.0 if i % 5 else 12.5, "network": None,
        })
    kinds = ["ignitionOn", "ignitionOff", "geofenceEnter", "alarm", "deviceOnline", "commandResult", "textMessage",
             "maintenance"]
    for eid in range(1, 61):
        tid = (1, 2, 3, 4)[eid % 4]
        kind = kinds[eid % len(kinds)]
        attrs = {"commandResult": {"result": f"S20,DONE {eid}"}, "textMessage": {"message": f"hello {eid}"},
                 "alarm": {"alarm": "sos"}}.get(kind, {})
        data.events.append({"id": eid, "type": kind, "eventtime": _naive(T0 + timedelta(minutes=eid)),
                            "deviceid": tid, "positionid": None, "geofenceid": None,
                            "attributes": json.dumps(attrs), "maintenanceid": None})
    return data


def _devices() -> list[dict[str, Any]]:
    return [{"id": tid, "name": name, "uniqueid": ident, "lastupdate": None, "positionid": None, "groupid": None,
             "attributes": "{}", "phone": "+4915100000" + str(tid) if tid == 1 else None,
             "model": "ST-901" if protocol == "h02" else None, "contact": None, "category": None, "disabled": False}
            for tid, name, ident, protocol, _n in DEVICES]


def _tables(data: TraccarData) -> dict[str, list[dict[str, Any]]]:
    return {
        "tc_devices": _devices(),
        "tc_positions": data.positions,
        "tc_events": data.events,
        "tc_geofences": [{"id": i, "name": n, "description": None, "area": a, "attributes": at, "calendarid": None}
                         for i, n, a, at in GEOFENCES],
        "tc_commands_queue": [{"id": i, "deviceid": d, "type": t, "textchannel": False, "attributes": a}
                              for i, d, t, a in COMMANDS],
    }


async def _fill_postgres(url: str, tables: dict[str, list[dict[str, Any]]]) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        for name, columns in SCHEMA.items():
            await conn.execute(f"CREATE TABLE {name} ({', '.join(columns)})")
            rows = tables[name]
            if rows:
                keys = list(rows[0])
                marks = ", ".join(f"${i}" for i in range(1, len(keys) + 1))
                await conn.executemany(f"INSERT INTO {name} ({', '.join(keys)}) VALUES ({marks})",
                                       [tuple(r[k] for k in keys) for r in rows])
    finally:
        await conn.close()


@contextlib.contextmanager
def postgres_traccar() -> Iterator[TraccarData]:
    import asyncpg

    name = f"traccar_{uuid.uuid4().hex[:12]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_BASE)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    # A schema of its own in the test database (CREATE/DROP DATABASE wait for checkpoints), reached
    # through the URL's search_path option like any PostgreSQL client can.
    asyncio.run(admin(f"CREATE SCHEMA {name}"))
    url = f"{PG_BASE}{'&' if '?' in PG_BASE else '?'}options=-c%20search_path%3D{name}"
    try:
        data = make_rows()
        data.url = url
        asyncio.run(_fill_postgres(url, _tables(data)))
        yield data
    finally:
        asyncio.run(admin(f"DROP SCHEMA IF EXISTS {name} CASCADE"))


@contextlib.contextmanager
def mysql_traccar() -> Iterator[TraccarData]:
    import pymysql

    name = f"traccar_{uuid.uuid4().hex[:12]}"
    conn = pymysql.connect(host=MYSQL_HOST, port=MYSQL_PORT, user=MYSQL_USER, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {name}")
            cur.execute(f"USE {name}")
            data = make_rows()
            data.url = f"mysql://{MYSQL_USER}@{MYSQL_HOST}:{MYSQL_PORT}/{name}"
            for table, columns in SCHEMA.items():
                mysql_columns = [c.replace("DOUBLE PRECISION", "DOUBLE") for c in columns]
                cur.execute(f"CREATE TABLE {table} ({', '.join(mysql_columns)})")
                rows = _tables(data)[table]
                if rows:
                    keys = list(rows[0])
                    cur.executemany(f"INSERT INTO {table} ({', '.join(keys)}) VALUES "
                                    f"({', '.join(['%s'] * len(keys))})", [tuple(r[k] for k in keys) for r in rows])
        yield data
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.close()
