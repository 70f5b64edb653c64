"""Command knowledge learned from traffic: a simulated Sinotrack that ignores ``S71`` but answers
``RCONF`` and the ``805`` text is shown as such in the API and the CLI, and per model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from sinogate.commands.support import command_code, model_from_text, verdict
from tests.commands.devices import SinotrackUnit, api, device_id, wait_for

pytestmark = pytest.mark.timeout(90)

CXZT = "ST906(70SACD)_TQ_V_2.0 2024/06/07 ID:{ident} IP:1.2.3.4 5013 UT:30,30,300 VOLT:12.9V GSM:26"


def queue(server: Any, dev: int, name: str, **props: Any) -> dict[str, Any]:
    resp = api(server, "POST", f"/gw/devices/{dev}/commands-queue", json=[{"name": name, "properties": props}])
    assert resp.status_code == 200, resp.text
    return resp.json()["result"][0]  # type: ignore[no-any-return]


def support(server: Any, dev: int) -> dict[str, Any]:
    resp = api(server, "GET", f"/gw/devices/{dev}/command-support")
    assert resp.status_code == 200, resp.text
    return resp.json()["result"][0]  # type: ignore[no-any-return]


def entry(server: Any, dev: int, key: str) -> dict[str, Any]:
    return next((e for e in support(server, dev)["commands"] if e["key"] == key), {})


def processed(server: Any, dev: int, command_id: int) -> bool:
    got = api(server, "GET", f"/gw/devices/{dev}/commands-result/{command_id}").json()["result"]
    return bool(got) and got[0]["status"] == "processed"


def unit(server: Any, ident: str) -> tuple[SinotrackUnit, int]:
    device = SinotrackUnit(server.h02_port, ident, ignores=frozenset({"S71"}),
                           texts={"RCONF": CXZT.format(ident=ident)}).start()
    return device, device_id(server, "h02", ident)


def ignored_s71(server: Any, dev: int, times: int) -> None:
    for n in range(1, times + 1):
        queue(server, dev, "interval.set", seconds=30)
        wait_for(lambda n=n: entry(server, dev, "interval.set S71").get("ignored") == n, timeout=10)


def test_a_unit_that_ignores_s71_but_answers_rconf(gateway_server: Any) -> None:
    server = gateway_server
    server.runtime.support.ignore_after = 0.8  # seconds without an answer while positions keep coming
    first, dev = unit(server, "4210051415")
    second, dev2 = unit(server, "4210051416")
    try:
        ignored_s71(server, dev, 3)
        cmd = queue(server, dev, "config.query")
        wait_for(lambda: processed(server, dev, cmd["id"]), timeout=10)
        cmd = queue(server, dev, "interval.acc_on.set", seconds=30)
        wait_for(lambda: processed(server, dev, cmd["id"]), timeout=10)

        learned = support(server, dev)
        assert learned["model"] == "ST906" and learned["firmware"].startswith("ST906(70SACD)_TQ_V_2.0")
        by_key = {e["key"]: e for e in learned["commands"]}
        s71 = by_key["interval.set S71"]
        assert (s71["sent"], s71["replied"], s71["ignored"], s71["status"]) == (3, 0, 3, "ignored")
        assert s71["verdict"] == "ignored 3/3"
        assert s71["alternative"] == {"name": "interval.acc_on.set", "code": "805", "verdict": "answered 1/1"}
        rconf = by_key["config.query RCONF"]
        assert rconf["verdict"] == "answered 1/1" and rconf["reply_time"] is not None
        assert by_key["engine.stop"]["verdict"] == "never tried"

        # The CLI shows the same as a column.
        env = {**os.environ, "SINOGATE_TOKEN": server.token, "COLUMNS": "400"}
        out = subprocess.run([sys.executable, "-m", "sinogate", "commands", "list", "--device", "4210051415",
                              "--url", server.http_url], capture_output=True, text=True, timeout=60, env=env)
        assert out.returncode == 0, out.stderr
        assert "S71: ignored 3/3 → try interval.acc_on.set (answered 1/1)" in out.stdout
        assert "RCONF: answered 1/1" in out.stdout and "never tried" in out.stdout and "ST906" in out.stdout

        # A second unit of the same model: the model view adds them up.
        ignored_s71(server, dev2, 1)
        cmd = queue(server, dev2, "config.query")
        wait_for(lambda: processed(server, dev2, cmd["id"]), timeout=10)
        resp = api(server, "GET", "/gw/command-support", params={"data": json.dumps({"model": "st906"})})
        assert resp.status_code == 200, resp.text
        (model,) = resp.json()["result"]
        assert model["model"] == "ST906" and model["devices"] == 2 and sorted(model["device_ids"]) == [dev, dev2]
        by_key = {e["key"]: e for e in model["commands"]}
        assert by_key["interval.set S71"]["verdict"] == "ignored 4/4" and by_key["interval.set S71"]["devices"] == 2
        assert by_key["config.query RCONF"]["verdict"] == "answered 2/2"
        assert by_key["interval.set S71"]["alternative"]["name"] == "interval.acc_on.set"
        nothing = api(server, "GET", "/gw/command-support", params={"data": json.dumps({"model": "ST901"})})
        assert nothing.json()["result"] == []
    finally:
        first.close()
        second.close()

    # The knowledge survives a restart (key-value store).
    server.runtime.support._records.clear()
    server.run(server.runtime.support.load())
    assert support(server, dev)["commands"][0]["sent"] >= 1


def test_pure_parts() -> None:
    assert command_code({"name": "interval.set", "match": {"code": "S71", "time": "010203"}}) == "S71"
    assert command_code({"name": "custom", "properties": {"payload": "8050000 30"}, "match": {"raw": True}}) == "805"
    assert command_code({"name": "config.query", "payload": b"RCONF", "match": {"raw": True}}) == "RCONF"
    assert command_code({"name": "engine.stop", "match": {"serial": 3, "msg_id": 0x8105}}) == "0x8105"
    assert command_code({"name": "custom", "properties": {"payload": "RELAY,1#"},
                         "match": {"serial": 3, "msg_id": 0x8300}}) == "0x8300 RELAY"
    assert command_code({"name": "interval.acc_on.set", "properties": {"seconds": 30},
                         "match": {"serial": 4, "msg_id": 0x8300}}) == "0x8300 805"
    assert verdict({"sent": 0}) == ("untried", "never tried")
    assert verdict({"sent": 2, "replied": 1, "ignored": 1}) == ("partial", "answered 1/2, ignored 1")
    assert verdict({"sent": 1}) == ("pending", "no answer yet (1 sent)")
    assert model_from_text("ST-901L V2.1 2023\nIP:1.2.3.4") == ("ST901L", "ST-901L V2.1 2023")
    assert model_from_text("SET OK") is None
