"""The real gateway on PostgreSQL: H02 frames over a socket are stored once (a re-sent frame is
deduplicated), telemetry and ``/gw/devices/{id}/messages`` come back through the API, a command
goes to the device and its answer closes it, and all of it is still there after a restart."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from sinogate.config import Config
from sinogate.runtime import open_store
from sinogate.store.postgres import PostgresStore, split_url
from tests.commands.devices import H02Device, api, command_time, device_id, in_thread, joined, wait_for
from tests.server.frames import h02_v1
from tests.store.pg import schema_url

pytestmark = pytest.mark.timeout(90)

IDENT = "4210051415"


def rows(url: str, query: str) -> list[tuple[Any, ...]]:
    dsn, schema = split_url(url)

    async def main() -> list[tuple[Any, ...]]:
        conn = await asyncpg.connect(dsn, server_settings={"search_path": f'"{schema}"'})
        try:
            return [tuple(r) for r in await conn.fetch(query)]
        finally:
            await conn.close()

    return asyncio.run(main())


def messages(server: Any, device: int) -> list[dict[str, Any]]:
    resp = api(server, "GET", f"/gw/devices/{device}/messages")
    assert resp.status_code == 200, resp.text
    return list(resp.json()["result"])


def telemetry(server: Any, device: int) -> dict[str, Any]:
    resp = api(server, "GET", f"/gw/devices/{device}/telemetry/all")
    assert resp.status_code == 200, resp.text
    return dict(resp.json()["result"][0]["telemetry"])


def test_the_store_url_picks_postgresql(tmp_path: Path) -> None:
    for url in ("postgresql://postgres@127.0.0.1/test", "postgres://postgres@127.0.0.1/test?schema=x"):
        assert isinstance(open_store(Config(data_dir=tmp_path, store_url=url)), PostgresStore)


def test_gateway_on_postgresql_end_to_end(gateway_factory: Any, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    url = schema_url(request)
    now = int(time.time())
    t1, t2, t3 = now - 180, now - 120, now - 60
    with gateway_factory(tmp_path / "data", store_url=url) as server:
        assert isinstance(server.runtime.store, PostgresStore)
        dev = H02Device(server.h02_port, IDENT)
        try:
            dev.send(h02_v1(IDENT, t1, 22.5, 114.0, knots=5.0))
            d = device_id(server, "h02", IDENT)
            dev.send(h02_v1(IDENT, t2, 22.5005, 114.0005, knots=10.0))
            dev.send(h02_v1(IDENT, t1, 22.5, 114.0, knots=5.0))  # re-sent (a lost ack): stored once
            dev.send(h02_v1(IDENT, t3, 22.501, 114.001, knots=20.0))
            stored = wait_for(lambda: len(messages(server, d)) >= 3 and messages(server, d), timeout=10)
            assert [m["timestamp"] for m in stored] == [t1, t2, t3]  # the duplicate came before t3: skipped
            assert all(m["device.id"] == d and m["ident"] == IDENT for m in stored)
            assert stored[2]["position.latitude"] == pytest.approx(22.501, abs=1e-5)
            assert stored[2]["position.speed"] == pytest.approx(37.04, abs=0.01)

            values = telemetry(server, d)
            assert values["position.latitude"]["value"] == pytest.approx(22.501, abs=1e-5)
            assert values["position.latitude"]["ts"] == t3
            assert values["timestamp"] == {"value": t3, "ts": t3}

            # A late frame fills in nothing newer.
            dev.send(h02_v1(IDENT, t1 - 60, 10.0, 10.0, knots=1.0))
            wait_for(lambda: len(messages(server, d)) == 4, timeout=10)
            assert telemetry(server, d)["position.latitude"]["value"] == pytest.approx(22.501, abs=1e-5)

            # A command round trip: API → device → its answer → the command's result.
            box = in_thread(api, server, "POST", f"/gw/devices/{d}/commands",
                            json=[{"name": "interval.set", "properties": {"seconds": 30}, "timeout": 10}])
            frame = dev.read_command()
            assert re.fullmatch(rb"\*HQ,4210051415,S71,\d{6},22,30#", frame), frame
            dev.send(f"*HQ,{IDENT},V4,S71,{command_time(frame)},22,30#")
            resp = joined(box)
            assert resp.status_code == 200, resp.text
            item = resp.json()["result"][0]
            assert (item["status"], item["executed"], item["device_id"]) == ("processed", True, d)
            assert item["response"] == f"S71,{command_time(frame)},22,30"
            assert item["reply"]["message.type"] == "V4"
            command = item["id"]
            before = messages(server, d)
            assert len(before) == 5  # the V4 answer is a message too
        finally:
            dev.close()

    # In PostgreSQL, where it belongs: the month's partition, the command row, the telemetry row.
    month = time.strftime("messages_y%Ym%m", time.gmtime(t3))
    assert (month,) in rows(url, "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                                 " WHERE i.inhparent = 'messages'::regclass")
    assert rows(url, "SELECT count(*) FROM messages") == [(5,)]
    assert rows(url, f"SELECT status, executed FROM commands WHERE id = {int(command)}") == [("processed", True)]
    assert rows(url, f"SELECT count(*) FROM telemetry WHERE device_id = {int(d)}") == [(1,)]

    # A restart on the same database: everything is served as before.
    with gateway_factory(tmp_path / "data", store_url=url) as server:
        assert messages(server, d) == before
        assert telemetry(server, d)["position.latitude"]["value"] == pytest.approx(22.501, abs=1e-5)
        result = api(server, "GET", f"/gw/devices/{d}/commands-result").json()["result"]
        assert [(c["id"], c["status"]) for c in result] == [(command, "processed")]
