"""Message plugins without a server: each type, ordering, validate, previous(), errors."""

from __future__ import annotations

import asyncio
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from sinogate.analytics.address import AddressBook, offline_address
from sinogate.analytics.cells import CellDatabase, CellImportError
from sinogate.analytics.plugins import PluginError, PluginRunner, PluginSet, compile_plugin
from sinogate.pipeline.base import Context
from sinogate.pipeline.plugins import Plugins
from sinogate.pipeline.runner import Pipeline
from sinogate.store.memory import MemoryStore

DEVICE: dict[str, Any] = {"id": 4, "name": "truck", "ident": "77", "protocol": "h02", "settings": {}}
CELLS_CSV = (
    "radio,mcc,net,area,cell,unit,lon,lat,range,samples,changeable,created,updated,averageSignal\n"
    "GSM,262,1,1234,5678,0,13.4050,52.5200,800,12,1,0,0,0\n"
    "LTE,460,0,9520,3671,0,113.9648,22.5863,1500,5,1,0,0,0\n"
)


class Harness:
    def __init__(self, tmp_path: Path, *definitions: dict[str, Any], cells: CellDatabase | None = None,
                 addresses: AddressBook | None = None) -> None:
        self.store = MemoryStore()
        asyncio.run(self.store.open())
        self.plugins = PluginSet(self.store)
        self.created = [asyncio.run(self.plugins.create(d)) for d in definitions]
        self.pipeline = Pipeline([Plugins({}, self.plugins, PluginRunner(cells, addresses))])
        self.states: dict[str, Any] = {}

    def run(self, *messages: dict[str, Any], device: dict[str, Any] = DEVICE) -> list[dict[str, Any]]:
        ctx = Context("h02", "tcp", "p", 1.0, device, 1, 1, self.states)
        return self.pipeline.run([dict(m) for m in messages], ctx)


def test_expression_mph_and_a_low_battery_flag(tmp_path: Path) -> None:
    h = Harness(tmp_path,
                {"type": "expression", "name": "speed.mph", "expression": "round(position.speed * 0.621371, 1)",
                 "unit": "mph"},
                {"type": "expression", "name": "battery.low", "expression": "battery.level < 20"})
    [a, b] = h.run({"position.speed": 100.0, "battery.level": 80}, {"position.speed": 50.0})
    assert a["speed.mph"] == 62.1 and a["battery.low"] is False
    assert b["speed.mph"] == 31.1 and "battery.low" not in b  # no battery.level: skipped, counted
    status = h.plugins.get(h.created[1].id).status()  # type: ignore[union-attr]
    assert status["applied"] == 1 and status["errors"] == 1 and "no value" in status["last_error"]


def test_previous_sees_the_devices_last_value_and_order_decides(tmp_path: Path) -> None:
    h = Harness(tmp_path,
                {"type": "expression", "name": "fuel.drop", "expression": "previous('fuel.level') - fuel.level",
                 "order": 2},
                {"type": "expression", "name": "fuel.level", "expression": "adc.1 * 10", "order": 1})
    out = h.run({"adc.1": 5.0}, {"adc.1": 4.5}, {"adc.1": 4.6})
    assert [m["fuel.level"] for m in out] == [50.0, 45.0, 46.0]
    assert ["fuel.drop" in out[0], out[1]["fuel.drop"], out[2]["fuel.drop"]] == [False, 5.0, pytest.approx(-1.0)]


def test_validate_erase_and_carry_forward(tmp_path: Path) -> None:
    h = Harness(tmp_path,
                {"type": "carry-forward", "params": ["battery.level"]},
                {"type": "erase", "params": ["gsm.*", "ident"], "validate": "message.type == 'V1'"})
    link, v1, v4 = h.run({"message.type": "LINK", "battery.level": 60, "gsm.lac": 1},
                         {"message.type": "V1", "ident": "77", "gsm.lac": 2, "gsm.cellid": 3},
                         {"message.type": "V4", "gsm.lac": 4})
    assert link == {"message.type": "LINK", "battery.level": 60, "gsm.lac": 1}
    assert v1 == {"message.type": "V1", "ident": "77", "battery.level": 60}  # ident is never erased
    assert v4 == {"message.type": "V4", "gsm.lac": 4, "battery.level": 60}


