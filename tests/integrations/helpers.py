"""Real components for the integration tests: the Mosquitto broker at 127.0.0.1:1883 (a
subscriber that records what arrives), and an HTTP receiver started by the test (records every
request; can answer slowly or with an error status)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

BROKER_HOST, BROKER_PORT = "127.0.0.1", 1883


def broker_up(host: str = BROKER_HOST, port: int = BROKER_PORT) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def unique_prefix() -> str:
    return f"sgtest-{uuid.uuid4().hex[:10]}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.02, what: str = "") -> Any:
    deadline = time.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.time() > deadline:
            raise AssertionError(f"condition not met in {timeout:g} s" + (f": {what}" if what else ""))
        time.sleep(interval)


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool
    at: float
    user: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.payload)


class Subscriber:
    """A paho MQTT 5 client in its own network thread, recording every message it gets."""

    def __init__(self, *topics: str, host: str = BROKER_HOST, port: int = BROKER_PORT) -> None:
        self.messages: list[Received] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"sgtest-sub-{uuid.uuid4().hex[:8]}",
                                  protocol=paho.MQTTv5)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_a: self._subscribed.set()
        self.client.connect(host, port, keepalive=30)
        self.client.loop_start()
        if topics:
            self.client.subscribe([(t, paho.SubscribeOptions(qos=1, retainAsPublished=True)) for t in topics])
            assert self._subscribed.wait(5), "subscription not acknowledged"

    def _on_message(self, _client: Any, _userdata: Any, msg: paho.MQTTMessage) -> None:
        user: dict[str, str] = {}
        props = getattr(msg, "properties", None)
        for key, value in getattr(props, "UserProperty", None) or []:
            user[key] = value
        with self._lock:
            self.messages.append(Received(msg.topic, bytes(msg.payload), bool(msg.retain), time.time(), user))

    def on(self, topic: str) -> list[Received]:
        with self._lock:
            return [m for m in self.messages if m.topic == topic]

    def matching(self, predicate: Callable[[Received], bool]) -> list[Received]:
        with self._lock:
            return [m for m in self.messages if predicate(m)]

    def wait(self, topic: str, count: int = 1, timeout: float = 5.0) -> list[Received]:
        return wait_for(lambda: (got := self.on(topic)) and len(got) >= count and got, timeout,  # type: ignore[return-value]
                        what=f"{count} message(s) on {topic}; got topics {sorted({m.topic for m in self.messages})}")

    def publish(self, topic: str, payload: bytes | str, retain: bool = False, response_topic: str | None = None,
                correlation: bytes | None = None) -> None:
        props = None
        if response_topic is not None:
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            props.ResponseTopic = response_topic
            if correlation is not None:
                props.CorrelationData = correlation
        info = self.client.publish(topic, payload, qos=1, retain=retain, properties=props)
        info.wait_for_publish(5)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def clear_retained(prefix: str, host: str = BROKER_HOST, port: int = BROKER_PORT) -> int:
    """Removes every retained message under ``prefix/#`` (the broker persists them)."""
    sub = Subscriber(f"{prefix}/#", host=host, port=port)
    time.sleep(0.3)
    topics = {m.topic for m in sub.matching(lambda m: m.retain and bool(m.payload))}
    for topic in topics:
        sub.publish(topic, b"", retain=True)
    sub.close()
    return len(topics)


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """An HTTP server on 127.0.0.1 (a thread per request) that records every request and answers
    with ``status`` after ``delay`` seconds (both changeable, per path too)."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.status = 200
        self.delay = 0.0
        self.per_path: dict[str, tuple[int, float]] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                receiver.requests.append(Request("POST", self.path, {k.lower(): v for k, v in self.headers.items()},
                                                 body, time.time()))
                status, delay = receiver.per_path.get(self.path, (receiver.status, receiver.delay))
                if delay:
                    time.sleep(delay)
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def on(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def make_certificates(directory: Path) -> Path:
    """A throw-away CA and a server certificate for 127.0.0.1/localhost signed by it (openssl);
    returns the CA certificate's path."""
    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
        "-subj", "/CN=sinogate test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    (directory / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out",
        "server.crt", "-days", "2", "-extfile", "ext.cnf")
    return directory / "ca.crt"


class PrivateBroker:
    """A second Mosquitto on a free port, for tests that stop and start the broker."""

    def __init__(self, port: int | None = None, tls: bool = False) -> None:
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="sgtest-mosquitto-"))
        self.conf = self.dir / "mosquitto.conf"
        conf = f"user root\nlistener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        if tls:
            self.ca = make_certificates(self.dir)
            conf += (f"cafile {self.dir / 'ca.crt'}\ncertfile {self.dir / 'server.crt'}\n"
                     f"keyfile {self.dir / 'server.key'}\n")
        self.conf.write_text(conf)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.proc = subprocess.Popen([binary, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_for(lambda: broker_up(port=self.port), 5, what="private mosquitto up")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
            self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
