"""Two ``sinogate serve`` nodes on one PostgreSQL store and one NATS (JetStream) server.

A device on node A; a command through node B's API reaches it and its reply shows through both;
node A is killed with -9, the device reconnects to node B, and its queued command, its analytics
state (the computed odometer) and every acknowledged message are there."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sinogate.analytics.geo import distance_km
from sinogate.cluster.node import delete_buckets
from tests.commands.devices import H02Device, command_time, in_thread, joined, wait_for
from tests.conftest import free_port
from tests.server.frames import AckedStream, h02_v1
from tests.store.pg import schema_url

pytestmark = pytest.mark.timeout(180)

NATS = "nats://127.0.0.1:4222"
TOKEN = "cluster-test-token"
IDENT = "4210051999"
PHONE = "013900000001"


def nats_up() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 4222), timeout=1).close()
        return True
    except OSError:
        return False


class Node:
    def __init__(self, name: str, data: Path, store: str, cluster: str) -> None:
        self.name = name
        self.h02_port, self.jt808_port, self.http_port = free_port(), free_port(), free_port()
        env = {**os.environ, "SINOGATE_CLUSTER_NAME": cluster, "SINOGATE_CLUSTER_HEARTBEAT": "0.5",
               "SINOGATE_STATE_FLUSH_SECONDS": "0.5"}
        self.log = data / f"{name}.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sinogate", "serve", "--data-dir", str(data / name), "--host", "127.0.0.1",
             "--h02-port", str(self.h02_port), "--jt808-port", str(self.jt808_port), "--http-port", str(self.http_port),
             "--http-host", "127.0.0.1", "--no-udp", "--token", TOKEN, "--store", store, "--cluster", NATS,
             "--node-name", name, "--log-level", "INFO"],
            stdout=subprocess.DEVNULL, stderr=open(self.log, "wb"), env=env,  # noqa: SIM115
        )
        deadline = time.time() + 30
        while True:
            try:
                if httpx.get(self.url("/health"), timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.time() > deadline:
                raise AssertionError(f"node {name} did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.1)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.http_port}{path}"

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, self.url(path), headers={"Authorization": f"FlespiToken {TOKEN}"},
                             timeout=40, **kwargs)

    def result(self, path: str) -> list[dict[str, Any]]:
        resp = self.api("GET", path)
        assert resp.status_code == 200, resp.text
        return list(resp.json()["result"])

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def store_url(request: pytest.FixtureRequest) -> str:
    return schema_url(request)


@pytest.fixture
def nodes(tmp_path: Path, store_url: str) -> Iterator[tuple[Node, Node]]:
    if not nats_up():
        pytest.fail("NATS with JetStream is not running on 127.0.0.1:4222 (make test starts it)")
    cluster = f"t{uuid.uuid4().hex[:10]}"
    a = Node("a", tmp_path, store_url, cluster)
    b = Node("b", tmp_path, store_url, cluster)
    try:
        yield a, b
    finally:
        for node in (a, b):
            node.stop()
        drop_buckets(cluster)


def drop_buckets(cluster: str) -> None:
    """JetStream keeps buckets on disk: a test's own go with it."""
    asyncio.run(delete_buckets(NATS, cluster))


def device_on(node: Node) -> int:
    def find() -> int | None:
        for d in node.result("/gw/devices/all"):
            if d["configuration"]["ident"] == IDENT:
                return int(d["id"])
        return None

    return int(wait_for(find, timeout=10))