def test_a_plugin_for_some_devices_only(tmp_path: Path) -> None:
    h = Harness(tmp_path, {"type": "expression", "name": "x", "expression": "1", "devices": "name=truck*"})
    other = {**DEVICE, "id": 5, "name": "van"}
    assert h.run({"a": 1})[0]["x"] == 1
    assert "x" not in h.run({"a": 1}, device=other)[0]


@pytest.mark.parametrize(("definition", "reason"), [
    ({"type": "nope"}, "type must be one of"),
    ({"type": "expression", "name": "x", "expression": "1 +"}, "bad expression"),
    ({"type": "expression", "name": "ident", "expression": "1"}, "name must be"),
    ({"type": "erase", "params": []}, "non-empty list"),
    ({"type": "expression", "name": "x", "expression": "1", "validate": "(("}, "bad validate"),
    ({"type": "address", "url": "ftp://x"}, r"http\(s\) URL"),
    ({"type": "erase", "params": ["a"], "devices": "{name==}"}, "bad devices selector"),
])
def test_bad_definitions_say_why(definition: dict[str, Any], reason: str) -> None:
    with pytest.raises(PluginError, match=reason):
        compile_plugin(1, definition)


def test_lbs_from_an_imported_cell_file(tmp_path: Path) -> None:
    source = tmp_path / "cells.csv"
    source.write_text(CELLS_CSV)
    cells = CellDatabase(tmp_path / "cells.sqlite")
    assert cells.locate(262, 1, 1234, 5678) is None  # nothing imported yet
    assert cells.import_csv(source) == 2
    h = Harness(tmp_path, {"type": "lbs"}, cells=cells)
    no_fix = {"position.valid": False, "gsm.mcc": 262, "gsm.mnc": 1, "gsm.lac": 1234, "gsm.cellid": 5678}
    gps = {"position.valid": True, "position.latitude": 1.0, "position.longitude": 2.0, "gsm.mcc": 262,
           "gsm.mnc": 1, "gsm.lac": 1234, "gsm.cellid": 5678}
    unknown = {**no_fix, "gsm.cellid": 1}
    a, b, c = h.run(no_fix, gps, unknown)
    assert (a["position.latitude"], a["position.longitude"], a["position.accuracy"], a["position.source"]) == (
        52.52, 13.405, 800.0, "lbs")
    assert a["position.valid"] is False  # analytics keep ignoring a cell position
    assert b["position.latitude"] == 1.0 and "position.source" not in b
    assert "position.latitude" not in c
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(CellImportError, match="no column"):
        cells.import_csv(bad)


def test_offline_address() -> None:
    place = offline_address(52.52, 13.405)
    assert place["address.country_code"] == "DE" and place["address.country"] == "Germany"
    assert place["position.address"].endswith("Germany")


class _Nominatim(BaseHTTPRequestHandler):
    hits: list[str] = []  # noqa: RUF012 - the test reads what the fake service saw

    def do_GET(self) -> None:
        _Nominatim.hits.append(self.path)
        body = (b'{"display_name": "Unter den Linden 1, 10117 Berlin, Germany", "address": {"road": "Unter den'
                b' Linden", "house_number": "1", "city": "Berlin", "country": "Germany", "country_code": "de"}}')
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_street_addresses_come_from_the_cache_and_never_wait_for_the_network(tmp_path: Path) -> None:
    server = HTTPServer(("127.0.0.1", 0), _Nominatim)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    book = AddressBook(min_interval=0.0)
    h = Harness(tmp_path, {"type": "address", "url": url}, addresses=book)

    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        worker = asyncio.create_task(book.run())
        await asyncio.sleep(0)
        first = h.run({"position.latitude": 52.51704, "position.longitude": 13.38886})[0]
        for _ in range(100):
            if book.lookups:
                break
            await asyncio.sleep(0.02)
        second = h.run({"position.latitude": 52.51704, "position.longitude": 13.38886})[0]
        worker.cancel()
        return first, second

    first, second = asyncio.run(scenario())
    server.shutdown()
    assert first["address.country_code"] == "DE" and "address.road" not in first  # offline, city level
    assert second["position.address"] == "Unter den Linden 1, 10117 Berlin, Germany"
    assert second["address.road"] == "Unter den Linden" and second["address.country_code"] == "DE"
    assert len(_Nominatim.hits) == 1 and "lat=52.517" in _Nominatim.hits[0]
