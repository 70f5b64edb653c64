"""Prometheus metrics of the process (``GET /metrics``, or a separate listener without a token).

Cheap on the ingest path: phase 2 (``committed``) only adds to plain integers (a dict per label
set, a list of histogram buckets); prometheus-client builds the families when scraped.

| metric | type | labels |
|---|---|---|
| ``sinogate_connections`` | gauge | protocol, transport |
| ``sinogate_devices``, ``sinogate_devices_connected`` | gauge | |
| ``sinogate_messages_total`` | counter (stored messages) | protocol, transport |
| ``sinogate_decode_errors_total`` | counter | protocol, kind |
| ``sinogate_commit_latency_seconds`` | histogram: reception → durable commit of a batch | |
| ``sinogate_events_total`` | counter (analytics events) | type |
| ``sinogate_command_status_total`` | counter (command status changes) | status |
| ``sinogate_queue_depth`` | gauge | queue (mqtt, notifications) |
| ``sinogate_mqtt_connected``, ``sinogate_mqtt_connects_total`` | gauge, counter | |
| ``sinogate_mqtt_published_total``, ``_dropped_total``, ``_failed_total`` | counter | |
| ``sinogate_mqtt_commands_total`` | counter (inbound commands) | outcome |
| ``sinogate_notifications_total`` | counter | target, outcome (delivered, failed_attempt, skipped_attempt, |
| | | dead_lettered, dropped) |
| ``sinogate_notifications_suppressed_total`` | counter (duplicates) | |
| ``sinogate_publisher_failures_total`` | counter (after-commit publishers that raised) | |
| ``sinogate_limit_hits_total`` | counter (device-side limits hit: connections, garbage, registrations, …) | limit |
| ``sinogate_idents_refused_total`` | counter (idents no device may have) | reason |
| ``sinogate_registrations_pending`` | gauge (idents waiting for the registration budget) | |
| ``sinogate_connections_open`` | gauge (TCP device connections) / ``_max`` their limit | |
| ``sinogate_junk_dropped_bytes_total`` | counter (raw junk not stored: over the sample or budget) | |
| ``sinogate_reassembly_bytes``, ``_dropped_total`` | gauge, counter (JT/T 808 split messages) | reason |
| ``sinogate_store_degraded`` | gauge: 1 while the store takes no writes (disk full) | |
| ``sinogate_acks_withheld_total`` | counter (reads not acknowledged: the store could not commit them) | |

Decode errors are counted by the sessions (``server.guard.Guard.count_decode_error``), whatever
the log level.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.process_collector import ProcessCollector

from sinogate.ingest import Committed
from sinogate.interfaces import DeviceConnection, TaskRunner
from sinogate.model.device import BusEvent

log = logging.getLogger("sinogate.metrics")

BUCKETS: tuple[float, ...] = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CONTENT_TYPE = CONTENT_TYPE_LATEST


class Connections(Protocol):
    def connections(self) -> list[DeviceConnection]: ...


class Devices(Protocol):
    def all(self) -> list[dict[str, Any]]: ...


class Subscribable(Protocol):
    def subscribe(self, accept: Callable[[BusEvent], bool] = ..., *, types: frozenset[str] | None = ...) -> Any: ...

    def unsubscribe(self, sub: Any) -> None: ...


class Metrics:
    """After-commit publisher and scrape-time collector; see the module docstring."""

    name = "metrics"

    def __init__(self, sessions: Connections, devices: Devices, bus: Subscribable,
                 clock: Callable[[], float] = time.time) -> None:
        self._sessions = sessions
        self._devices = devices
        self._bus = bus
        self._clock = clock
        self.messages: dict[tuple[str, str], int] = {}
        self.events: dict[str, int] = {}
        self.commands: dict[str, int] = {}
        self.decode_errors: dict[tuple[str, str], int] = {}  # the guard's, once watched
        self._buckets = [0] * (len(BUCKETS) + 1)
        self._latency_sum = 0.0
        self._sources: dict[str, Any] = {}
        self._task: asyncio.Task[Any] | None = None
        self._http: Any = None
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(self))
        ProcessCollector(registry=self.registry)

    def watch(self, **sources: Any) -> None:
        """Adds components read at scrape time: ``mqtt`` (bridge), ``notifications``, ``ingest``,
        ``guard`` (device-side limits), ``health`` (the store's state), ``reassembly`` (JT/T 808 pool)."""
        self._sources.update({k: v for k, v in sources.items() if v is not None})
        guard = self._sources.get("guard")
        if guard is not None:
            self.decode_errors = guard.decode_errors

    # -- phase 2 --------------------------------------------------------------------------------
    def committed(self, batch: Committed) -> None:
        if batch.messages:
            key = (batch.source.protocol, batch.source.transport)
            self.messages[key] = self.messages.get(key, 0) + len(batch.messages)
            latency = max(0.0, self._clock() - batch.now)
            self._buckets[bisect.bisect_left(BUCKETS, latency)] += 1
            self._latency_sum += latency
        for event in batch.events:
            kind = str(event.get("type"))
            self.events[kind] = self.events.get(kind, 0) + 1

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self, tasks: TaskRunner) -> None:
        self._task = tasks.spawn(self._bus_loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._http is not None:
            self._http.should_exit = True

    async def _bus_loop(self) -> None:
        # (an event relayed from another node of a cluster is counted by that node)
        sub = self._bus.subscribe(lambda e: "node" not in e, types=frozenset({"command"}))
        try:
            while True:
                event = await sub.get()
                status = str((event.get("data") or {}).get("status") or "unknown")
                self.commands[status] = self.commands.get(status, 0) + 1
        finally:
            self._bus.unsubscribe(sub)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    async def serve(self, host: str, port: int, tasks: TaskRunner) -> int:
        """A separate HTTP listener serving ``/metrics`` without a token; returns its port."""
        import uvicorn
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import Response
        from starlette.routing import Route

        async def metrics(_request: Request) -> Response:
            return Response(self.render(), media_type=CONTENT_TYPE)

        app = Starlette(routes=[Route("/metrics", metrics)])
        server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                                               lifespan="off"))
        server.install_signal_handlers = lambda: None  # type: ignore[attr-defined]
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            sock.close()
            raise
        self._http = server
        tasks.spawn(server.serve(sockets=[sock]))
        while not server.started:
            await asyncio.sleep(0.01)
        bound = int(sock.getsockname()[1])
        log.info("metrics listening on http://%s:%s/metrics", host, bound)
        return bound

    # -- scrape ---------------------------------------------------------------------------------
    def collect(self) -> Iterator[Metric]:
        conns = GaugeMetricFamily("sinogate_connections", "Open device connections", labels=["protocol", "transport"])
        by_kind: dict[tuple[str, str], int] = {}
        for session in self._sessions.connections():
            key = (session.protocol, session.transport_name)
            by_kind[key] = by_kind.get(key, 0) + 1
        for (protocol, transport), n in sorted(by_kind.items()):
            conns.add_metric([protocol, transport], n)
        yield conns
        devices = self._devices.all()
        yield GaugeMetricFamily("sinogate_devices", "Registered devices", value=len(devices))
        yield GaugeMetricFamily("sinogate_devices_connected", "Devices with a live connection",
                                value=sum(1 for d in devices if d.get("connected")))
        yield _counter("sinogate_messages", "Messages stored", ["protocol", "transport"], self.messages)
        yield _counter("sinogate_decode_errors", "Frames with decode errors", ["protocol", "kind"],
                       self.decode_errors)
        yield _counter("sinogate_events", "Analytics events", ["type"], {(k,): v for k, v in self.events.items()})
        yield _counter("sinogate_command_status", "Command status changes", ["status"],
                       {(k,): v for k, v in self.commands.items()})
        cumulative, buckets = 0, []
        for bound, count in zip([*BUCKETS, float("inf")], self._buckets, strict=True):
            cumulative += count
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
        yield HistogramMetricFamily("sinogate_commit_latency_seconds",
                                    "Reception of a batch to its durable commit (pipeline + store)",
                                    buckets=buckets, sum_value=self._latency_sum)
        depth = GaugeMetricFamily("sinogate_queue_depth", "Items waiting in a queue", labels=["queue"])
        mqtt = self._sources.get("mqtt")
        notifications = self._sources.get("notifications")
        if mqtt is not None:
            depth.add_metric(["mqtt"], mqtt.depth)
        if notifications is not None:
            depth.add_metric(["notifications"], notifications.depth)
        yield depth
        if mqtt is not None:
            yield GaugeMetricFamily("sinogate_mqtt_connected", "1 while the broker is connected",
                                    value=1 if mqtt.connected else 0)
            yield CounterMetricFamily("sinogate_mqtt_connects", "Connections made to the broker", value=mqtt.connects)
            yield CounterMetricFamily("sinogate_mqtt_published", "Publishes the broker acknowledged",
                                      value=mqtt.published)
            yield CounterMetricFamily("sinogate_mqtt_dropped", "Messages and events not published: queue full",
                                      value=mqtt.dropped)
            yield CounterMetricFamily("sinogate_mqtt_failed", "Publishes interrupted by a lost connection (retried)",
                                      value=mqtt.failed)
            inbound = CounterMetricFamily("sinogate_mqtt_commands", "Inbound command requests", labels=["outcome"])
            inbound.add_metric(["accepted"], mqtt.commands_received - mqtt.commands_rejected)
            inbound.add_metric(["rejected"], mqtt.commands_rejected)
            yield inbound
        if notifications is not None:
            family = CounterMetricFamily("sinogate_notifications", "Notification deliveries",
                                         labels=["target", "outcome"])
            for outcome, counts in (("delivered", notifications.delivered), ("failed_attempt", notifications.failed),
                                    ("skipped_attempt", notifications.skipped), ("dead_lettered", notifications.dead),
                                    ("dropped", notifications.dropped)):
                for target, n in sorted(counts.items()):
                    family.add_metric([target, outcome], n)
            yield family
            yield CounterMetricFamily("sinogate_notifications_suppressed", "Duplicate events not delivered again",
                                      value=notifications.suppressed)
        ingest = self._sources.get("ingest")
        if ingest is not None:
            yield CounterMetricFamily("sinogate_publisher_failures", "After-commit publishers that raised",
                                      value=ingest.publisher_failures)
        yield from self._limits()

    def _limits(self) -> Iterator[Metric]:
        """The device-side limits (``server.guard``), the JT/T 808 reassembly pool and the store's state."""
        guard = self._sources.get("guard")
        if guard is not None:
            yield _counter("sinogate_limit_hits", "Device-side limits hit", ["limit"],
                           {(k,): v for k, v in guard.hits.items()})
            yield _counter("sinogate_idents_refused", "Idents refused (no device may have them)", ["reason"],
                           {(k,): v for k, v in guard.refused_idents.items()})
            yield GaugeMetricFamily("sinogate_registrations_pending", "Idents waiting for the registration budget",
                                    value=len(guard.pending))
            yield GaugeMetricFamily("sinogate_connections_open", "Open TCP device connections", value=guard.tcp_open)
            yield GaugeMetricFamily("sinogate_connections_max", "Limit of open TCP device connections",
                                    value=guard.max_connections)
            yield CounterMetricFamily("sinogate_junk_dropped_bytes", "Raw junk bytes not stored (over the sample "
                                      "or the budget)", value=guard.junk_dropped)
            yield CounterMetricFamily("sinogate_acks_withheld", "Reads not acknowledged: the store could not "
                                      "commit them", value=guard.acks_withheld)
        pool = self._sources.get("reassembly")
        if pool is not None:
            yield GaugeMetricFamily("sinogate_reassembly_bytes", "Bytes of JT/T 808 split messages held",
                                    value=pool.bytes)
            dropped = CounterMetricFamily("sinogate_reassembly_dropped", "Incomplete JT/T 808 split messages "
                                          "dropped", labels=["reason"])
            dropped.add_metric(["limit"], pool.evicted)
            dropped.add_metric(["age"], pool.expired)
            yield dropped
        health = self._sources.get("health")
        if health is not None:
            yield GaugeMetricFamily("sinogate_store_degraded", "1 while the store takes no writes (disk full)",
                                    value=1 if health.degraded else 0)


def _counter(name: str, doc: str, labels: list[str], values: dict[Any, int]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=labels)
    for key, n in sorted(values.items()):
        family.add_metric(list(key), n)
    return family


class _Collector:
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return self._metrics.collect()
