"""No request, from any token, may stall or exhaust the server through the API (issue: hardening)."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from sinogate.api.filter import MAX_TERMS, Filter, FilterSyntaxError, wildcard_match
from tests.api.conftest import Api


@pytest.mark.parametrize(("pattern", "text", "expected"), [
    ("a*", "abc", True), ("*c", "abc", True), ("a?c", "abc", True), ("*", "", True), ("", "", True),
    ("a", "", False), ("a*b*c", "axxbyyc", True), ("a*b*c", "axxbyy", False), ("*?", "", False),
    ("**", "x", True), ("?*", "a", True), ("a.b", "a.b", True), ("a.b", "axb", False),
    ("*a*a*a*a*a*a*a*a*a*a*b", "a" * 256, False), ("*a*a*b", "a" * 200 + "b", True),
])
def test_wildcards_match_without_backtracking(pattern: str, text: str, expected: bool) -> None:
    assert wildcard_match(pattern, text) is expected


def test_a_pathological_selector_against_a_long_name_answers_correctly(api: Api) -> None:
    long_name = "a" * 256
    device = api.create_device("666000000011001", name=long_name)
    pattern = "name=" + "*a" * 100 + "*b"
    assert api.ok("GET", f"/gw/devices/{pattern}") == []
    found = api.ok("GET", "/gw/devices/name=" + "*a" * 100 + "*")
    assert device["id"] in [d["id"] for d in found]
    too_long = api.request("GET", "/gw/devices/name=" + "a" * 1100)
    assert too_long.status_code == 400 and "longer than 1024" in too_long.json()["errors"][0]["reason"]


def test_filters_are_bounded_in_terms() -> None:
    Filter(" + ".join(["1"] * MAX_TERMS))
    with pytest.raises(FilterSyntaxError, match="more than 256 terms"):
        Filter(" + ".join(["1"] * (MAX_TERMS + 1)))


def test_body_limits_per_route(api: Api) -> None:
    device = api.create_device("666000000011002")
    big = "x" * (300 * 1024)
    r = api.request("POST", f"/gw/devices/{device['id']}/commands-queue",
                    content=json.dumps([{"name": "custom", "properties": {"payload": big}}]))
    assert r.status_code == 413 and "larger than 262144 bytes" in r.json()["errors"][0]["reason"]
    # A message upload may be larger (config http_max_body, 8 MiB by default).
    messages = [{"timestamp": 1_700_000_000 + i, "note": "y" * 1000} for i in range(300)]
    assert len(api.ok("POST", f"/gw/devices/{device['id']}/messages", json=messages)) == 300


def test_deep_json_and_lone_surrogates_are_400(api: Api) -> None:
    device = api.create_device("666000000011003")
    deep = "[" * 100_000 + "]" * 100_000
    for path in (f"/gw/devices/{device['id']}/commands-queue", f"/gw/devices/{device['id']}/commands"):
        r = api.request("POST", path, content=deep)
        assert r.status_code == 400, (path, r.status_code, r.text[:200])
    surrogate = '[{"name": "custom", "properties": {"payload": "\\ud800"}}]'
    r = api.request("POST", f"/gw/devices/{device['id']}/commands-queue", content=surrogate)
    assert r.status_code == 400


def test_query_tokens_only_on_the_stream(api: Api) -> None:
    client = httpx.Client(base_url=api.server.http_url, timeout=10)
    r = client.get("/gw/devices/all", params={"token": api.server.token})
    assert r.status_code == 401
    r = client.get("/platform/tokens", params={"token": api.server.token})
    assert r.status_code == 401
    client.close()


def test_security_headers(api: Api) -> None:
    r = api.request("GET", "/gw/devices/all")
    assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-frame-options"] == "DENY"
    page = httpx.get(api.server.http_url + "/", timeout=10)
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]


def test_a_limited_token_cannot_repoint_its_device(api: Api) -> None:
    device = api.create_device("666000000011004")
    token = api.token_for(devices=str(device["id"]))
    r = api.request("PUT", f"/gw/devices/{device['id']}", json={"configuration": {"ident": "4210051415"}},
                    token=token)
    assert r.status_code == 403 and "ident" in r.json()["errors"][0]["reason"]
    assert api.request("PUT", f"/gw/devices/{device['id']}", json={"name": "renamed"}, token=token).status_code == 200


def test_a_stream_ends_when_its_token_is_deleted(api: Api) -> None:
    server = api.server
    server.runtime.api.token_recheck = 0.2
    device = api.create_device("666000000011005")
    record = api.ok("POST", "/platform/tokens", json=[{"devices": str(device["id"])}])[0]
    lines: list[str] = []

    def read() -> None:
        url = f"{server.http_url}/gw/devices/{device['id']}/stream"
        with httpx.stream("GET", url, params={"token": record["key"]}, timeout=20) as r:
            for line in r.iter_lines():
                lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    time.sleep(0.5)
    api.ok("DELETE", f"/platform/tokens/{record['id']}")
    reader.join(10)
    assert not reader.is_alive()
    assert "event: error" in lines and any("token deleted or expired" in line for line in lines)
