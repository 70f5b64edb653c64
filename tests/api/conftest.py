"""Helpers for the API tests: a shared running gateway and a tiny JSON client."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest

if TYPE_CHECKING:
    from conftest import GatewayServer


class Api:
    """httpx client bound to a running gateway, with the master token by default."""

    def __init__(self, server: GatewayServer, token: str | None = None) -> None:
        self.server = server
        self.client = httpx.Client(base_url=server.http_url, timeout=30)
        self.token = server.token if token is None else token

    def headers(self, token: str | None = None) -> dict[str, str]:
        t = self.token if token is None else token
        return {"Authorization": f"FlespiToken {t}"} if t else {}

    def request(self, method: str, path: str, data: Any = None, token: str | None = None,
                **kw: Any) -> httpx.Response:
        params = kw.pop("params", {}) or {}
        if data is not None:
            params["data"] = data if isinstance(data, str) else json.dumps(data)
        return self.client.request(method, path, params=params, headers=self.headers(token), **kw)

    def get(self, path: str, data: Any = None, **kw: Any) -> httpx.Response:
        return self.request("GET", path, data, **kw)

    def ok(self, method: str, path: str, data: Any = None, **kw: Any) -> list[Any]:
        r = self.request(method, path, data, **kw)
        assert r.status_code == 200, (r.status_code, r.text)
        return r.json()["result"]  # type: ignore[no-any-return]

    def create_device(self, ident: str, protocol: str = "h02", **fields: Any) -> dict[str, Any]:
        body = [{"name": fields.pop("name", f"dev-{ident}"), "configuration": {"ident": ident},
                 "protocol": protocol, **fields}]
        return self.ok("POST", "/gw/devices", json=body)[0]  # type: ignore[no-any-return]

    def token_for(self, **spec: Any) -> str:
        return self.ok("POST", "/platform/tokens", json=[spec])[0]["key"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def api(module_gateway_server: GatewayServer) -> Iterator[Api]:
    client = Api(module_gateway_server)
    yield client
    client.client.close()
