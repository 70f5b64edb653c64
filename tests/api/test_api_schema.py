"""Schemathesis against /openapi.json of a running gateway: bounded examples, zero server errors.

(schemathesis' pytest integration, ``from_fixture``, does not work with pytest 9 — it reads a
removed ``_nodeid`` — so the operations are driven from one test with hypothesis directly.)
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

import httpx
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

if TYPE_CHECKING:
    from conftest import GatewayServer

MAX_EXAMPLES = 20


def _seed(s: GatewayServer) -> None:
    body = [{"name": "fuzz", "configuration": {"ident": "100000000000001"}, "protocol": "h02"},
            {"name": "fuzz2", "configuration": {"ident": "100000000000002"}, "protocol": "jt808"}]
    httpx.post(s.url("/gw/devices"), json=body, headers=s.headers).raise_for_status()
    httpx.post(s.url("/gw/devices/all/messages"), json=[{"timestamp": 1.7e9, "position.speed": 5}],
               headers=s.headers).raise_for_status()


def test_no_server_errors(module_gateway_server: GatewayServer) -> None:
    s = module_gateway_server
    _seed(s)
    # the live stream never ends by design; it has its own test
    schema = schemathesis.openapi.from_url(s.url("/openapi.json")).exclude(path_regex=r".*/stream$")
    failures: list[str] = []
    statuses: Counter[int] = Counter()
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        strategy = operation.as_strategy() | operation.as_strategy(GenerationMode.NEGATIVE)

        @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=strategy)
        def check(case: Any) -> None:
            case.headers = {**(case.headers or {}), **s.headers}  # generated Authorization values lose
            response = case.call(base_url=s.http_url, timeout=20)
            statuses[response.status_code] += 1
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} {case.query} -> {response.status_code}: "
                                f"{response.text[:200]}")
            elif response.status_code >= 400 and "json" in response.headers.get("content-type", ""):
                errors = response.json().get("errors")
                if not (errors and errors[0].get("reason")):
                    failures.append(f"{case.method} {case.formatted_path}: error without a reason")

        check()
    assert operations >= 20
    assert statuses[200] > 50 and sum(v for k, v in statuses.items() if 400 <= k < 500) > 50, statuses
    assert not failures, "\n".join(failures[:20])
