"""The node's link to NATS on a real NATS server: the device→node map, liveness, a dead node's
devices, the relay's rule on what crosses, and a node that cannot reach NATS at start."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sinogate.cluster.node import ClusterNode
from sinogate.cluster.relay import EventRelay
from sinogate.server.bus import EventBus
from sinogate.server.tasks import Tasks
from tests.cluster.test_two_nodes import NATS, drop_buckets, nats_up
from tests.conftest import free_port

pytestmark = pytest.mark.timeout(60)


@dataclass
class FakeSession:
    device_id: int | None
    conn_id: int
    closed: bool = False


@pytest.fixture
def cluster() -> Any:
    if not nats_up():
        pytest.fail("NATS with JetStream is not running on 127.0.0.1:4222 (make test starts it)")
    name = f"u{uuid.uuid4().hex[:10]}"
    yield name
    drop_buckets(name)


def test_the_map_liveness_and_a_dead_nodes_devices(cluster: str) -> None:
    async def main() -> None:
        tasks = Tasks()
        a = ClusterNode(NATS, "a", tasks, heartbeat=0.2, cluster=cluster)
        b = ClusterNode(NATS, "b", tasks, heartbeat=0.2, cluster=cluster)
        lost: list[tuple[str, list[int]]] = []
        a.on_node_lost(lambda node, devices: lost.append((node, sorted(devices))))
        await a.start()
        await b.start()
        try:
            session = FakeSession(7, 70)
            b.on_attach(session)  # type: ignore[arg-type]
            assert await b.claim(session) is None  # nobody had it
            assert await a.owner(7) == "b" and await b.owner(7) == "b"
            assert await a.owner(8) is None
            await asyncio.sleep(0.5)
            assert {n["name"] for n in a.nodes()} == {"a", "b"} and a.leader() and not b.leader()

            # A device moving to A: the claim names B, the node that must let it go.
            moved = FakeSession(8, 80)
            b.on_attach(moved)  # type: ignore[arg-type]
            await b.claim(moved)
            a.on_attach(FakeSession(8, 81))  # type: ignore[arg-type]
            assert await a.claim(FakeSession(8, 81)) == "b"  # type: ignore[arg-type]
            b.on_detach(moved)  # type: ignore[arg-type]
            await asyncio.sleep(0.2)
            assert await a.owner(8) == "a" and await b.owner(8) == "a"  # B's late release left A's entry

            # B dies without a word (no leave, no release): A takes it for dead after three beats.
            for task in b._loops:
                task.cancel()
            await b._nc.close()
            deadline = time.monotonic() + 5
            while not lost and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert lost == [("b", [7])]
            assert await a.owner(7) is None
            assert [n["name"] for n in a.nodes()] == ["a"] and a.leader()
        finally:
            await a.stop()
            with contextlib.suppress(Exception):
                await b.stop()
            await tasks.drain(2)

    asyncio.run(main())


def test_messages_and_packets_cross_only_while_somebody_watches_elsewhere(cluster: str) -> None:
    async def main() -> None:
        tasks = Tasks()
        a, b = (ClusterNode(NATS, n, tasks, heartbeat=0.2, cluster=cluster) for n in "ab")
        bus_a, bus_b = EventBus(), EventBus()
        await a.start()
        await b.start()
        relays = [tasks.spawn(EventRelay(a, bus_a).run()), tasks.spawn(EventRelay(b, bus_b).run())]
        seen = bus_b.subscribe(lambda e: e.get("node") == "a")
        try:
            await asyncio.sleep(0.3)

            def burst(n: int) -> None:
                for kind in ("message", "packet", "command"):
                    bus_a.publish({"type": kind, "device_id": 1, "protocol": "h02", "ident": "1",  # type: ignore[typeddict-item]
                                   "data": {"n": n}})

            burst(1)
            await asyncio.sleep(0.5)
            got = []
            while not seen.queue.empty():
                got.append(seen.queue.get_nowait())
            assert [(e["type"], e["data"]["n"]) for e in got] == [("command", 1)]

            viewer = bus_b.subscribe(viewer=True)  # somebody on B's live stream
            deadline = time.monotonic() + 3
            while not a.others_watching() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            burst(2)
            await asyncio.sleep(0.5)
            got = []
            while not seen.queue.empty():
                got.append(seen.queue.get_nowait())
            assert [(e["type"], e["data"]["n"]) for e in got] == [("message", 2), ("packet", 2), ("command", 2)]
            assert all(e["node"] == "a" for e in got)
            bus_b.unsubscribe(viewer)
        finally:
            for task in relays:
                task.cancel()
            await a.stop()
            await b.stop()
            await tasks.drain(2)

    asyncio.run(main())


def test_a_node_that_cannot_reach_nats_says_so_in_one_line(tmp_path: Path) -> None:
    dead = f"nats://127.0.0.1:{free_port()}"
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "sinogate", "serve", "--data-dir", str(tmp_path), "--store",
         "postgresql://postgres@127.0.0.1/test?schema=never_used", "--cluster", dead, "--http-port", "0",
         "--h02-port", "0", "--jt808-port", "0", "--log-level", "ERROR"],
        capture_output=True, text=True, timeout=50,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith(f"error: cannot reach NATS at {dead} within 10 s")
    assert "Traceback" not in proc.stderr
    assert time.monotonic() - started < 40
