"""Test devices over real TCP sockets that answer commands like a Sinotrack (H02) or a JT/T 808 unit.

Frames are built here, independently of the codecs."""

from __future__ import annotations

import re
import socket
import struct
import threading
import time
from typing import Any

import httpx

H02_POSITION = "{t},A,2235.1777,N,11357.8913,E,0.00,0,{d},FFFFFBFF"
_SERVER_REPLY = re.compile(rb"^\*HQ,[^,]*,(V4,V1|V4,NBR|HTBT|V0|R12)[,#]")


def h02_now() -> tuple[str, str]:
    tm = time.gmtime()
    return time.strftime("%H%M%S", tm), time.strftime("%d%m%y", tm)


class H02Device:
    def __init__(self, port: int, ident: str = "4210051415") -> None:
        self.ident = ident
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buf = b""

    def send(self, text: str | bytes) -> None:
        self.sock.sendall(text.encode() if isinstance(text, str) else text)

    def hello(self) -> None:
        """A V1 position: the gateway learns the ident and attaches the device."""
        t, d = h02_now()
        self.send(f"*HQ,{self.ident},V1,{H02_POSITION.format(t=t, d=d)}#")

    def position_block(self) -> str:
        t, d = h02_now()
        return H02_POSITION.format(t=t, d=d)

    def read_command(self, timeout: float = 5.0) -> bytes:
        """The next thing the server wrote that is not a protocol reply (V4,V1 / echo / R12).

        Framed commands end with ``#``; raw texts (``RCONF``) have no terminator, so a quiet
        period ends them."""
        deadline = time.time() + timeout
        while True:
            while self.buf.startswith(b"*") and b"#" in self.buf:
                frame, _, self.buf = self.buf.partition(b"#")
                frame += b"#"
                if not _SERVER_REPLY.match(frame):
                    return frame
            if self.buf and not self.buf.startswith(b"*"):
                # a raw text: take what is there after a short quiet period
                self.sock.settimeout(0.2)
                try:
                    more = self.sock.recv(65536)
                    if more:
                        self.buf += more
                        continue
                except TimeoutError:
                    pass
                cut = self.buf.find(b"*")
                cut = len(self.buf) if cut < 0 else cut
                text, self.buf = self.buf[:cut], self.buf[cut:]
                return text
            left = deadline - time.time()
            if left <= 0:
                raise TimeoutError("no command from the server")
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.buf += chunk

    def close(self) -> None:
        self.sock.close()


class SinotrackUnit(H02Device):
    """A scripted Sinotrack unit in a thread: it ignores the wrapped codes in ``ignores`` (like the
    ST-906L firmware that drops ``S71``), confirms other wrapped commands with ``V4``, answers raw
    texts by their first word from ``texts`` (``{"RCONF": "ST906... IP:1.2.3.4 5013"}``; a word it
    does not know gets ``"<text> OK"``), and sends a position every ``report`` seconds."""

    def __init__(self, port: int, ident: str = "4210051415", ignores: frozenset[str] = frozenset(),
                 texts: dict[str, str] | None = None, report: float = 0.2, speed_knots: float = 0.0) -> None:
        super().__init__(port, ident)
        self.ignores = ignores
        self.texts = texts or {}
        self.report = report
        self.speed_knots = speed_knots
        self.received: list[bytes] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> SinotrackUnit:
        self.hello()
        self._thread.start()
        return self

    def position(self) -> None:
        t, d = h02_now()
        block = f"{t},A,2235.1777,N,11357.8913,E,{self.speed_knots:06.2f},0,{d},FFFFFBFF"
        with self._lock:
            self.send(f"*HQ,{self.ident},V1,{block}#")

    def _answer(self, frame: bytes) -> None:
        text = frame.decode("latin-1")
        if text.startswith("*"):
            fields = text.strip("*#").split(",")
            code, t = fields[2], fields[3] if len(fields) > 3 else ""
            if code in self.ignores:
                return
            with self._lock:
                self.send(f"*HQ,{self.ident},V4,{code},{t},{self.position_block()}#")
            return
        word = text.strip().split(" ")[0].upper()
        word = word[:3] if word[:3].isdigit() else word
        answer = self.texts.get(word, f"{text.strip()} OK")
        with self._lock:
            self.send(f"*HQ,{self.ident},SMS,{answer}#")

    def _run(self) -> None:
        next_report = time.time()
        while not self._stop.is_set():
            if time.time() >= next_report:
                try:
                    self.position()
                except OSError:
                    return
                next_report = time.time() + self.report
            try:
                frame = self.read_command(timeout=min(self.report, 0.2))
            except TimeoutError:
                continue
            except (OSError, ConnectionError):
                return
            self.received.append(frame)
            try:
                self._answer(frame)
            except OSError:
                return

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        super().close()


