"""A real Runtime (the whole process) on free ports, running its own event loop in a thread, driven by plain sockets."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from sinogate.config import Config
from sinogate.runtime import Runtime


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RunningGateway:
    def __init__(self, data_dir: Path, **overrides: Any) -> None:
        self.config = Config(
            data_dir=data_dir, host="127.0.0.1", h02_port=free_port(), jt808_port=free_port(), http_port=0,
            **overrides,
        )
        self.loop = asyncio.new_event_loop()
        self.runtime = Runtime(self.config)
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.call(self.runtime.start())

    def call(self, coro: Coroutine[Any, Any, Any], timeout: float = 10) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.call(self.runtime.stop(), timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)

    def connect(self, protocol: str) -> socket.socket:
        port = self.config.h02_port if protocol == "h02" else self.config.jt808_port
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        return sock

    def wait_for(self, predicate: Any, timeout: float = 5.0) -> Any:
        deadline = time.time() + timeout
        while time.time() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.02)
        raise AssertionError("condition not met in time")


def read_until(sock: socket.socket, terminator: bytes, count: int = 1, timeout: float = 5.0) -> bytes:
    """Reads until ``terminator`` was seen ``count`` times (JT/T 808 frames: 2 per frame)."""
    sock.settimeout(timeout)
    data = b""
    while data.count(terminator) < count:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def split_jt808(data: bytes) -> list[bytes]:
    return [b"\x7e" + part + b"\x7e" for part in data.split(b"\x7e") if part]
