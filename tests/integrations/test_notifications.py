"""Notification rules over the API, delivered to real receivers: a webhook (HTTP server started by
the test, HMAC signature checked), Apprise's ``json://`` scheme pointed at it, the real MQTT
broker; a dead target retried with backoff and then dead-lettered (visible in the API), a slow
target that delays neither ingest nor the other target, duplicates delivered once, and
``device.unknown`` for an ident nobody registered."""

from __future__ import annotations

import hashlib
import hmac
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from sinogate.ingest import Committed, Source
from tests.conftest import start_gateway
from tests.integrations.helpers import Receiver, Subscriber, free_port, wait_for
from tests.server.frames import h02_v1

pytestmark = pytest.mark.timeout(90)

FAST = {"notify_backoff": 0.05, "notify_retries": 2, "notify_timeout": 2.0}


class Client:
    def __init__(self, server: Any) -> None:
        self.server = server

    def call(self, method: str, path: str, token: str | None = None, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"FlespiToken {token or self.server.token}"}
        return httpx.request(method, self.server.url(path), headers=headers, timeout=30, **kw)

    def ok(self, method: str, path: str, **kw: Any) -> list[Any]:
        r = self.call(method, path, **kw)
        assert r.status_code == 200, (r.status_code, r.text)
        return r.json()["result"]  # type: ignore[no-any-return]

    def device(self, ident: str, name: str = "truck") -> int:
        body = [{"name": name, "configuration": {"ident": ident}, "protocol": "h02"}]
        return int(self.ok("POST", "/gw/devices", json=body)[0]["id"])

    def sos(self, dev: int, ts: float = 1.7e9) -> None:
        """Two messages: normal, then an SOS (the alarm edge fires one ``alarm`` event)."""
        self.ok("POST", f"/gw/devices/{dev}/messages", json=[{"timestamp": ts, "sos.alarm": False}])
        self.ok("POST", f"/gw/devices/{dev}/messages", json=[
            {"timestamp": ts + 1, "sos.alarm": True, "position.latitude": 22.5, "position.longitude": 113.9}])