def command_time(frame: bytes) -> str:
    """HHMMSS of a wrapped command ``*HQ,<id>,<CMD>,<HHMMSS>,...#``."""
    return frame.decode().strip("*#").split(",")[3]


# --- JT/T 808 ---------------------------------------------------------------------------------------

def jt808_frame(msg_id: int, phone: str, serial: int, body: bytes) -> bytes:
    header = struct.pack(">HH", msg_id, len(body)) + bytes.fromhex(phone.rjust(12, "0")) + struct.pack(">H", serial)
    payload = header + body
    checksum = 0
    for b in payload:
        checksum ^= b
    payload += bytes([checksum])
    return b"\x7e" + payload.replace(b"\x7d", b"\x7d\x01").replace(b"\x7e", b"\x7d\x02") + b"\x7e"


def jt808_parse(frame: bytes) -> tuple[int, int, bytes]:
    """(msg id, serial, body) of a server frame (2013 header)."""
    raw = frame[1:-1].replace(b"\x7d\x02", b"\x7e").replace(b"\x7d\x01", b"\x7d")
    msg_id, props = struct.unpack(">HH", raw[:4])
    serial = struct.unpack(">H", raw[10:12])[0]
    return msg_id, serial, raw[12:12 + (props & 0x3FF)]


class JT808Device:
    def __init__(self, port: int, phone: str = "013511221122") -> None:
        self.phone = phone
        self.serial = 0
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buf = b""

    def send(self, msg_id: int, body: bytes) -> None:
        self.serial += 1
        self.sock.sendall(jt808_frame(msg_id, self.phone, self.serial, body))

    def hello(self) -> None:
        self.send(0x0102, b"authentication")  # the platform answers 0x8001

    def read_frame(self, timeout: float = 5.0) -> bytes:
        deadline = time.time() + timeout
        while True:
            start = self.buf.find(b"\x7e")
            if start >= 0:
                end = self.buf.find(b"\x7e", start + 1)
                if end > start + 1:
                    frame, self.buf = self.buf[start:end + 1], self.buf[end + 1:]
                    return frame
            left = deadline - time.time()
            if left <= 0:
                raise TimeoutError("no frame from the server")
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.buf += chunk

    def read_command(self, timeout: float = 5.0) -> tuple[bytes, int, int, bytes]:
        """The next frame that is not a platform general response (0x8001)."""
        while True:
            frame = self.read_frame(timeout)
            msg_id, serial, body = jt808_parse(frame)
            if msg_id not in (0x8001, 0x8100):
                return frame, msg_id, serial, body

    def general_response(self, serial: int, msg_id: int, result: int = 0) -> None:
        self.send(0x0001, struct.pack(">HHB", serial, msg_id, result))

    def close(self) -> None:
        self.sock.close()


# --- HTTP --------------------------------------------------------------------------------------------

def api(server: Any, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(method, server.url(path), headers=server.headers, timeout=70, **kwargs)


def wait_for(predicate: Any, timeout: float = 5.0, interval: float = 0.02) -> Any:
    deadline = time.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.time() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)


def device_id(server: Any, protocol: str, ident: str | None = None, timeout: float = 5.0) -> int:
    def find() -> int | None:
        for d in server.runtime.devices.all():
            if d["protocol"] == protocol and (ident is None or d["ident"] == ident) and d.get("connected"):
                return int(d["id"])
        return None

    return int(wait_for(find, timeout))


def in_thread(fn: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Runs ``fn`` in a daemon thread (a blocking real-time API call while the test plays the device)."""
    box: dict[str, Any] = {}

    def run() -> None:
        box["value"] = fn(*args, **kwargs)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    box["thread"] = thread
    return box


def joined(box: dict[str, Any], timeout: float = 30) -> Any:
    box["thread"].join(timeout)
    assert "value" in box, "the call did not return in time (or raised in its thread)"
    return box["value"]
