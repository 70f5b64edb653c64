"""The web app is served without a token: the page, its modules and vendored libraries, /docs; and
/web/config tells the page what the token may do. (Browser tests: tests/web.)"""

from __future__ import annotations

import re

import httpx

from tests.api.conftest import Api


def test_web_page(api: Api) -> None:
    r = httpx.get(api.server.http_url + "/", timeout=10)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = r.text
    assert '<script type="module" src="/assets/js/app.js">' in page
    assert "<script>" not in page  # no inline script: the CSP allows scripts from this server only
    assert "script-src 'self'" in r.headers["content-security-policy"]
    # every file the page names is served, and nothing comes from another origin
    for path in re.findall(r'(?:src|href)="(/assets/[^"]+)"', page):
        asset = httpx.get(api.server.http_url + path, timeout=10)
        assert asset.status_code == 200, path
    assert not re.search(r'(?:src|href)="https?://', page)


def test_assets_are_cached_by_etag_and_confined(api: Api) -> None:
    url = api.server.http_url + "/assets/js/app.js"
    first = httpx.get(url, timeout=10)
    assert first.status_code == 200 and first.headers["content-type"].startswith("text/javascript")
    again = httpx.get(url, headers={"If-None-Match": first.headers["etag"]}, timeout=10)
    assert again.status_code == 304
    for bad in ("/assets/../api/app.py", "/assets/js/../../__init__.py", "/assets/index.html", "/assets/js/nope.js",
                "/assets/%2e%2e/__init__.py"):
        assert httpx.get(api.server.http_url + bad, timeout=10).status_code == 404, bad


def test_modules_use_the_api_routes(api: Api) -> None:
    def module(path: str) -> str:
        return httpx.get(api.server.http_url + "/assets/js/" + path, timeout=10).text

    assert "/gw/devices/all/telemetry/" in module("live.js")
    assert "/stream?types=" in module("api.js")
    assert "/commands-queue" in module("views/commands.js")
    assert "/packets?" in module("views/console.js")


def test_docs_work_offline(api: Api) -> None:
    r = httpx.get(api.server.http_url + "/docs", timeout=10)
    assert r.status_code == 200
    assert "/assets/vendor/swagger-ui/swagger-ui-bundle.js" in r.text
    assert "cdn." not in r.text and "<script>" not in r.text
    bundle = httpx.get(api.server.http_url + "/assets/vendor/swagger-ui/swagger-ui-bundle.js", timeout=10)
    assert bundle.status_code == 200


def test_web_config_describes_the_token(api: Api) -> None:
    [config] = api.ok("GET", "/web/config")
    assert config["token"] == {"master": True, "read_only": False, "devices": None}
    assert config["map"]["tiles_url"] and "OpenStreetMap" in config["map"]["attribution"]
    props = config["settings_schema"]["properties"]
    assert {"time_offset", "sms_password", "speed_limit", "offline_after"} <= set(props)
    readonly = api.token_for(read_only=True, devices="1,2")
    [limited] = api.ok("GET", "/web/config", token=readonly)
    assert limited["token"] == {"master": False, "read_only": True, "devices": "1,2"}
    assert api.request("GET", "/web/config", token="nope").status_code == 401
