"""The web page is served without a token and drives the API the tests cover."""

from __future__ import annotations

import httpx

from tests.api.conftest import Api


def test_web_page(api: Api) -> None:
    r = httpx.get(api.server.http_url + "/", timeout=10)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = r.text
    for call in ("/gw/devices/all?fields=", "/telemetry/all", "/commands-queue", "/stream?token="):
        assert call in page
