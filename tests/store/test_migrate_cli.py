"""``sinogate migrate``: a release-0.1 SQLite store copied into PostgreSQL serves exactly what the
SQLite store serves, keeps deduplicating, hands out new ids past the copied ones, and every
failure is one line and a non-zero exit."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from typer.testing import CliRunner

from sinogate.cli import app
from sinogate.jsonenc import RECEPTION_FIELDS, device_digest, loads
from sinogate.store.base import IngestBatch, Store, TimeQuery
from sinogate.store.postgres import PostgresStore
from sinogate.store.sqlite import SQLiteStore
from tests.store.pg import schema_url

T = TypeVar("T")

RELEASE_0_1 = Path(__file__).resolve().parent.parent / "data" / "release-0.1.sqlite"


def copy_release(directory: Path) -> Path:
    """The release-0.1 file with its WAL, in a directory of its own (every test works on copies)."""
    directory.mkdir(parents=True)
    for suffix in ("", "-wal", "-shm"):
        source = RELEASE_0_1.with_name(RELEASE_0_1.name + suffix)
        if source.exists():
            shutil.copyfile(source, directory / source.name)
    return directory / RELEASE_0_1.name


def with_store(store: Store, body: Callable[[Store], Awaitable[T]]) -> T:
    async def main() -> T:
        await store.open()
        try:
            return await body(store)
        finally:
            await store.close()

    return asyncio.run(main())


async def everything(s: Store) -> dict[str, Any]:
    """Everything a store serves, through the contract."""
    devices = await s.list_devices()
    return {
        "devices": devices,
        "messages": await s.messages_raw(None, TimeQuery()),
        "telemetry": {d["id"]: await s.telemetry(d["id"]) for d in devices},
        "packets": await s.packets(TimeQuery()),
        "logs": await s.logs(TimeQuery()),
        "idents": await s.idents(),
        "events": await s.events(None, TimeQuery()),
        "intervals": await s.intervals(None, None, TimeQuery()),
        "commands": await s.commands(),
        "kv": {ns: await s.kv_list(ns) for ns in ("tokens", "settings", "store")},
        "states": await s.load_states(),
    }


def migrate(source: Path, url: str) -> Any:
    return CliRunner().invoke(app, ["migrate", "--from", f"sqlite:///{source}", "--to", url])


def one_line_error(result: Any) -> str:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    return str(lines[0])


def test_release_0_1_copied_serves_what_sqlite_serves(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    source = copy_release(tmp_path / "a")
    digest_before = hashlib.sha256(source.read_bytes()).hexdigest()
    url = schema_url(request)

    result = migrate(source, url)
    assert result.exit_code == 0, result.output
    for table in ("devices", "messages", "telemetry", "packets", "logs", "idents", "commands", "kv"):
        assert any(line.split()[1:2] == [table] and " ok " in line for line in result.stdout.splitlines()), table
    assert "MISMATCH" not in result.stdout
    assert hashlib.sha256(source.read_bytes()).hexdigest() == digest_before  # only read

    expected = with_store(SQLiteStore(copy_release(tmp_path / "b")), everything)
    copied = with_store(PostgresStore(url), everything)
    assert expected["kv"].pop("store") == {"telemetry_watermark": 1_700_000_571.0}
    assert copied["kv"].pop("store") == {}  # the SQLite store's own bookkeeping stays behind
    assert copied == expected
    assert len(copied["messages"]) == 21 and [d["id"] for d in copied["devices"]] == [1, 2]
    assert copied["telemetry"][1]["position.speed"] == {"value": 29.0, "ts": 1_700_000_570.0}

    async def goes_on(s: Store) -> None:
        # A frame received again after the move is still a duplicate (digests came along as they were).
        last = loads((await s.messages_raw([1], TimeQuery(reverse=True, count=1)))[0])
        content = {k: v for k, v in last.items() if k not in RECEPTION_FIELDS}
        again = {**last, "server.timestamp": 1_800_000_000.0}
        await s.ingest(IngestBatch(messages=[again], digests=[device_digest(content)]))
        assert len(await s.messages([1], TimeQuery())) == 20
        # New ids come after the copied ones.
        assert (await s.create_device({"ident": "77", "protocol": "h02"}))["id"] == 3
        assert (await s.create_command({"device_id": 1, "name": "x", "properties": {}}))["id"] == 2

    with_store(PostgresStore(url), goes_on)

    # Into the same target again: refused, nothing doubled.
    error = one_line_error(migrate(source, url))
    assert "already holds data" in error


def test_errors_are_one_line(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    url = schema_url(request)
    assert "no SQLite file" in one_line_error(migrate(tmp_path / "missing.sqlite", url))
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database at all" * 100)
    assert "junk.sqlite" in one_line_error(migrate(junk, url))
    source = copy_release(tmp_path / "a")
    assert "--to must be postgresql://" in one_line_error(migrate(source, "mysql://x@y/z"))
    bad_from = CliRunner().invoke(app, ["migrate", "--from", "data/x.sqlite", "--to", url])
    assert "--from must be sqlite:///" in one_line_error(bad_from)
    assert "cannot connect" in one_line_error(migrate(source, "postgresql://postgres@127.0.0.1:1/test"))