def test_two_nodes_share_devices_commands_state_and_survive_kill(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    now = int(time.time())
    dev = H02Device(a.h02_port, IDENT)
    # Three fixes ~1.1 km apart northwards: the odometer (analytics state on node A) counts them.
    for i in range(3):
        dev.send(h02_v1(IDENT, now - 300 + i * 60, 22.5 + i * 0.01, 114.0, knots=20.0))
    device = device_on(a)
    assert device_on(b) == device  # registered by A, known to B

    def messages(node: Node) -> list[dict[str, Any]]:
        return node.result(f"/gw/devices/{device}/messages")

    stored = wait_for(lambda: len(messages(b)) == 3 and messages(b), timeout=10)
    km_on_a = stored[-1]["odometer.computed"]
    assert km_on_a == pytest.approx(2.224, abs=0.01)
    # Connection state and telemetry through the node that does not hold the device.
    assert wait_for(lambda: next(d for d in b.result("/gw/devices/all") if d["id"] == device)["connected"])
    telemetry = b.result(f"/gw/devices/{device}/telemetry/all")[0]["telemetry"]
    assert telemetry["position.latitude"]["value"] == pytest.approx(22.52, abs=1e-5)

    # A real-time command through B reaches the device on A; its reply shows through both nodes.
    box = in_thread(b.api, "POST", f"/gw/devices/{device}/commands",
                    json=[{"name": "engine.resume", "timeout": 15}])
    frame = dev.read_command(timeout=15)
    assert frame.startswith(f"*HQ,{IDENT},S20,".encode()) and frame.endswith(b",1,0#"), frame
    at = time.gmtime(now - 120)  # the reply's fix: where the last one was, a minute later
    fix = f"{time.strftime('%H%M%S', at)},A,2231.2000,N,11400.0000,E,0.00,0,{time.strftime('%d%m%y', at)},FFFFFBFF"
    dev.send(f"*HQ,{IDENT},V4,S20,DONE,{command_time(frame)},{fix}#")
    resp = joined(box)
    assert resp.status_code == 200, resp.text
    done = resp.json()["result"][0]
    assert done["status"] == "processed" and done["executed"] is True and done["response"].startswith("S20,DONE")
    for node in (a, b):
        got = node.result(f"/gw/devices/{device}/commands-result/{done['id']}")[0]
        assert got["status"] == "processed" and got["reply"]["message.type"] == "V4"

    # Queued through B while the device is on A: A adopts it and writes it at once.
    queued = b.api("POST", f"/gw/devices/{device}/commands-queue", json=[{"name": "custom", "properties":
                                                                          {"payload": "RCONF"}, "ttl": 600}])
    assert queued.status_code == 200, queued.text
    first = queued.json()["result"][0]
    assert dev.read_command(timeout=10).startswith(b"RCONF")
    wait_for(lambda: a.result(f"/gw/devices/{device}/commands-queue/all")[0]["status"] == "sent", timeout=10)

    # Node A dies with the command sent and unanswered; let the state write-back pass first.
    time.sleep(1.5)
    a.kill()
    dev.close()
    before = messages(b)
    acknowledged, last = len(before), before[-1]  # the command's reply carried a fix too

    # The device reconnects to B: the command goes out again, and the odometer goes on from A's total.
    dev = H02Device(b.h02_port, IDENT)
    dev.send(h02_v1(IDENT, now - 60, 22.53, 114.0, knots=20.0))
    again = dev.read_command(timeout=15)
    assert again.startswith(b"RCONF"), again
    after = wait_for(lambda: len(messages(b)) > acknowledged and messages(b), timeout=10)
    assert len(after) == acknowledged + 1  # nothing acknowledged was lost, nothing doubled
    step = distance_km(last["position.latitude"], last["position.longitude"], 22.53, 114.0)
    assert step > 1.0
    assert after[-1]["odometer.computed"] == pytest.approx(last["odometer.computed"] + step, abs=0.01)
    pending = b.result(f"/gw/devices/{device}/commands-queue/all")
    assert [(c["id"], c["status"], c["attempts"]) for c in pending] == [(first["id"], "sent", 2)]
    telemetry = b.result(f"/gw/devices/{device}/telemetry/all")[0]["telemetry"]
    assert telemetry["position.latitude"]["value"] == pytest.approx(22.53, abs=1e-5)
    assert telemetry["odometer.computed"]["value"] == after[-1]["odometer.computed"]
    dev.close()


def sse(lines: Any, wanted: Callable[[str, dict[str, Any]], bool], limit: int = 200) -> dict[str, Any]:
    """The first server-sent event ``wanted(type, data)`` takes."""
    event = ""
    for _ in range(limit):
        line = next(lines)
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            data = json.loads(line[6:])
            if wanted(event, data):
                return dict(data)
    raise AssertionError("no such event")


def test_what_is_done_through_either_node_applies_where_the_device_is(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    now = int(time.time())
    dev = H02Device(a.h02_port, IDENT)
    dev.send(h02_v1(IDENT, now - 600, 22.5, 114.0, knots=5.0))
    device = device_on(a)
    assert device_on(b) == device

    # A geofence and an odometer set through B, for the device on A.
    made = b.api("POST", "/gw/geofences", json=[{"name": "yard", "geometry": {
        "type": "circle", "center": {"lat": 22.51, "lon": 114.0}, "radius": 0.3}}])
    assert made.status_code == 200, made.text
    fence = made.json()["result"][0]["id"]
    wait_for(lambda: [g["id"] for g in a.result("/gw/geofences")] == [fence], timeout=10)
    set_km = b.api("PUT", f"/gw/devices/{device}/odometer", json={"value": 1000})
    assert set_km.status_code == 200, set_km.text

    # B's live stream shows what the device sends to A, with A's analytics.
    with httpx.stream("GET", b.url(f"/gw/devices/{device}/stream"), params={"token": TOKEN},
                      timeout=30) as stream:
        lines = stream.iter_lines()
        assert ": connected" in [next(lines) for _ in range(2)]
        time.sleep(1.5)  # B's next heartbeat tells A that somebody watches
        dev.send(h02_v1(IDENT, now - 540, 22.51, 114.0, knots=5.0))  # 1.11 km north: in the yard
        live = sse(lines, lambda kind, d: kind == "message" and d["data"].get("timestamp") == now - 540)
        assert live["node"] == "a" and live["device_id"] == device
        assert live["data"]["odometer.computed"] == pytest.approx(1001.112, abs=0.01)
        entered = sse(lines, lambda kind, d: kind == "event" and d["data"]["type"] == "geofence.enter")
        assert entered["data"]["geofence.id"] == fence
    assert [e["type"] for e in b.result(f"/gw/devices/{device}/events")
            if e["type"].startswith("geofence")] == ["geofence.enter"]

    # The device opens a connection to B while A still holds it: A lets it go at once, and the
    # state, the fence and the odometer go on on B.
    moved = H02Device(b.h02_port, IDENT)
    moved.send(h02_v1(IDENT, now - 480, 22.52, 114.0, knots=5.0))
    dev.sock.settimeout(10)
    while dev.sock.recv(4096):  # what A still wrote (replies), then the end: A closed it
        pass
    last = wait_for(lambda: [m for m in b.result(f"/gw/devices/{device}/messages")
                             if m["timestamp"] == now - 480], timeout=10)[0]
    assert last["odometer.computed"] == pytest.approx(1002.224, abs=0.01)
    assert [e["type"] for e in a.result(f"/gw/devices/{device}/events")
            if e["type"].startswith("geofence")] == ["geofence.enter", "geofence.exit"]

    # Connected nowhere: a real-time command through A says so.
    moved.close()
    wait_for(lambda: not next(d for d in a.result("/gw/devices/all") if d["id"] == device)["connected"],
             timeout=10)
    refused = a.api("POST", f"/gw/devices/{device}/commands", json=[{"name": "engine.resume", "timeout": 5}])
    assert refused.status_code == 400
    assert "not connected" in refused.json()["errors"][0]["reason"]


def test_what_a_killed_node_acknowledged_is_stored(nodes: tuple[Node, Node], store_url: str) -> None:
    """JT/T 808 reports streamed to node A, A killed with -9 mid-stream: every report A answered
    with 0x8001 is in the shared store, and node B serves it."""
    a, b = nodes
    base = int(time.time()) - 10_000
    stream = AckedStream(socket.create_connection(("127.0.0.1", a.jt808_port), timeout=10), PHONE, base)
    stream.send(enough=1000)
    a.kill()  # mid-stream: more frames are in flight
    snapshot = stream.close()
    assert len(snapshot) >= 1000, "node A acknowledged too little before the kill"

    [device] = [d["id"] for d in b.result("/gw/devices/all") if d["configuration"]["ident"] == PHONE.lstrip("0")]
    stored = b.api("GET", f"/gw/devices/{device}/messages", params={"data": json.dumps({"count": 10_000})})
    assert stored.status_code == 200, stored.text
    serials = {round(m["timestamp"] - base) for m in stored.json()["result"]}
    missing = [serial for serial in snapshot if serial not in serials]
    assert not missing, f"{len(missing)} acknowledged messages were lost, e.g. serials {missing[:10]}"