def test_rules_api(gateway_server: Any) -> None:
    api = Client(gateway_server)
    rule = {"name": "sos", "events": ["alarm", "geofence.*"], "devices": "all",
            "targets": [{"type": "webhook", "url": "http://127.0.0.1:9/hook", "secret": "s3cret"},
                        {"type": "apprise", "url": "json://127.0.0.1:9/x", "template": "{device.name}: {alarm}"},
                        {"type": "mqtt", "topic": "alerts/sos"}]}
    created = api.ok("POST", "/gw/notifications", json=[rule, {**rule, "name": "other", "enabled": False}])
    assert [r["id"] for r in created] == [1, 2]
    assert created[0]["targets"][0]["secret"] == "********"  # never shown
    assert api.ok("GET", "/gw/notifications") == created
    assert api.ok("GET", "/gw/notifications/2") == [created[1]]
    assert [r["id"] for r in api.ok("GET", "/gw/notifications/name=s*")] == [1]
    assert api.call("GET", "/gw/notifications/9").status_code == 404

    # PUT changes the given fields; the masked secret sent back keeps the stored one
    changed = api.ok("PUT", "/gw/notifications/1", json={"enabled": False, "targets": created[0]["targets"]})[0]
    assert changed["enabled"] is False and changed["name"] == "sos"
    stored = gateway_server.run(gateway_server.runtime.store.kv_get("notifications", "1"))
    assert stored["targets"][0]["secret"] == "s3cret"

    bad = [
        ({"name": "x", "events": ["alarm"], "targets": [{"type": "webhook", "url": "ftp://x"}]}, "http"),
        ({"name": "x", "events": ["alarm"], "targets": [{"type": "apprise", "url": "nope://x"}]}, "Apprise"),
        ({"name": "x", "events": ["al arm"], "targets": [{"type": "mqtt", "topic": "a"}]}, "event type"),
        ({"name": "x", "events": ["alarm"], "targets": [{"type": "mqtt", "topic": "a/#"}]}, "wildcards"),
        ({"name": "x", "events": ["alarm"], "targets": [{"type": "sms", "to": "1"}]}, "targets"),
        ({"name": "x", "events": ["alarm"], "filter": "speed >", "targets": [{"type": "mqtt", "topic": "a"}]},
         "filter"),
        ({"name": "x", "events": ["alarm"], "devices": "nope=1", "targets": [{"type": "mqtt", "topic": "a"}]},
         "devices"),
        ({"name": "x", "events": [], "targets": [{"type": "mqtt", "topic": "a"}]}, "events"),
        ({"name": "x", "events": ["alarm"], "targets": []}, "targets"),
        ("not an object", "object"),
    ]
    for body, reason in bad:
        r = api.call("POST", "/gw/notifications", json=body)
        assert r.status_code == 400, (body, r.text)
        assert reason in r.json()["errors"][0]["reason"], (reason, r.text)
    assert api.call("PUT", "/gw/notifications/1", json={"id": 5}).status_code == 400

    # tokens: limited ones see nothing here, read-only ones cannot write
    limited = api.ok("POST", "/platform/tokens", json=[{"devices": "1"}])[0]["key"]
    read_only = api.ok("POST", "/platform/tokens", json=[{"read_only": True}])[0]["key"]
    assert api.call("GET", "/gw/notifications", token=limited).status_code == 403
    assert api.call("GET", "/gw/notifications", token=read_only).status_code == 200
    assert api.call("DELETE", "/gw/notifications/1", token=read_only).status_code == 403

    assert [r["id"] for r in api.ok("DELETE", "/gw/notifications/1,2")] == [1, 2]
    assert api.ok("GET", "/gw/notifications") == []


def test_rules_survive_a_restart(tmp_path: Path) -> None:
    rule = {"name": "keep", "events": ["*"], "targets": [{"type": "mqtt", "topic": "x"}]}
    with start_gateway(tmp_path / "data") as server:
        first = Client(server).ok("POST", "/gw/notifications", json=rule)[0]
        Client(server).ok("DELETE", f"/gw/notifications/{first['id']}")
        second = Client(server).ok("POST", "/gw/notifications", json=rule)[0]
    with start_gateway(tmp_path / "data") as server:
        api = Client(server)
        assert api.ok("GET", "/gw/notifications") == [second]
        assert api.ok("POST", "/gw/notifications", json=rule)[0]["id"] == second["id"] + 1  # ids never reused


def test_sos_reaches_a_signed_webhook_and_apprise(tmp_path: Path, receiver: Receiver) -> None:
    with start_gateway(tmp_path / "data", **FAST) as server:
        api = Client(server)
        dev = api.device("4210051400", "Van 1")
        api.ok("POST", "/gw/notifications", json={
            "name": "SOS", "events": ["alarm"], "filter": "alarm == 'sos'",
            "targets": [
                {"type": "webhook", "url": receiver.url("/hook"), "secret": "k3y", "headers": {"X-Team": "ops"}},
                {"type": "apprise", "url": f"json://127.0.0.1:{receiver.port}/apprise",
                 "template": "{device.name}: {type} {alarm} at {position.latitude},{position.longitude}"},
            ]})
        api.sos(dev)
        hook = wait_for(lambda: receiver.on("/hook"), 10, what="webhook delivery")[0]
        event = hook.json()
        assert event["type"] == "alarm" and event["alarm"] == "sos" and event["device.id"] == dev
        assert event["device.name"] == "Van 1" and event["rule.name"] == "SOS"
        expected = "sha256=" + hmac.new(b"k3y", hook.body, hashlib.sha256).hexdigest()
        assert hook.headers["x-sinogate-signature"] == expected
        assert hook.headers["x-sinogate-event"] == "alarm" and hook.headers["x-team"] == "ops"
        assert hook.headers["content-type"] == "application/json"

        note = wait_for(lambda: receiver.on("/apprise"), 10, what="apprise delivery")[0].json()
        assert note["message"] == "Van 1: alarm sos at 22.5,113.9"
        assert note["title"] == "sinogate: alarm"

        deliveries = api.ok("GET", "/gw/notifications/all/deliveries")
        assert sorted((d["target.type"], d["status"], d["attempts"]) for d in deliveries) == [
            ("apprise", "delivered", 1), ("webhook", "delivered", 1)]
        # an ignition event is not an alarm: nothing more is sent
        api.ok("POST", f"/gw/devices/{dev}/messages", json=[{"timestamp": 1.7e9 + 5, "engine.ignition.status": True}])
        api.ok("POST", f"/gw/devices/{dev}/messages", json=[{"timestamp": 1.7e9 + 6, "engine.ignition.status": False}])
        time.sleep(0.3)
        assert len(receiver.requests) == 2


