"""``GET /metrics``: token protection, the separate listener, and the figures after real traffic
(a device over TCP, a bad JT/T 808 frame, an SOS, a queued command, a dead broker and a dead
webhook)."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import start_gateway
from tests.integrations.helpers import free_port, wait_for
from tests.server.frames import h02_v1, jt808_frame, location_body

pytestmark = pytest.mark.timeout(60)


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def _value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def _bad_checksum(frame: bytes) -> bytes:
    """The frame with its checksum byte inverted (decoded leniently, and counted as an error)."""
    raw = frame[1:-1].replace(b"\x7d\x02", b"\x7e").replace(b"\x7d\x01", b"\x7d")
    raw = raw[:-1] + bytes([raw[-1] ^ 0xFF])
    return b"\x7e" + raw.replace(b"\x7d", b"\x7d\x01").replace(b"\x7e", b"\x7d\x02") + b"\x7e"


def test_metrics_after_real_traffic(tmp_path: Path) -> None:
    metrics_port = free_port()
    config = {"metrics_token": "scrape-me-0123456789", "metrics_port": metrics_port,
              "mqtt_url": f"mqtt://127.0.0.1:{free_port()}", "mqtt_queue": 10,
              "notify_backoff": 0.05, "notify_retries": 1}
    with start_gateway(tmp_path / "data", **config) as server:
        url = server.url("/metrics")
        assert httpx.get(url).status_code == 401
        assert httpx.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert httpx.get(url, headers={"Authorization": "Bearer scrape-me-0123456789"}).status_code == 200
        response = httpx.get(url, headers=server.headers)
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
        # the separate listener needs no token
        assert httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").status_code == 200
        assert server.runtime.ports["metrics"] == metrics_port

        headers = server.headers
        dead = free_port()
        httpx.post(server.url("/gw/notifications"), headers=headers, json={
            "name": "dead", "events": ["alarm"], "targets": [{"type": "webhook", "url": f"http://127.0.0.1:{dead}/"}]})
        h02 = socket.create_connection(("127.0.0.1", server.h02_port), timeout=5)
        now = time.time()
        for i in range(12):
            h02.sendall(h02_v1("4210051500", now - 30 + i, 22.5, 113.9, status="FFFBFBFF" if i == 5 else "FFFFFBFF"))
        jt = socket.create_connection(("127.0.0.1", server.jt808_port), timeout=5)
        jt.sendall(_bad_checksum(jt808_frame(0x0200, "013511221122", 1, location_body(now, 22.5, 113.9))))
        wait_for(lambda: len(server.runtime.devices.all()) == 2, 5)
        dev = next(d["id"] for d in server.runtime.devices.all() if d["ident"] == "4210051500")
        queued = httpx.post(server.url(f"/gw/devices/{dev}/commands-queue"), headers=headers,
                            json=[{"name": "status.query"}])
        assert queued.status_code == 200, queued.text

        def scraped() -> dict[Any, float]:
            return _samples(httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text)

        s = wait_for(lambda: (s := scraped()) and _value(s, "sinogate_notifications_total", target="webhook",
                                                         outcome="dead_lettered") == 1 and s, 10)
        assert _value(s, "sinogate_connections", protocol="h02", transport="tcp") == 1
        assert _value(s, "sinogate_connections", protocol="jt808", transport="tcp") == 1
        assert _value(s, "sinogate_devices") == 2 and _value(s, "sinogate_devices_connected") == 2
        assert _value(s, "sinogate_messages_total", protocol="h02", transport="tcp") == 12
        assert _value(s, "sinogate_messages_total", protocol="jt808", transport="tcp") == 1
        assert _value(s, "sinogate_decode_errors_total", protocol="jt808", kind="checksum mismatch") == 1
        assert _value(s, "sinogate_commit_latency_seconds_count") >= 2
        assert _value(s, "sinogate_commit_latency_seconds_bucket", le="+Inf") == \
            _value(s, "sinogate_commit_latency_seconds_count")
        assert _value(s, "sinogate_events_total", type="alarm") == 1
        assert _value(s, "sinogate_command_status_total", status="queued") == 1
        assert _value(s, "sinogate_command_status_total", status="sent") == 1
        assert _value(s, "sinogate_notifications_total", target="webhook", outcome="failed_attempt") == 2
        # the broker is dead: at most 10 items wait (what did not fit is counted as dropped)
        assert _value(s, "sinogate_mqtt_connected") == 0
        assert 0 < _value(s, "sinogate_queue_depth", queue="mqtt") <= 10
        assert _value(s, "sinogate_mqtt_published_total") == 0
        assert ("sinogate_mqtt_dropped_total", ()) in s
        assert _value(s, "process_resident_memory_bytes") > 0
        h02.close()
        jt.close()
