"""Browser tests of the web app: Playwright drives the system's Chromium (``executable_path``;
Playwright cannot download browsers here) against a real gateway fed by ``sinogate simulate``'s
devices, with map tiles from a local tile server.

Every page is watched: a request to anything but this machine is aborted and fails the test, and so
does any console error or uncaught page error. Screenshots go to ``$SINOGATE_SCREENSHOTS`` when set
(``docs/screenshots`` refreshes the README's), else to a temporary directory.
"""

from __future__ import annotations

import asyncio
import http.server
import os
import shutil
import struct
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import GatewayServer, start_gateway

playwright_api = pytest.importorskip("playwright.sync_api")

SIM_DEVICES = 4  # mixed: two H02, two JT/T 808


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


# --- a local tile server (the map's tiles_url points at it: nothing leaves the machine) ------------

def _png(width: int, height: int, pixel: Callable[[int, int], tuple[int, int, int]]) -> bytes:
    rows = b"".join(b"\x00" + b"".join(bytes(pixel(x, y)) for x in range(width)) for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b"")


# A plain light tile with a faint border: the map shows where tiles are, nothing more.
TILE = _png(256, 256, lambda x, y: (214, 221, 228) if x in (0, 255) or y in (0, 255) else (236, 239, 242))


@dataclass
class TileServer:
    url: str
    requests: list[str] = field(default_factory=list)


@pytest.fixture(scope="session")
def tile_server() -> Iterator[TileServer]:
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(TILE)))
            self.send_header("Cache-Control", "max-age=3600")
            self.end_headers()
            try:
                self.wfile.write(TILE)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the map dropped a tile it no longer needs

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield TileServer(f"http://127.0.0.1:{server.server_address[1]}/tiles/{{z}}/{{x}}/{{y}}.png", seen)
    finally:
        server.shutdown()


# --- the gateway and its simulated devices --------------------------------------------------------

@dataclass
class Fleet:
    server: GatewayServer
    devices: list[dict[str, Any]]  # the simulated ones, as the API lists them

    def api(self, method: str, path: str, token: str | None = None, **kw: Any) -> Any:
        headers = {"Authorization": f"FlespiToken {token or self.server.token}"}
        r = httpx.request(method, self.server.url(path), headers=headers, timeout=30, **kw)
        assert r.status_code == 200, (method, path, r.status_code, r.text)
        return r.json()["result"]

    def by_protocol(self, protocol: str) -> dict[str, Any]:
        return next(d for d in self.devices if d["protocol"] == protocol)


class Simulator:
    """``sinogate simulate`` in a thread (its own event loop), stopped at the end of the session."""

    def __init__(self, h02_port: int, jt808_port: int) -> None:
        from sinogate.simulate.config import SimConfig, device_plan
        from sinogate.simulate.runner import Runner

        cfg = SimConfig(host="127.0.0.1", h02_port=h02_port, jt808_port=jt808_port, protocol="mixed",
                        devices=SIM_DEVICES, rate=1.0, duration=0, seed=7, alarm_rate=0.01, heartbeat=30,
                        record_sent=False, drain_timeout=1.0)
        self.plan = device_plan(cfg)
        self.runner = Runner(cfg)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread = threading.Thread(target=self._main, name="simulator", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _main(self) -> None:
        async def main() -> None:
            self.loop = asyncio.get_running_loop()
            await self.runner.run()

        asyncio.run(main())

    def stop(self) -> None:
        if not self.thread.is_alive():
            return
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.runner.stop)
        self.thread.join(timeout=15)


@pytest.fixture(scope="session")
def fleet(tmp_path_factory: pytest.TempPathFactory, tile_server: TileServer) -> Iterator[Fleet]:
    # Without auto-registration: the simulated devices are created first (their idents are known
    # from the simulator's seed); any other tracker shows up under the unknown idents.
    with start_gateway(tmp_path_factory.mktemp("web") / "data", map_tiles_url=tile_server.url,
                       map_tiles_attribution="test tiles", auto_register=False) as server:
        sim = Simulator(server.h02_port, server.jt808_port)
        body = [{"name": f"{'truck' if protocol == 'h02' else 'van'} {ident[-3:]}", "configuration": {"ident": ident},
                 "protocol": protocol} for protocol, ident in sim.plan]
        created = httpx.post(server.url("/gw/devices"), headers=server.headers, json=body, timeout=10)
        assert created.status_code == 200, created.text
        sim.start()
        try:
            deadline = time.time() + 30
            while True:
                rows = httpx.get(server.url("/gw/devices/all/telemetry/position.latitude"), headers=server.headers,
                                 timeout=10).json()["result"]
                located = [r["id"] for r in rows if r["telemetry"].get("position.latitude")]
                if len(located) >= SIM_DEVICES:
                    break
                assert time.time() < deadline, f"simulated devices did not report: {rows}"
                time.sleep(0.3)
            devices = httpx.get(server.url("/gw/devices/all"), headers=server.headers, timeout=10).json()["result"]
            yield Fleet(server, [d for d in devices if d["id"] in located])
        finally:
            sim.stop()


# --- the browser -----------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    path = chromium_path()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (.ci/run installs it)")
        pytest.skip("chromium is not installed: apt-get install chromium")
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=path, args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield browser
        browser.close()


@dataclass
class Watch:
    """What a page did that it should not: requests elsewhere, console errors, uncaught errors."""

    base: str
    external: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    allowed: list[str] = field(default_factory=list)  # substrings of console errors a test expects

    def problems(self) -> list[str]:
        errors = [e for e in self.errors if not any(a in e for a in self.allowed)]
        return [f"request left 127.0.0.1: {u}" for u in self.external] + errors


@dataclass
class App:
    page: Any
    watch: Watch
    fleet: Fleet

    def open(self, hash_: str, token: str | None = None) -> None:
        """Opens the app signed in (``#token=`` link) and goes to ``#/<hash_>``."""
        base = self.fleet.server.http_url
        self.page.goto(f"{base}/#token={token or self.fleet.server.token}")
        self.page.wait_for_selector("#nav a", timeout=15000)
        self.page.evaluate("h => { location.hash = h; }", "#/" + hash_)
        self.page.wait_for_function("h => window.sinogate.app.current && location.hash === h", arg="#/" + hash_,
                                    timeout=15000)

    def instance(self, expression: str) -> Any:
        return self.page.evaluate(f"() => {{ const v = window.sinogate.app.current.instance; return {expression}; }}")


@pytest.fixture
def app(browser: Any, fleet: Fleet) -> Iterator[App]:
    base = fleet.server.http_url
    watch = Watch(base)
    context = browser.new_context(viewport={"width": 1360, "height": 860}, service_workers="block")

    def outside(url: str) -> bool:
        return not (url.startswith("http://127.0.0.1") or url.startswith(("data:", "blob:", "about:")))

    def refuse(route: Any) -> None:
        watch.external.append(route.request.url)
        route.abort()

    context.route(outside, refuse)
    page = context.new_page()
    page.on("console", lambda m: watch.errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: watch.errors.append(f"page error: {e} {e.stack}"))
    page.on("request", lambda r: watch.external.append(r.url) if outside(r.url) and r.url not in watch.external
            else None)
    try:
        yield App(page, watch, fleet)
        assert not watch.problems(), watch.problems()
    finally:
        context.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    wanted = os.environ.get("SINOGATE_SCREENSHOTS")
    target = Path(wanted) if wanted else Path(tempfile.gettempdir()) / "sinogate-screenshots"
    target.mkdir(parents=True, exist_ok=True)
    return target
