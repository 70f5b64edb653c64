"""A node's link to the other nodes through NATS (core subjects and JetStream key-value buckets).

What lives in NATS (nothing there is the only copy of anything acknowledged: messages, commands
and state are in PostgreSQL; NATS holds who is where and carries requests and live events)::

    (``sinogate`` is the cluster's name, config ``cluster_name``: clusters on one NATS stay apart)
    KV sinogate_nodes    <node> → {"name", "started", "watching"}   TTL 3 heartbeats, re-put each beat
    KV sinogate_devices  d<device id> → {"node", "conn", "since"}   put on attach, deleted on detach;
                         an entry counts only while its node is alive, so a node killed with -9
                         stops owning its devices within three heartbeats without anyone cleaning up
    sinogate.node.<node>.<op>   requests to one node (a command for a device it holds), JSON
    sinogate.events.<node>      that node's live events (bus events), JSON
    sinogate.changed            "reload this from the store" (devices, geofences, rules, ...), JSON

Liveness is judged from the watch on ``sinogate_nodes``: a node not heard for three heartbeats is
dead (JetStream's TTL removes its key silently, so expiry is not an event to wait for).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from sinogate.interfaces import DeviceConnection, TaskRunner

log = logging.getLogger("sinogate.cluster")

MISSED_BEATS = 3
CONNECT_SECONDS = 10.0

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class ClusterError(Exception):
    """NATS cannot be reached, or the node asked did not answer."""


def default_name(http_port: int) -> str:
    """``<host name>-<http port>-<pid>``: unique per running node, also for several on one host."""
    host = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname())[:40]  # a NATS subject token: no dots
    return f"{host}-{http_port}-{os.getpid()}"


async def delete_buckets(url: str, cluster: str) -> None:
    """Deletes a cluster's two buckets (while none of its nodes runs: to change their replicas,
    or after a test or benchmark run; JetStream keeps them on disk)."""
    import nats

    nc = await nats.connect(url, connect_timeout=5, max_reconnect_attempts=0)
    try:
        js = nc.jetstream()
        for bucket in (f"{cluster}_nodes", f"{cluster}_devices"):
            with contextlib.suppress(Exception):  # absent already
                await js.delete_key_value(bucket)
    finally:
        await nc.close()


def _key(device_id: int) -> str:
    return f"d{device_id}"


class ClusterNode:
    """Implements ``SessionListener`` (the device→node map follows attach/detach) and the
    ``CommandRouting`` lookup half; ``request``/``serve`` and ``broadcast``/``on_broadcast`` for
    the rest. ``start`` raises ``ClusterError`` when NATS or JetStream is not there."""

    def __init__(self, url: str, name: str, tasks: TaskRunner, heartbeat: float = 5.0,
                 cluster: str = "sinogate", replicas: int = 1) -> None:
        self.url = url
        self.name = name
        self.cluster = cluster
        self.replicas = replicas
        self._reconnected: list[Callable[[], Any]] = []
        self._last_error = 0.0
        self._stopping = False
        self._nodes_bucket, self._devices_bucket = f"{cluster}_nodes", f"{cluster}_devices"
        self._events, self._changed = f"{cluster}.events", f"{cluster}.changed"
        self.heartbeat = heartbeat
        self._tasks = tasks
        self._nc: Any = None
        self._nodes_kv: Any = None
        self._devices_kv: Any = None
        self._seen: dict[str, tuple[float, dict[str, Any]]] = {}  # node → (last heard, its record)
        self._held: dict[int, int] = {}  # device id → connection id, for the devices attached here
        self._broadcast: dict[str, list[Callable[[dict[str, Any]], Any]]] = {}
        self._loops: list[asyncio.Task[Any]] = []
        self._lost: list[Callable[[str, list[int]], Any]] = []
        self._others_watching = False
        self._alive_before: set[str] | None = None  # None until three beats passed (startup)
        self.watching = False  # somebody watches the live stream here (other nodes then send messages)
        self.started = time.time()

    # lifecycle ---------------------------------------------------------------------------------
    async def start(self) -> None:
        import nats
        from nats.js.api import KeyValueConfig
        from nats.js.errors import BucketNotFoundError

        # nats-py retries even the first connection forever when reconnects are unlimited: a node
        # that cannot reach NATS at start says so instead of hanging.
        try:
            self._nc = await asyncio.wait_for(nats.connect(
                self.url, name=f"sinogate {self.name}", connect_timeout=3, max_reconnect_attempts=-1,
                reconnect_time_wait=1, allow_reconnect=True, error_cb=self._on_error,
                disconnected_cb=self._on_disconnected, reconnected_cb=self._on_reconnected), CONNECT_SECONDS)
        except Exception as exc:  # nats-py raises several unrelated types for "not there"
            raise ClusterError(f"cannot reach NATS at {self.url} within {CONNECT_SECONDS:g} s: "
                               f"{type(exc).__name__} {exc}".rstrip()) from exc
        js = self._nc.jetstream()
        try:
            buckets = []
            for bucket, ttl in ((self._nodes_bucket, self.heartbeat * MISSED_BEATS), (self._devices_bucket, 0.0)):
                try:
                    buckets.append(await js.key_value(bucket))
                except BucketNotFoundError:
                    buckets.append(await js.create_key_value(KeyValueConfig(bucket=bucket, history=1, ttl=ttl,
                                                                            replicas=self.replicas)))
        except Exception as exc:
            await self._nc.close()
            raise ClusterError(f"NATS at {self.url} has no JetStream (start nats-server with -js): {exc}") from exc
        self._nodes_kv, self._devices_kv = buckets
        await self._beat()
        watcher = await self._nodes_kv.watchall()
        self._loops = [self._tasks.spawn(self._watch_nodes(watcher)), self._tasks.spawn(self._beat_loop())]
        await self._nc.subscribe(self._changed, cb=self._on_changed)
        log.info("node %s joined the cluster at %s", self.name, self.url)

    async def stop(self) -> None:
        """Leaves: drops this node's record and its device entries, then closes the connection."""
        self._stopping = True
        for task in self._loops:
            task.cancel()
        if self._nc is None or self._nc.is_closed:
            return
        with contextlib.suppress(Exception):
            for device_id in list(self._held):
                await self._release(device_id)
            await self._nodes_kv.delete(self.name)
        with contextlib.suppress(Exception):
            await self._nc.drain()

    async def _on_error(self, exc: Exception) -> None:
        # One line, at most every 10 s (nats-py's default prints a traceback per reconnect attempt).
        now = time.monotonic()
        if now - self._last_error >= 10.0:
            self._last_error = now
            log.warning("NATS at %s: %s %s", self.url, type(exc).__name__, exc)

    async def _on_disconnected(self) -> None:
        if self._stopping:
            return
        log.warning("node %s lost NATS at %s: commands to other nodes' devices fail until it is back", self.name,
                    self.url)

    async def _on_reconnected(self) -> None:
        log.info("node %s is connected to NATS again", self.name)
        for callback in self._reconnected:
            self._tasks.spawn(callback())

    def on_reconnect(self, callback: Callable[[], Any]) -> None:
        """``callback()`` (a coroutine function) after NATS came back: what other nodes changed
        meanwhile was not heard, so caches are read again."""
        self._reconnected.append(callback)

    def leader(self) -> bool:
        """Is this the live node with the smallest name? (It alone runs cluster-wide chores such
        as the retention purge.)"""
        alive = [name for name in self._seen if self.alive(name)]
        return not alive or min(alive) == self.name

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    # liveness ----------------------------------------------------------------------------------
    async def _beat(self) -> None:
        record = {"name": self.name, "started": self.started, "watching": self.watching,
                  "devices": len(self._held)}
        await self._nodes_kv.put(self.name, orjson.dumps(record))
        self._seen[self.name] = (time.monotonic(), record)

    async def _beat_loop(self) -> None:
        beats = 0
        while True:
            await asyncio.sleep(self.heartbeat)
            beats += 1
            self._recount()  # a node that stopped beating stops counting
            try:
                await self._beat()
                if beats >= MISSED_BEATS:
                    await self._check_lost()
            except Exception as exc:  # NATS away: other nodes will take this one for dead meanwhile
                log.warning("cluster heartbeat failed: %s", exc)

    def on_node_lost(self, callback: Callable[[str, list[int]], Any]) -> None:
        """``callback(node, device_ids)`` when a node stopped beating (killed, cut off): the devices
        the map still gave it, whose entries are removed (every live node runs this)."""
        self._lost.append(callback)

    async def _check_lost(self) -> None:
        alive = {name for name in self._seen if self.alive(name)}
        if self._alive_before is None:  # the first check: entries of nodes dead before we started
            self._alive_before = alive
            await self._sweep(lambda node: node not in alive)
            return
        lost = self._alive_before - alive
        self._alive_before = alive
        for name in sorted(lost):
            log.warning("node %s stopped beating; its devices are disconnected until they reconnect", name)
            await self._sweep(lambda node, name=name: node == name)  # type: ignore[misc]

    async def _sweep(self, dead: Callable[[str], bool]) -> None:
        from nats.js.errors import NoKeysError

        try:
            keys = await self._devices_kv.keys()
        except NoKeysError:
            return
        by_node: dict[str, list[int]] = {}
        for key in keys:
            try:
                entry = await self._devices_kv.get(key)
                node = orjson.loads(entry.value).get("node") if entry.value else None
                if isinstance(node, str) and node != self.name and dead(node):
                    await self._devices_kv.delete(key, last=entry.revision)
                    by_node.setdefault(node, []).append(int(key[1:]))
            except Exception:
                continue  # gone or rewritten meanwhile: a live node has it
        for node, device_ids in by_node.items():
            for callback in self._lost:
                try:
                    result = callback(node, device_ids)
                    if asyncio.iscoroutine(result):
                        await result
                except Exception:
                    log.exception("cleaning up after node %s failed", node)

    async def _watch_nodes(self, watcher: Any) -> None:
        async for entry in watcher:
            if entry is None or not entry.key:
                continue  # the end of the initial values
            if entry.operation in ("DEL", "PURGE") or not entry.value:
                self._seen.pop(entry.key, None)
            else:
                try:
                    self._seen[entry.key] = (time.monotonic(), orjson.loads(entry.value))
                except orjson.JSONDecodeError:
                    continue
            self._recount()

    def alive(self, name: str) -> bool:
        if name == self.name:
            return True
        seen = self._seen.get(name)
        return seen is not None and time.monotonic() - seen[0] < self.heartbeat * MISSED_BEATS

    def nodes(self) -> list[dict[str, Any]]:
        """The live nodes, this one included: ``[{name, started, watching, devices, self}]``."""
        return [{**record, "self": name == self.name} for name, (_, record) in sorted(self._seen.items())
                if self.alive(name)]

    def others_watching(self) -> bool:
        """Does any other live node have somebody on its live stream? (Asked for every live event:
        an attribute, recomputed when a node's record arrives and at every heartbeat.)"""
        return self._others_watching

    def _recount(self) -> None:
        self._others_watching = any(record.get("watching") for name, (_, record) in self._seen.items()
                                    if name != self.name and self.alive(name))

    def set_watching(self, watching: bool) -> None:
        if watching != self.watching:
            self.watching = watching
            self._tasks.spawn(self._beat())  # now, not at the next beat

    # the device → node map ---------------------------------------------------------------------
    def on_attach(self, session: DeviceConnection) -> None:
        """Notes the device as held here; ``claim`` then writes the map."""
        if session.device_id is not None:
            self._held[session.device_id] = session.conn_id

    async def claim(self, session: DeviceConnection) -> str | None:
        """Writes the device's map entry for this node; returns the live node that had it before
        (it must let the device go), or ``None``."""
        device_id = session.device_id
        if device_id is None:
            return None
        previous = await self.owner(device_id, held_here=False)
        value = orjson.dumps({"node": self.name, "conn": session.conn_id, "since": time.time()})
        await self._put(device_id, value)
        return previous

    def on_detach(self, session: DeviceConnection) -> None:
        device_id = session.device_id
        if device_id is None or self._held.get(device_id) != session.conn_id:
            return
        del self._held[device_id]
        self._tasks.spawn(self._release(device_id))

    async def _put(self, device_id: int, value: bytes) -> None:
        try:
            await self._devices_kv.put(_key(device_id), value)
        except Exception as exc:
            log.warning("could not record device %s on node %s: %s", device_id, self.name, exc)

    async def _release(self, device_id: int) -> None:
        """Deletes the device's entry unless another node wrote it meanwhile (it reconnected there)."""
        from nats.js.errors import KeyNotFoundError

        if device_id in self._held:
            return  # attached here again meanwhile
        try:
            entry = await self._devices_kv.get(_key(device_id))
            if orjson.loads(entry.value).get("node") == self.name:
                await self._devices_kv.delete(_key(device_id), last=entry.revision)
        except KeyNotFoundError:
            pass
        except Exception as exc:  # a revision race (another node took it) or NATS away: harmless
            log.debug("device %s entry not released: %s", device_id, exc)

    async def owner(self, device_id: int, held_here: bool = True) -> str | None:
        """The live node that holds the device's connection (this one included), or ``None``.
        ``held_here=False``: another live node according to the map only."""
        from nats.js.errors import KeyNotFoundError

        if held_here and device_id in self._held:
            return self.name
        try:
            entry = await self._devices_kv.get(_key(device_id))
        except KeyNotFoundError:
            return None
        except Exception as exc:
            raise ClusterError(f"device map unavailable: {exc}") from exc
        try:
            node = orjson.loads(entry.value).get("node") if entry.value else None
        except orjson.JSONDecodeError:
            return None
        if not isinstance(node, str) or not self.alive(node) or node == self.name:
            return None  # a dead node's entry, or this node's from before a restart
        return node

    # requests ----------------------------------------------------------------------------------
    def serve(self, op: str, handler: Handler) -> Awaitable[Any]:
        """Answers ``request(self.name, op, ...)`` from other nodes with ``handler(payload)``; each
        request runs in its own task (a real-time command waits for its reply)."""

        async def on_request(msg: Any) -> None:
            self._tasks.spawn(self._answer(msg, handler))

        return self._nc.subscribe(f"{self.cluster}.node.{self.name}.{op}", cb=on_request)  # type: ignore[no-any-return]

    async def _answer(self, msg: Any, handler: Handler) -> None:
        try:
            payload = orjson.loads(msg.data)
            answer = await handler(payload)
        except Exception as exc:
            log.exception("cluster request %s failed", msg.subject)
            answer = {"error": {"kind": "internal", "reason": f"node {self.name}: {exc}"}}
        with contextlib.suppress(Exception):
            await msg.respond(orjson.dumps(answer))

    async def request(self, node: str, op: str, payload: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Asks ``node``; raises ``ClusterError`` when it does not answer within ``timeout``."""
        try:
            reply = await self._nc.request(f"{self.cluster}.node.{node}.{op}", orjson.dumps(payload), timeout=timeout)
        except Exception as exc:  # no responders, timeout, connection closed
            raise ClusterError(f"node {node} did not answer {op}: {type(exc).__name__} {exc}".rstrip()) from exc
        answer = orjson.loads(reply.data)
        if not isinstance(answer, dict):
            raise ClusterError(f"node {node} answered {op} with {answer!r}")
        return answer

    # broadcasts --------------------------------------------------------------------------------
    def broadcast(self, what: str, **fields: Any) -> None:
        """Tells every other node to reload ``what`` from the store (never waits)."""
        if self._nc is None or self._nc.is_closed:
            return
        self._tasks.spawn(self._nc.publish(self._changed, orjson.dumps({"node": self.name, "what": what, **fields})))

    def on_broadcast(self, what: str, callback: Callable[[dict[str, Any]], Any]) -> None:
        """``callback(payload)`` (a coroutine function or a plain one) on another node's ``what``."""
        self._broadcast.setdefault(what, []).append(callback)

    async def _on_changed(self, msg: Any) -> None:
        try:
            payload = orjson.loads(msg.data)
        except orjson.JSONDecodeError:
            return
        if payload.get("node") == self.name:
            return
        for callback in self._broadcast.get(payload.get("what"), []):
            try:
                result = callback(payload)
                if asyncio.iscoroutine(result):
                    await result
            except Exception:
                log.exception("reloading %s after node %s changed it failed", payload.get("what"),
                              payload.get("node"))

    # live events -------------------------------------------------------------------------------
    async def publish_events(self, events: list[dict[str, Any]]) -> None:
        await self._nc.publish(f"{self._events}.{self.name}", orjson.dumps(events))

    async def subscribe_events(self, callback: Callable[[str, list[dict[str, Any]]], None]) -> None:
        """``callback(node, events)`` for every other node's batch of live events."""
        prefix = len(self._events) + 1

        async def on_events(msg: Any) -> None:
            node = msg.subject[prefix:]
            if node == self.name:
                return
            try:
                events = orjson.loads(msg.data)
            except orjson.JSONDecodeError:
                return
            if isinstance(events, list):
                callback(node, events)

        await self._nc.subscribe(f"{self._events}.*", cb=on_events)