def test_dead_target_is_retried_then_dead_lettered_and_can_be_retried(tmp_path: Path, receiver: Receiver) -> None:
    dead_port = free_port()  # nothing listens here
    with start_gateway(tmp_path / "data", **FAST) as server:
        api = Client(server)
        dev = api.device("4210051401")
        rule = api.ok("POST", "/gw/notifications", json={
            "name": "dead", "events": ["alarm"],
            "targets": [{"type": "webhook", "url": f"http://127.0.0.1:{dead_port}/hook", "secret": "x"}]})[0]
        started = time.time()
        api.sos(dev)
        dead = wait_for(lambda: api.ok("GET", f"/gw/notifications/{rule['id']}/dead-letters"), 10,
                        what="dead letter")
        assert time.time() - started >= 0.05 + 0.1  # backoff 0.05 s, then 0.1 s
        assert len(dead) == 1
        letter = dead[0]
        assert letter["attempts"] == 3 and letter["rule.id"] == rule["id"] and "ConnectError" in letter["error"]
        assert letter["event"]["alarm"] == "sos" and letter["target"]["secret"] == "********"
        log = api.ok("GET", f"/gw/notifications/{rule['id']}/deliveries")
        assert [(d["status"], d["attempts"]) for d in log] == [("failed", 3)]

        # a receiver that refuses (HTTP 400) is not retried
        receiver.per_path["/refuse"] = (400, 0.0)
        api.ok("PUT", f"/gw/notifications/{rule['id']}", json={"targets": [
            {"type": "webhook", "url": receiver.url("/refuse")}]})
        api.sos(dev, ts=1.7e9 + 100)
        wait_for(lambda: len(api.ok("GET", "/gw/notifications/all/dead-letters")) == 2, 10)
        assert len(receiver.on("/refuse")) == 1
        assert api.ok("GET", "/gw/notifications/all/dead-letters")[-1]["error"] == "HTTP 400"

        # fixed: the dead letters go out again to the rule's current target
        api.ok("PUT", f"/gw/notifications/{rule['id']}", json={"targets": [
            {"type": "webhook", "url": receiver.url("/hook")}]})
        retried = api.ok("POST", f"/gw/notifications/{rule['id']}/dead-letters/retry")
        assert len(retried) == 2
        wait_for(lambda: len(receiver.on("/hook")) == 2, 10, what="dead letters delivered")
        assert api.ok("GET", "/gw/notifications/all/dead-letters") == []
    # dead letters are kept in the store
    with start_gateway(tmp_path / "data", **FAST) as server:
        assert Client(server).ok("GET", "/gw/notifications/all/dead-letters") == []


