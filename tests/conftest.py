"""Shared fixtures: a real running ``Runtime`` (SQLite file in a temp dir, device listeners and the
HTTP API on free ports), driven from synchronous tests.

The gateway runs its own event loop in a background thread. Use ``server.run(coro)`` to execute
a coroutine on that loop (e.g. ``server.run(server.runtime.store.ingest(batch))``) and
``server.url(path)`` / ``server.headers`` for HTTP calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
from collections.abc import Coroutine, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import settings as hypothesis_settings

T = TypeVar("T")

# CI runs the property tests on a fixed example sequence so a run is reproducible; local runs
# keep exploring new examples.
hypothesis_settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")

TEST_TOKEN = "test-master-token-0123456789abcdef"


def free_port() -> int:
    """A port that was free a moment ago (TCP and UDP): port 0 in the config means "disabled"."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                udp.bind(("127.0.0.1", port))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port found")


@dataclass
class GatewayServer:
    runtime: Any  # sinogate.runtime.Runtime
    loop: asyncio.AbstractEventLoop
    http_url: str
    token: str
    h02_port: int
    jt808_port: int
    data_dir: Path
    _stop: asyncio.Event = field(repr=False, default_factory=asyncio.Event)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"FlespiToken {self.token}"}

    def url(self, path: str) -> str:
        return self.http_url + path

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        """Runs ``coro`` on the gateway's loop and returns its result."""
        fut: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(timeout)

    def call(self, fn: Any, *args: Any) -> Any:
        """Calls a plain function on the gateway's loop thread (for loop-bound objects)."""

        async def _call() -> Any:
            return fn(*args)

        return self.run(_call())


@contextlib.contextmanager
def start_gateway(data_dir: Path, **overrides: Any) -> Iterator[GatewayServer]:
    """Starts a Runtime in a background thread; stops it (flushing the store) on exit."""
    from sinogate.config import Config
    from sinogate.runtime import Runtime

    values: dict[str, Any] = {
        "data_dir": data_dir,
        "host": "127.0.0.1",
        "http_host": "127.0.0.1",
        "h02_port": free_port(),
        "jt808_port": free_port(),
        "http_port": free_port(),
        "token": TEST_TOKEN,
        "log_level": "WARNING",
    }
    values.update(overrides)
    config = Config(**values)
    ready: Future[GatewayServer] = Future()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        try:
            runtime = Runtime(config)
            await runtime.start()
        except BaseException as exc:
            ready.set_exception(exc)
            return
        server = GatewayServer(
            runtime=runtime,
            loop=loop,
            http_url=f"http://127.0.0.1:{runtime.ports.get('http', config.http_port)}",
            token=config.token or "",
            h02_port=runtime.ports.get("h02", 0),
            jt808_port=runtime.ports.get("jt808", 0),
            data_dir=data_dir,
            _stop=stop,
        )
        ready.set_result(server)
        await stop.wait()
        await runtime.stop()

    thread = threading.Thread(target=lambda: asyncio.run(main()), name="gateway-under-test", daemon=True)
    thread.start()
    server = ready.result(timeout=30)
    try:
        yield server
    finally:
        server.loop.call_soon_threadsafe(server._stop.set)
        thread.join(timeout=30)


@pytest.fixture
def gateway_server(tmp_path: Path) -> Iterator[GatewayServer]:
    """A fresh running gateway per test (master token ``server.token``)."""
    with start_gateway(tmp_path / "data") as server:
        yield server


@pytest.fixture(scope="module")
def module_gateway_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    """One running gateway shared by the tests of a module (faster; tests must not assume it is empty)."""
    with start_gateway(tmp_path_factory.mktemp("gateway") / "data") as server:
        yield server


@pytest.fixture
def gateway_factory() -> Any:
    """``start_gateway`` itself, for tests that need their own config (``with gateway_factory(dir, **cfg)``)."""
    return start_gateway
