"""App core: health, authentication, error envelope."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from conftest import GatewayServer


def test_health_needs_no_token(module_gateway_server: GatewayServer) -> None:
    r = httpx.get(module_gateway_server.url("/health"))
    assert r.status_code == 200
    assert r.json()["status"] == "ok"


def test_unknown_route_uses_error_envelope(module_gateway_server: GatewayServer) -> None:
    s = module_gateway_server
    r = httpx.get(s.url("/no/such/route"), headers=s.headers)
    assert r.status_code == 404
    assert r.json()["errors"][0]["reason"]