def test_slow_target_blocks_neither_ingest_nor_the_other_target(tmp_path: Path, receiver: Receiver) -> None:
    receiver.per_path["/slow"] = (200, 5.0)
    with start_gateway(tmp_path / "data", **{**FAST, "notify_timeout": 10.0}) as server:
        api = Client(server)
        dev = api.device("4210051402")
        api.ok("POST", "/gw/notifications", json={
            "name": "two", "events": ["alarm"],
            "targets": [{"type": "webhook", "url": receiver.url("/slow")}, {"type": "webhook", "url": receiver.url()}]})
        for i in range(5):  # five alarms: five slow deliveries pending at once
            api.sos(dev, ts=1.7e9 + 10 * i)
        fast = wait_for(lambda: len(receiver.on("/hook")) == 5 and receiver.on("/hook"), 4.0,
                        what="the fast target served while the slow one hangs")
        assert len(fast) == 5
        durations = []
        for i in range(20):  # ingest goes on: no request waits for the slow target's 5 s
            started = time.perf_counter()
            api.ok("POST", f"/gw/devices/{dev}/messages", json=[{"timestamp": 1.7e9 + 1000 + i}])
            durations.append(time.perf_counter() - started)
        assert max(durations) < 2.5, durations
        wait_for(lambda: len(receiver.on("/slow")) == 5, 10)
        wait_for(lambda: all(d["status"] == "delivered" for d in api.ok("GET", "/gw/notifications/all/deliveries")),
                 10, what="slow deliveries finished")


def test_duplicates_are_delivered_once(tmp_path: Path, receiver: Receiver) -> None:
    with start_gateway(tmp_path / "data", **FAST) as server:
        api = Client(server)
        dev = api.device("4210051403")
        api.ok("POST", "/gw/notifications", json={"name": "d", "events": ["alarm"],
                                                  "targets": [{"type": "webhook", "url": receiver.url()}]})
        service = server.runtime.notifications
        device = server.runtime.devices.get(dev)
        event = {"device.id": dev, "ident": "4210051403", "timestamp": 1.7e9, "type": "alarm", "alarm": "sos"}
        source = Source("h02", "tcp", "127.0.0.1:1", 1, 1)
        for event_id in (11, 12):  # the same event stored twice (a re-sent frame): two ids, one delivery
            batch = Committed(source, device, "4210051403", [], 1.7e9, [{**event, "id": event_id}])
            server.call(service.committed, batch)
        wait_for(lambda: receiver.on("/hook"), 5)
        time.sleep(0.3)
        assert len(receiver.on("/hook")) == 1 and service.suppressed == 1


def test_unknown_ident_and_mqtt_target(tmp_path: Path, prefix: str, receiver: Receiver) -> None:
    config = {**FAST, "auto_register": False, "mqtt_url": "mqtt://127.0.0.1:1883", "mqtt_prefix": prefix}
    with start_gateway(tmp_path / "data", **config) as server:
        wait_for(lambda: server.runtime.mqtt.connected, 10)
        api = Client(server)
        api.ok("POST", "/gw/notifications", json={"name": "strangers", "events": ["device.unknown"], "targets": [
            {"type": "webhook", "url": receiver.url()}, {"type": "mqtt", "topic": f"{prefix}/alerts"}]})
        sub = Subscriber(f"{prefix}/alerts")
        try:
            sock = socket.create_connection(("127.0.0.1", server.h02_port), timeout=5)
            now = time.time()
            for i in range(3):  # one notification, not one per message
                sock.sendall(h02_v1("4210059999", now - 10 + i, 22.5, 113.9))
            hook = wait_for(lambda: receiver.on("/hook"), 10)[0].json()
            assert hook["type"] == "device.unknown" and hook["ident"] == "4210059999"
            assert hook["protocol.name"] == "h02" and hook["device.id"] is None
            published = sub.wait(f"{prefix}/alerts")[0].json()
            assert published["ident"] == "4210059999"
            time.sleep(0.5)
            assert len(receiver.on("/hook")) == 1
            sock.close()
        finally:
            sub.close()
