"""Upgrading a database written by release 0.1 (before schema migrations existed).

``tests/data/release-0.1.sqlite`` was written by that release: device 1, h02 "4210051415" named
"truck 1", with 20 V1 messages at 1700000000 + 30 i (speed 10 + i); device 2, jt808 "013912345678"
named "van 2", with one 0x0200 message; a packet, a log, two idents ("999" unknown), a queued
interval.set command and kv entries. Every test works on a copy.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from sinogate.jsonenc import RECEPTION_FIELDS, device_digest, loads
from sinogate.store.base import IngestBatch, StoreError, TimeQuery
from sinogate.store.sqlite import SQLiteStore
from sinogate.store.sqlite_schema import MIGRATIONS, SCHEMA_VERSION

T = TypeVar("T")

RELEASE_0_1 = Path(__file__).resolve().parent.parent / "data" / "release-0.1.sqlite"
T0 = 1_700_000_000.0

# What release 0.1 stored for an h02 position: the device's content first, then what the server
# added on reception.
DEVICE_CONTENT = (
    "ident", "message.type", "timestamp", "position.latitude", "position.longitude", "position.speed",
    "position.valid",
)
RECEPTION = (
    "server.timestamp", "peer", "channel.id", "protocol.id", "protocol.name", "transport", "device.id",
    "device.name", "device.type.id",
)


@pytest.fixture
def old_db(tmp_path: Path) -> Path:
    path = tmp_path / "sinogate.sqlite"
    shutil.copyfile(RELEASE_0_1, path)
    return path


def with_store(path: Path, body: Callable[[SQLiteStore], Awaitable[T]]) -> T:
    async def main() -> T:
        store = SQLiteStore(path)
        await store.open()
        try:
            return await body(store)
        finally:
            await store.close()

    return asyncio.run(main())


def raw_rows(path: Path, sql: str) -> list[dict[str, Any]]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute(sql)]
    finally:
        db.close()


def test_release_0_1_opens_migrated_with_every_record_intact(old_db: Path) -> None:
    devices_before = raw_rows(RELEASE_0_1, "SELECT * FROM devices ORDER BY id")
    messages_before = raw_rows(RELEASE_0_1, "SELECT data FROM messages ORDER BY ts, id")

    async def body(store: SQLiteStore) -> None:
        assert store.migrated == [1, 2, 3, 4] == [m.version for m in MIGRATIONS]

        devices = await store.list_devices()
        assert [(d["id"], d["protocol"], d["ident"], d["name"]) for d in devices] == [
            (1, "h02", "4210051415", "truck 1"), (2, "jt808", "013912345678", "van 2"),
        ]
        for device, row in zip(devices, devices_before, strict=True):
            assert device == {
                **row, "settings": loads(row["settings"]), "enabled": bool(row["enabled"]),
                "connected": bool(row["connected"]),
            }
        assert devices[0]["settings"] == {"time_offset": 0}
        assert devices[0]["enabled"] is True and devices[0]["connected"] is False

        truck = await store.messages([1], TimeQuery())
        assert [m["timestamp"] for m in truck] == [T0 + 30 * i for i in range(20)]
        assert [m["position.speed"] for m in truck] == [10.0 + i for i in range(20)]
        assert {m["device.id"] for m in truck} == {1} and {m["message.type"] for m in truck} == {"V1"}
        van = await store.messages([2], TimeQuery())
        assert [(m["message.type"], m["timestamp"], m["battery.voltage"]) for m in van] == [("0x0200", T0 + 500, 4.1)]
        raw = await store.messages_raw(None, TimeQuery())
        assert raw == [r["data"] for r in messages_before]
        assert [m async for m in store.iter_messages(1, TimeQuery(), chunk=7)] == truck

        assert await store.packets(TimeQuery()) == [{
            "id": 1, "timestamp": T0 + 1, "type": 2, "conn": 7, "protocol": "h02", "peer": "127.0.0.1:40000",
            "ident": "4210051415", "device_id": 1, "data": b"*HQ,4210051415,V1#",
        }]
        assert await store.logs(TimeQuery()) == [{
            "id": 1, "timestamp": T0 + 0.5, "event": "connect", "protocol": "h02", "conn": 7,
            "ident": "4210051415", "device_id": 1, "peer": "127.0.0.1:40000", "transport": "tcp", "recv": 0,
            "send": 0, "msgs": 0, "duration": None, "reason": None,
        }]
        assert await store.idents() == [
            {"protocol": "h02", "ident": "999", "first_seen": T0 + 0.7, "last_seen": T0 + 0.7,
             "peer": "127.0.0.1:40002", "sample": b"*HQ,999".hex(), "device_id": None},
            {"protocol": "h02", "ident": "4210051415", "first_seen": T0 + 0.5, "last_seen": T0 + 0.5,
             "peer": "127.0.0.1:40000", "sample": b"*HQ".hex(), "device_id": 1},
        ]

        commands = await store.commands(statuses=("queued",))
        assert len(commands) == 1
        command = commands[0]
        assert command == await store.get_command(command["id"])
        assert {k: command[k] for k in ("device_id", "ident", "protocol", "name", "properties", "status")} == {
            "device_id": 1, "ident": "4210051415", "protocol": "h02", "name": "interval.set",
            "properties": {"seconds": 30}, "status": "queued",
        }
        assert (command["expire"], command["attempts"], command["max_attempts"]) == (1_800_000_000.0, 0, 10)
        assert (command["realtime"], command["executed"], command["payload"]) == (False, None, None)

        assert await store.kv_list("tokens") == {"abc": {"read_only": True, "devices": None, "name": "viewer"}}
        assert await store.kv_list("settings") == {"1:interval": {"value": 30, "updated": T0 + 100}}
        assert await store.load_states() == {}  # the table version 2 added, empty

        assert (await store.telemetry(1, ["position.speed"])) == {"position.speed": {"value": 29.0, "ts": T0 + 570}}
        assert (await store.telemetry(2, ["battery.voltage"])) == {"battery.voltage": {"value": 4.1, "ts": T0 + 500}}

        # The new release writes into the old tables.
        await store.save_states({1: {"trip": None}})
        assert await store.load_states() == {1: {"trip": None}}

    with_store(old_db, body)


def test_messages_of_release_0_1_keep_deduplicating(old_db: Path) -> None:
    stored = raw_rows(RELEASE_0_1, "SELECT ts, digest, data FROM messages WHERE device_id = 1 ORDER BY ts")
    last = loads(stored[-1]["data"])
    assert tuple(last) == DEVICE_CONTENT + RECEPTION
    assert set(RECEPTION) <= RECEPTION_FIELDS and not set(DEVICE_CONTENT) & RECEPTION_FIELDS
    content = {k: last[k] for k in DEVICE_CONTENT}
    # The old release's digest is the device digest of the content: the continuity the new one relies on.
    assert [r["digest"] for r in stored] == [device_digest({k: loads(r["data"])[k] for k in DEVICE_CONTENT})
                                             for r in stored]

    def received_again(device_content: dict[str, Any], server_ts: float) -> dict[str, Any]:
        return {
            **device_content, "server.timestamp": server_ts, "peer": "127.0.0.1:40009", "channel.id": 1,
            "protocol.id": 1, "protocol.name": "h02", "transport": "tcp", "device.id": 1, "device.name": "truck 1",
            "device.type.id": 0,
        }

    async def body(store: SQLiteStore) -> None:
        again = received_again(content, 1_800_000_000.0)
        await store.ingest(IngestBatch(messages=[again], digests=[device_digest(content)]))
        await store.ingest(IngestBatch(messages=[received_again(content, 1_800_000_001.0)]))  # the store digests
        truck = await store.messages([1], TimeQuery())
        assert len(truck) == 20
        assert truck[-1] == last  # the first reception stays
        # Other content at the same time is another message: dedup is not refusing everything.
        faster = {**content, "position.speed": 30.0}
        batch = IngestBatch(messages=[received_again(faster, 1_800_000_002.0)], digests=[device_digest(faster)])
        await store.ingest(batch)
        truck = await store.messages([1], TimeQuery())
        assert [m["position.speed"] for m in truck[-2:]] == [29.0, 30.0]

    with_store(old_db, body)

    async def reopened(store: SQLiteStore) -> None:
        assert store.migrated == []
        assert len(await store.messages([1], TimeQuery())) == 21

    with_store(old_db, reopened)


def test_reopening_a_migrated_database_applies_nothing(old_db: Path) -> None:
    async def first(store: SQLiteStore) -> None:
        assert store.migrated == [1, 2, 3, 4]

    async def second(store: SQLiteStore) -> None:
        assert store.migrated == []
        assert len(await store.list_devices()) == 2

    with_store(old_db, first)
    with_store(old_db, second)
    versions = raw_rows(old_db, "SELECT version FROM migrations ORDER BY version")
    assert [v["version"] for v in versions] == [m.version for m in MIGRATIONS]


def test_a_new_database_gets_every_migration(tmp_path: Path) -> None:
    async def body(store: SQLiteStore) -> None:
        assert store.migrated == [m.version for m in MIGRATIONS]
        assert await store.list_devices() == []

    with_store(tmp_path / "new.sqlite", body)


def test_a_database_from_a_newer_release_is_refused(old_db: Path) -> None:
    with_store(old_db, lambda store: asyncio.sleep(0))
    db = sqlite3.connect(old_db)
    with db:
        db.execute("INSERT INTO migrations(version, name, applied) VALUES (?, 'from the future', 0)",
                   (SCHEMA_VERSION + 1,))
    db.close()

    async def main() -> None:
        store = SQLiteStore(old_db)
        try:
            with pytest.raises(StoreError, match="schema version"):
                await store.open()
        finally:
            await store.close()

    asyncio.run(main())
    # Refused before touching anything: the record of the newer version is still there.
    versions = raw_rows(old_db, "SELECT version FROM migrations ORDER BY version")
    assert [v["version"] for v in versions] == [*(m.version for m in MIGRATIONS), SCHEMA_VERSION + 1]
