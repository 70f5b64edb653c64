"""Tokens: master, limited to devices, read-only, expired; the token CLI."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from typer.testing import CliRunner

from sinogate.cli import app as cli

if TYPE_CHECKING:
    from conftest import Api


def test_no_token_401(api: Api) -> None:
    for path in ("/gw/devices", "/gw/devices/all/messages", "/gw/channels", "/platform/tokens"):
        r = api.client.get(path)
        assert r.status_code == 401, path
        assert r.json()["errors"][0]["reason"]
    assert api.get("/gw/devices", token="wrong").status_code == 401
    assert api.client.get("/gw/devices", headers={"Authorization": "Basic abc"}).status_code == 401
    assert api.client.get("/gw/devices", headers={"Authorization": f"Bearer {api.token}"}).status_code == 200


def test_limited_token(api: Api) -> None:
    mine = api.create_device("444000000000001", name="mine")
    other = api.create_device("444000000000002", name="other")
    api.ok("POST", f"/gw/devices/{mine['id']},{other['id']}/messages", json=[{"timestamp": 1700000000, "x": 1}])
    token = api.token_for(devices=str(mine["id"]), name="limited")
    assert {d["id"] for d in api.ok("GET", "/gw/devices/all", token=token)} == {mine["id"]}
    assert {d["id"] for d in api.ok("GET", "/gw/devices", token=token)} == {mine["id"]}
    assert api.get(f"/gw/devices/{other['id']}", token=token).status_code == 403
    assert api.get(f"/gw/devices/{mine['id']},{other['id']}", token=token).status_code == 403
    assert api.get(f"/gw/devices/{other['id']}/messages", token=token).status_code == 403
    assert api.get(f"/gw/devices/{other['id']}/telemetry", token=token).status_code == 403
    assert api.get(f"/gw/devices/{other['id']}/track", token=token).status_code == 403
    msgs = api.ok("GET", "/gw/devices/all/messages", token=token)
    assert msgs and {m["device.id"] for m in msgs} == {mine["id"]}
    assert [d["id"] for d in api.ok("GET", "/gw/devices/configuration.ident=444*", token=token)] == [mine["id"]]
    assert api.get("/gw/channels", token=token).status_code == 403
    assert api.get("/platform/tokens", token=token).status_code == 403
    assert api.request("POST", "/platform/tokens", json=[{}], token=token).status_code == 403
    # pattern-limited token
    glob = api.token_for(devices="configuration.ident=444*")
    assert {d["id"] for d in api.ok("GET", "/gw/devices/all", token=glob)} == {mine["id"], other["id"]}


def test_read_only_token(api: Api) -> None:
    dev = api.create_device("555000000000001")
    token = api.token_for(read_only=True)
    assert api.get(f"/gw/devices/{dev['id']}", token=token).status_code == 200
    assert api.request("POST", f"/gw/devices/{dev['id']}/messages", json=[{"a": 1}], token=token).status_code == 403
    body = [{"configuration": {"ident": "555000000000009"}, "protocol": "h02"}]
    assert api.request("POST", "/gw/devices", json=body, token=token).status_code == 403
    assert api.request("PUT", f"/gw/devices/{dev['id']}", json={"name": "x"}, token=token).status_code == 403
    assert api.request("DELETE", f"/gw/devices/{dev['id']}", token=token).status_code == 403


def test_expired_and_deleted_tokens(api: Api) -> None:
    token = api.ok("POST", "/platform/tokens", json=[{"expire": time.time() - 1}])[0]["key"]
    assert api.get("/gw/devices", token=token).status_code == 401
    record = api.ok("POST", "/platform/tokens", json=[{"ttl": 3600, "name": "temp"}])[0]
    assert api.get("/gw/devices", token=record["key"]).status_code == 200
    assert any(t["id"] == record["id"] for t in api.ok("GET", "/platform/tokens"))
    assert all("key" not in t for t in api.ok("GET", "/platform/tokens"))
    api.ok("DELETE", f"/platform/tokens/{record['id']}")
    assert api.get("/gw/devices", token=record["key"]).status_code == 401
    assert api.request("DELETE", "/platform/tokens/nope").status_code == 404
    r = api.request("POST", "/platform/tokens", json=[{"devices": "bogus"}])
    assert r.status_code == 400
    assert r.json()["errors"][0]["reason"].startswith("bad devices selector: ")


def test_token_cli_through_the_api_and_in_admin_mode(tmp_path: Path, gateway_factory: Any) -> None:
    start_gateway = gateway_factory
    data = tmp_path / "data"
    runner = CliRunner()
    # Admin mode never creates a database (the trap: a new empty store and token the server rejects).
    res = runner.invoke(cli, ["token", "create", "--json", "--data-dir", str(data)])
    assert res.exit_code == 1 and "no sinogate database at" in res.output and "Traceback" not in res.output
    res = runner.invoke(cli, ["token", "master", "--data-dir", str(data)])
    assert res.exit_code == 1 and "no master token in" in res.output
    assert not data.exists()
    # the server started on that data dir generates its master token; the CLI uses its API
    with start_gateway(data, token=None) as server:
        master = (data / "token").read_text().strip()
        assert len(master) == 64
        base = server.http_url
        res = runner.invoke(cli, ["token", "create", "--devices", "1", "--read-only", "--expire", "600", "--json",
                                  "--url", base, "--token", master])
        assert res.exit_code == 0, res.output
        record = json.loads(res.stdout.strip().splitlines()[-1])
        assert record["devices"] == "1" and record["read_only"] is True and record["expire"] > time.time()
        r = httpx.get(base + "/gw/devices", headers={"Authorization": f"FlespiToken {record['key']}"})
        assert r.status_code == 200 and r.json() == {"result": []}
        r = httpx.get(base + "/gw/devices/2", headers={"Authorization": f"FlespiToken {record['key']}"})
        assert r.status_code == 404
        # SINOGATE_URL and the data dir's token file, no flags
        res = runner.invoke(cli, ["token", "list"], env={"SINOGATE_URL": base, "SINOGATE_DATA_DIR": str(data),
                                                         "SINOGATE_TOKEN": None})
        assert res.exit_code == 0 and record["id"] in res.output, res.output
        res = runner.invoke(cli, ["token", "list", "--url", base, "--token", "wrong"])
        assert res.exit_code == 1 and res.output.count("\n") == 1 and "error:" in res.output
    res = runner.invoke(cli, ["token", "master", "--data-dir", str(data)], env={"SINOGATE_TOKEN": None})
    assert res.stdout.strip() == master
    # admin mode on the stopped server's store, and it says so
    res = runner.invoke(cli, ["token", "list", "--data-dir", str(data)])
    assert res.exit_code == 0 and record["id"] in res.stdout and "admin mode" in res.output
    res = runner.invoke(cli, ["token", "delete", record["id"], "--data-dir", str(data)])
    assert res.exit_code == 0
    res = runner.invoke(cli, ["token", "list", "--data-dir", str(data)])
    assert res.exit_code == 0 and record["id"] not in res.output
    # no server at the URL: one line, no traceback
    res = runner.invoke(cli, ["token", "list", "--url", "http://127.0.0.1:9", "--token", master])
    assert res.exit_code == 1 and "cannot reach the sinogate API at http://127.0.0.1:9" in res.output
    assert "Traceback" not in res.output
