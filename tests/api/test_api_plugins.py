"""Plugins through the API and over a real device socket."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx

from tests.api.conftest import Api
from tests.conftest import TEST_TOKEN
from tests.server.frames import h02_v1


def test_crud_and_reasons(api: Api) -> None:
    created = api.ok("POST", "/gw/plugins", json=[
        {"type": "expression", "name": "speed.mph", "expression": "position.speed * 0.621371", "unit": "mph"}])
    plugin = created[0]
    assert plugin["status"] == {"applied": 0, "errors": 0, "last_error": None}
    assert api.ok("GET", f"/gw/plugins/{plugin['id']}")[0]["name"] == "speed.mph"
    bad = api.request("POST", "/gw/plugins", json=[{"type": "expression", "name": "x", "expression": "1 +"}])
    assert bad.status_code == 400 and bad.json()["errors"][0]["reason"].startswith("plugin 0: bad expression")
    changed = api.ok("PUT", f"/gw/plugins/{plugin['id']}", json={"order": 5})
    assert changed[0]["order"] == 5 and changed[0]["expression"] == "position.speed * 0.621371"
    assert api.request("PUT", f"/gw/plugins/{plugin['id']}", json={"expression": "(("}).status_code == 400
    read_only = api.token_for(read_only=True)
    assert api.request("DELETE", f"/gw/plugins/{plugin['id']}", token=read_only).status_code == 403
    assert api.ok("DELETE", f"/gw/plugins/{plugin['id']}") == [{"id": plugin["id"]}]
    assert api.request("GET", f"/gw/plugins/{plugin['id']}").status_code == 404


def test_a_new_plugin_applies_to_the_next_message_over_a_socket(tmp_path: Path, gateway_factory) -> None:  # type: ignore[no-untyped-def]
    with gateway_factory(tmp_path / "data") as server, \
            httpx.Client(base_url=server.http_url, timeout=10,
                         headers={"Authorization": f"FlespiToken {TEST_TOKEN}"}) as http, \
            socket.create_connection(("127.0.0.1", server.h02_port), timeout=5) as sock:
        now = time.time()
        sock.sendall(h02_v1("4210000001", now - 30, 52.5, 13.4, knots=54.0))
        time.sleep(0.3)
        plugin = http.post("/gw/plugins", json=[{"type": "expression", "name": "speed.mph",
                                                  "expression": "round(position.speed * 0.621371, 1)"}]).json()
        assert "result" in plugin, plugin
        sock.sendall(h02_v1("4210000001", now - 20, 52.5, 13.4, knots=54.0))
        deadline = time.time() + 5
        messages: list[dict] = []
        while time.time() < deadline and len(messages) < 2:
            time.sleep(0.1)
            device = server.runtime.devices.find("h02", "4210000001")
            messages = http.get(f"/gw/devices/{device['id']}/messages").json()["result"] if device else []
        assert [m.get("speed.mph") for m in messages] == [None, 62.1]  # 54 kn = 100.008 km/h
        status = http.get("/gw/plugins").json()["result"][0]["status"]
        assert status["applied"] == 1 and status["errors"] == 0
