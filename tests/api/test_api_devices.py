"""/gw/devices CRUD, selectors and wildcards over real HTTP."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conftest import Api


def test_create_get_update_delete(api: Api) -> None:
    dev = api.create_device("111000000000001", "h02", name="crud")
    assert dev["configuration"]["ident"] == "111000000000001"
    assert dev["protocol"] == "h02" and dev["connected"] is False and dev["enabled"] is True
    assert "commands" not in dev  # the catalog only when asked (issue 11): fields=…,commands
    with_catalog = api.ok("GET", f"/gw/devices/{dev['id']}", params={"fields": "id,commands"})
    assert isinstance(with_catalog[0]["commands"], list) and with_catalog[0]["commands"]
    got = api.ok("GET", f"/gw/devices/{dev['id']}")
    assert got[0]["name"] == "crud"
    only = api.ok("GET", f"/gw/devices/{dev['id']}", params={"fields": "id,name,configuration.ident"})
    assert only == [{"id": dev["id"], "name": "crud", "configuration": {"ident": "111000000000001"}}]
    upd = api.ok("PUT", f"/gw/devices/{dev['id']}", json={"name": "renamed", "settings": {"time_offset": 8}})
    assert upd[0]["name"] == "renamed" and upd[0]["settings"] == {"time_offset": 8}
    patched = api.ok("PATCH", f"/gw/devices/{dev['id']}", json={"settings": {"h02_ack": True}})
    assert patched[0]["settings"] == {"time_offset": 8, "h02_ack": True}
    assert api.ok("DELETE", f"/gw/devices/{dev['id']}") == [{"id": dev["id"]}]
    r = api.get(f"/gw/devices/{dev['id']}")
    assert r.status_code == 404 and "not found" in r.json()["errors"][0]["reason"]


def test_bulk_create_and_selectors(api: Api) -> None:
    body = [
        {"name": "sel-a", "configuration": {"ident": "222000000000001"}, "protocol": "h02"},
        {"name": "sel-b", "configuration": {"ident": "222000000000002"}, "protocol": "h02"},
        {"name": "sel-c", "configuration": {"ident": "013912345678"}, "protocol_name": "jt808"},
    ]
    created = api.ok("POST", "/gw/devices", json=body)
    ids = [d["id"] for d in created]
    assert [d["protocol"] for d in created] == ["h02", "h02", "jt808"]
    by_glob = api.ok("GET", "/gw/devices/configuration.ident=222*")
    assert {d["id"] for d in by_glob} == set(ids[:2])
    one = api.ok("GET", "/gw/devices/configuration.ident=22200000000000%3F")  # ? must be URL-encoded
    assert len(one) == 2
    assert [d["id"] for d in api.ok("GET", "/gw/devices/name=sel-%3F,protocol=jt808")] == [ids[2]]
    listed = api.ok("GET", f"/gw/devices/{ids[0]},{ids[2]}")
    assert [d["id"] for d in listed] == [ids[0], ids[2]]
    expr = api.ok("GET", "/gw/devices/{name=='sel-*' && protocol=='jt808'}")
    assert [d["id"] for d in expr] == [ids[2]]
    everything = {d["id"] for d in api.ok("GET", "/gw/devices/all")}
    assert set(ids) <= everything
    assert {d["id"] for d in api.ok("GET", "/gw/devices")} == everything
    assert api.ok("GET", "/gw/devices/configuration.ident=999*") == []


def test_errors(api: Api) -> None:
    r = api.request("POST", "/gw/devices", json=[{"configuration": {"ident": "x"}, "protocol": "nope"}])
    assert r.status_code == 400 and r.json()["errors"][0]["reason"]
    r = api.request("POST", "/gw/devices", json={"not": "an array"})
    assert r.status_code == 400
    r = api.request("POST", "/gw/devices", json=[{"configuration": {"ident": "1"}}])
    assert r.status_code == 400 and "protocol" in r.json()["errors"][0]["reason"]
    r = api.request("POST", "/gw/devices", json=[{"configuration": {"ident": "a/b"}, "protocol": "h02"}])
    assert r.status_code == 400
    api.create_device("333000000000001")
    r = api.request("POST", "/gw/devices", json=[{"configuration": {"ident": "333000000000001"}, "protocol": "h02"}])
    assert r.status_code == 409
    assert api.get("/gw/devices/99999").status_code == 404
    assert api.get("/gw/devices/bogus").status_code == 400
    assert api.get("/gw/devices/unknown_field=3").status_code == 400
    r = api.request("PUT", "/gw/devices/all", json={"settings": {"h02_binary_length": 7}})
    assert r.status_code == 400
    headers = {**api.headers(), "content-type": "application/json"}
    r = api.client.post("/gw/devices", content=b"{not json", headers=headers)
    assert r.status_code == 400


def test_message_parameters_and_docs(api: Api) -> None:
    params = api.ok("GET", "/gw/message-parameters")
    names = {p["name"] for p in params}
    assert "position.latitude" in names and "engine.ignition.status" in names
    pos = api.ok("GET", "/gw/message-parameters/position.*")
    assert pos and all(p["name"].startswith("position.") for p in pos)
    spec = api.client.get("/openapi.json").json()
    assert "/gw/devices/{selector}/messages" in spec["paths"]
    assert api.client.get("/docs").status_code == 200
