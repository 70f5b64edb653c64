"""The MQTT bridge against the real Mosquitto broker: flespi's topic layout for messages from the
API and from a device socket, retained telemetry for a late subscriber, connection state,
commands queued over MQTT reaching a device with the reply on the log topic, and a broker that
is down (bounded queue, drops counted, reconnect with backoff, ingest unaffected)."""

from __future__ import annotations

import json
import logging
import socket
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.commands.devices import H02Device, command_time, device_id
from tests.conftest import start_gateway
from tests.integrations.helpers import PrivateBroker, Subscriber, free_port, wait_for
from tests.server.frames import h02_v1

pytestmark = pytest.mark.timeout(90)

IDENT = "4210051999"


def _api(server: Any, method: str, path: str, **kw: Any) -> httpx.Response:
    return httpx.request(method, server.url(path), headers=server.headers, timeout=30, **kw)


def _create(server: Any, ident: str = IDENT, name: str = "truck") -> int:
    r = _api(server, "POST", "/gw/devices", json=[{"name": name, "configuration": {"ident": ident}, "protocol": "h02"}])
    assert r.status_code == 200, r.text
    return int(r.json()["result"][0]["id"])


def _mqtt(prefix: str, **extra: Any) -> dict[str, Any]:
    return {"mqtt_url": "mqtt://127.0.0.1:1883", "mqtt_prefix": prefix, **extra}


def _connected(server: Any) -> None:
    wait_for(lambda: server.runtime.mqtt.connected, 10, what="bridge connected")


def test_api_message_in_flespi_layout_and_retained_telemetry(tmp_path: Path, prefix: str) -> None:
    with start_gateway(tmp_path / "data", **_mqtt(prefix)) as server:
        _connected(server)
        dev = _create(server)
        sub = Subscriber(f"{prefix}/#")
        try:
            body = [{"timestamp": 1.7e9, "position.latitude": 22.5, "position.longitude": 113.9, "position.speed": 42}]
            stored = _api(server, "POST", f"/gw/devices/{dev}/messages", json=body).json()["result"]
            got = sub.wait(f"{prefix}/message/gw/devices/{dev}")[0]
            assert got.json() == stored[0]  # the one JSON encoding of the stored message
            assert not got.retain
            speed = sub.wait(f"{prefix}/state/gw/devices/{dev}/telemetry/position.speed")[0]
            assert speed.payload == b"42"
            assert speed.user == {"timestamp": repr(1.7e9)}  # MQTT 5 user property: the value's device time
            # REST messages come from no listener: nothing on a channel topic
            assert not sub.matching(lambda m: "/message/gw/channels/" in m.topic)

            # Only changed parameters are published again; an older message changes nothing.
            before = len(sub.messages)
            body = [{"timestamp": 1.7e9 + 10, "position.latitude": 22.6, "position.longitude": 113.9,
                     "position.speed": 42}]
            _api(server, "POST", f"/gw/devices/{dev}/messages", json=body)
            sub.wait(f"{prefix}/message/gw/devices/{dev}", 2)
            sub.wait(f"{prefix}/state/gw/devices/{dev}/telemetry/position.latitude", 2)
            time.sleep(0.3)
            new = {m.topic.rsplit("/", 1)[1] for m in sub.messages[before:] if "/telemetry/" in m.topic}
            assert "position.latitude" in new and "timestamp" in new
            assert "position.speed" not in new and "position.longitude" not in new
            _api(server, "POST", f"/gw/devices/{dev}/messages",
                 json=[{"timestamp": 1.7e9 - 100, "position.latitude": 1.0, "position.longitude": 1.0}])
            sub.wait(f"{prefix}/message/gw/devices/{dev}", 3)
            time.sleep(0.3)
            assert [m.payload for m in sub.on(f"{prefix}/state/gw/devices/{dev}/telemetry/position.latitude")] \
                == [b"22.5", b"22.6"]
        finally:
            sub.close()

        # A subscriber that comes later gets the current values (retained).
        late = Subscriber(f"{prefix}/state/gw/devices/{dev}/telemetry/+")
        try:
            lat = late.wait(f"{prefix}/state/gw/devices/{dev}/telemetry/position.latitude")[0]
            assert lat.retain and lat.payload == b"22.6"
            assert lat.user == {"timestamp": repr(1.7e9 + 10)}
            assert late.wait(f"{prefix}/state/gw/devices/{dev}/telemetry/position.speed")[0].payload == b"42"
        finally:
            late.close()


def test_device_socket_message_events_and_connection_state(tmp_path: Path, prefix: str) -> None:
    with start_gateway(tmp_path / "data", **_mqtt(prefix)) as server:
        _connected(server)
        dev = _create(server)
        channel = next(c.id for c in server.runtime.channels if c.protocol == "h02")
        sub = Subscriber(f"{prefix}/#")
        try:
            sock = socket.create_connection(("127.0.0.1", server.h02_port), timeout=5)
            delays = []
            now = time.time()
            for i in range(20):
                status = "FFFBFBFF" if i == 10 else "FFFFFBFF"  # SOS on the 11th position
                sock.sendall(h02_v1(IDENT, now - 60 + i, 22.5 + i / 1000, 113.9, status=status))
                got = sub.wait(f"{prefix}/message/gw/devices/{dev}", i + 1)[-1]
                delays.append(got.at - got.json()["server.timestamp"])
            by_channel = sub.wait(f"{prefix}/message/gw/channels/{channel}/{IDENT}", 20)
            assert [m.json()["device.id"] for m in by_channel] == [dev] * 20
            # commit → broker → subscriber; the done-when says within 100 ms of the commit
            assert statistics.median(delays) < 0.1, delays
            connected = sub.wait(f"{prefix}/state/gw/devices/{dev}/connected")
            assert connected[-1].payload == b"true" and connected[-1].retain
            sos = sub.wait(f"{prefix}/log/gw/devices/{dev}/events/alarm")[0].json()
            assert sos["alarm"] == "sos" and sos["device.id"] == dev and sos["type"] == "alarm"
            sock.close()
            wait_for(lambda: sub.on(f"{prefix}/state/gw/devices/{dev}/connected")[-1].payload == b"false", 10,
                     what="connected false after the disconnect")
        finally:
            sub.close()


def test_command_over_mqtt_reaches_device_and_reply_on_log_topic(tmp_path: Path, prefix: str) -> None:
    ident = "4210051998"
    with start_gateway(tmp_path / "data", **_mqtt(prefix, mqtt_commands=True)) as server:
        _connected(server)
        dev = _create(server, ident)
        device = H02Device(server.h02_port, ident)
        device.hello()
        device_id(server, "h02", ident)
        sub = Subscriber(f"{prefix}/log/#", "replies/#")
        try:
            # destructive: refused without "confirm", as over REST
            sub.publish(f"{prefix}/rest/post/gw/devices/{dev}/commands-queue", json.dumps({"name": "engine.stop"}),
                        response_topic="replies/0")
            assert "confirm" in sub.wait("replies/0")[0].json()["errors"][0]["reason"]
            sub.publish(f"{prefix}/rest/post/gw/devices/{dev}/commands-queue",
                        json.dumps({"name": "engine.stop", "ttl": 600, "confirm": True}), response_topic="replies/1",
                        correlation=b"c-1")
            frame = device.read_command()
            assert b",S20," in frame
            queued = sub.wait("replies/1")[0].json()
            assert queued["result"][0]["name"] == "engine.stop" and "errors" not in queued
            device.send(f"*HQ,{ident},V4,S20,{command_time(frame)},1,1#")
            done = sub.wait(f"{prefix}/log/gw/devices/{dev}/commands-queue/engine.stop/processed")[0].json()
            assert done["id"] == queued["result"][0]["id"]
            assert done["reply"]["message.type"] == "V4" and done["executed"] is True
            statuses = [m.topic.rsplit("/", 1)[1] for m in sub.matching(lambda m: "/commands-queue/" in m.topic)]
            assert statuses == ["queued", "sent", "processed"]

            # A bad request is refused, with the reason on the response topic; nothing is queued.
            sub.publish(f"{prefix}/rest/post/gw/devices/{dev}/commands-queue", json.dumps({"name": "no.such"}),
                        response_topic="replies/2")
            refused = sub.wait("replies/2")[0].json()
            assert refused["result"] == [] and "no.such" in refused["errors"][0]["reason"]
            sub.publish(f"{prefix}/rest/post/gw/devices/999/commands-queue", b"not json", response_topic="replies/3")
            assert sub.wait("replies/3")[0].json()["errors"][0]["code"] == 400
            assert server.runtime.mqtt.commands_rejected == 3
        finally:
            sub.close()
            device.close()


def test_inbound_commands_are_ignored_unless_enabled(tmp_path: Path, prefix: str) -> None:
    with start_gateway(tmp_path / "data", **_mqtt(prefix)) as server:
        _connected(server)
        dev = _create(server)
        sub = Subscriber(f"{prefix}/log/#")
        try:
            sub.publish(f"{prefix}/rest/post/gw/devices/{dev}/commands-queue", json.dumps({"name": "engine.stop"}))
            time.sleep(0.5)
            assert _api(server, "GET", f"/gw/devices/{dev}/commands-queue").json()["result"] == []
            assert server.runtime.mqtt.commands_received == 0
        finally:
            sub.close()


def test_settings_intervals_and_deleted_device(tmp_path: Path, prefix: str) -> None:
    ident = "4210051997"
    with start_gateway(tmp_path / "data", **_mqtt(prefix)) as server:
        _connected(server)
        dev = _create(server, ident)
        sub = Subscriber(f"{prefix}/#")
        try:
            device = H02Device(server.h02_port, ident)
            device.hello()
            device_id(server, "h02", ident)
            assert _api(server, "PUT", f"/gw/devices/{dev}/settings/interval", json={"value": 30}).status_code == 200
            frame = device.read_command()
            assert b",S71," in frame
            device.send(f"*HQ,{ident},V4,S71,{command_time(frame)},22,30#")
            setting = sub.wait(f"{prefix}/state/gw/devices/{dev}/settings/interval")[0]
            assert setting.payload == b"30" and setting.retain
            device.close()

            # calculator intervals (bus "interval" events, as sinogate.analytics.publish puts them)
            interval = {"id": 7, "calc.id": 3, "device.id": dev, "begin": 1.7e9, "end": 1.7e9 + 60, "active": False,
                        "change": "updated"}
            server.call(server.runtime.bus.publish, {"type": "interval", "device_id": dev, "protocol": "h02",
                                                     "ident": ident, "data": interval})
            assert sub.wait(f"{prefix}/interval/gw/calcs/3/devices/{dev}/updated")[0].json() == interval

            # a deleted device leaves no retained state behind
            sub.wait(f"{prefix}/state/gw/devices/{dev}/telemetry/position.latitude")
            assert _api(server, "DELETE", f"/gw/devices/{dev}").status_code == 200
            cleared = sub.wait(f"{prefix}/state/gw/devices/{dev}/telemetry/position.latitude", 2)[-1]
            assert cleared.payload == b""
        finally:
            sub.close()
        late = Subscriber(f"{prefix}/state/gw/devices/{dev}/#")
        time.sleep(0.5)
        try:
            assert [m.topic for m in late.messages if m.payload and "/settings/" not in m.topic] == []
        finally:
            late.close()


def _start_and_subscribe(broker: PrivateBroker) -> Subscriber:
    broker.start()
    return Subscriber("dead/#", port=broker.port)


def test_dead_broker_never_blocks_ingest_then_reconnects(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    broker = PrivateBroker(free_port())  # not started yet: the gateway starts against a dead broker
    caplog.set_level(logging.INFO, logger="sinogate.mqtt")
    try:
        config = {"mqtt_url": f"mqtt://127.0.0.1:{broker.port}", "mqtt_prefix": "dead", "mqtt_queue": 20}
        with start_gateway(tmp_path / "data", **config) as server:
            dev = _create(server)
            started = time.perf_counter()
            for i in range(30):
                r = _api(server, "POST", f"/gw/devices/{dev}/messages",
                         json=[{"timestamp": 1.7e9 + i, "position.speed": i}])
                assert r.status_code == 200
            elapsed = time.perf_counter() - started
            assert elapsed < 15, elapsed  # nothing waited for the broker (one connect timeout alone is 10 s)
            bridge = server.runtime.mqtt
            assert not bridge.connected and bridge.depth == 20 and bridge.dropped == 10
            assert len(_api(server, "GET", f"/gw/devices/{dev}/messages").json()["result"]) == 30
            transitions = [r.getMessage() for r in caplog.records if "->" in r.getMessage()]
            assert len(transitions) == 2 and "disconnected" in transitions[-1], transitions  # not one per retry

            sub = server.call(_start_and_subscribe, broker)  # on the gateway's loop: no reconnect before we listen
            try:
                # the queued messages (the newest that fitted) arrive once the bridge reconnected
                got = sub.wait(f"dead/message/gw/devices/{dev}", 20, timeout=30)
                assert [m.json()["position.speed"] for m in got] == list(range(20))
                assert sub.wait(f"dead/state/gw/devices/{dev}/telemetry/position.speed")[-1].payload == b"29"
                wait_for(lambda: bridge.connected and bridge.depth == 0, 5)

                # the broker goes away again while the gateway keeps storing
                broker.stop()
                wait_for(lambda: not bridge.connected, 10, what="disconnect noticed")
                r = _api(server, "POST", f"/gw/devices/{dev}/messages", json=[{"timestamp": 1.7e9 + 99}])
                assert r.status_code == 200
            finally:
                sub.close()
            sub = server.call(_start_and_subscribe, broker)
            try:
                assert sub.wait(f"dead/message/gw/devices/{dev}", 1, timeout=30)[0].json()["timestamp"] == 1.7e9 + 99
            finally:
                sub.close()
    finally:
        broker.close()


def test_bad_mqtt_url_is_a_configuration_error(tmp_path: Path) -> None:
    from sinogate.config import ConfigError

    with pytest.raises(ConfigError, match="mqtt_url"), start_gateway(tmp_path / "data", mqtt_url="http://x"):
        pass


def test_wire_client_against_the_broker(prefix: str) -> None:
    """The bridge's own MQTT 5 client (``mqttwire``) seen by paho-mqtt: QoS 0/1/2, retain, user
    properties, response topic and correlation data, inbound QoS 1, and its acknowledgements."""
    import asyncio

    from sinogate.integrations import mqttwire

    sub = Subscriber(f"{prefix}/wire/#")
    acked: list[Any] = []

    async def run() -> list[mqttwire.Inbound]:
        conn = await mqttwire.connect("127.0.0.1", 1883, client_id=f"{prefix}-wire", on_ack=acked.append)
        assert 1 <= conn.window <= 256
        await conn.subscribe([(f"{prefix}/in", 1)])
        props = mqttwire.user_property("timestamp", "1700000000.5") + mqttwire.user_property("k", "v")
        conn.publish(f"{prefix}/wire/q0", b"zero", 0)
        for i in range(50):
            await conn.room()
            conn.publish(f"{prefix}/wire/q1", str(i).encode(), 1, False, props, token=i)
        await conn.publish_wait(f"{prefix}/wire/q2", b"two", 2, True)
        await conn.publish_wait(f"{prefix}/wire/resp", b"{}", 1, False,
                                mqttwire.response_properties("reply/here", b"\x00\x01"))
        deadline = asyncio.get_running_loop().time() + 5
        while conn.inflight and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        sub.publish(f"{prefix}/in", b"hello", response_topic="answer/to", correlation=b"c9")
        got = [await asyncio.wait_for(conn.inbound.get(), 5)]
        conn.disconnect()
        with pytest.raises(mqttwire.MqttError):
            conn.publish(f"{prefix}/wire/q0", b"after", 0)
        return got

    try:
        inbound = asyncio.run(run())
        assert acked == list(range(50))  # in order, each once
        q1 = sub.wait(f"{prefix}/wire/q1", 50)
        assert [m.payload for m in q1] == [str(i).encode() for i in range(50)]
        assert q1[0].user == {"timestamp": "1700000000.5", "k": "v"}
        assert sub.wait(f"{prefix}/wire/q0")[0].payload == b"zero"
        q2 = sub.wait(f"{prefix}/wire/q2")[0]
        assert q2.payload == b"two" and q2.retain
        sub.wait(f"{prefix}/wire/resp")
        assert inbound[0].topic == f"{prefix}/in" and inbound[0].payload == b"hello"
        assert inbound[0].response_topic == "answer/to" and inbound[0].correlation == b"c9"
    finally:
        sub.close()


def test_wire_encoding() -> None:
    from sinogate.integrations import mqttwire

    for n in (0, 1, 127, 128, 16383, 16384, 2097151, 2097152, 268435455):
        encoded = mqttwire.varint(n)
        assert mqttwire.read_varint(encoded, 0) == (n, len(encoded))
    data = mqttwire.varint(0) + b""
    assert mqttwire.parse_properties(data, 0) == ({}, 1)
    raw = (mqttwire.user_property("a", "1") + mqttwire.user_property("b", "2")
           + mqttwire.response_properties("t", b"\xff") + b"\x21\x00\x14")
    props, end = mqttwire.parse_properties(mqttwire.varint(len(raw)) + raw, 0)
    assert props == {0x26: [("a", "1"), ("b", "2")], 0x08: "t", 0x09: b"\xff", 0x21: 20}
    assert end == len(raw) + 1
    with pytest.raises(mqttwire.MqttError):
        mqttwire.parse_properties(b"\x02\x7f\x00", 0)  # unknown property id


def test_mqtts_with_a_private_ca(tmp_path: Path) -> None:
    """mqtts:// verifies the broker against mqtt_ca_file; a broker the CA did not sign is refused."""
    broker = PrivateBroker(tls=True)
    try:
        broker.start()
        config = {"mqtt_url": f"mqtts://127.0.0.1:{broker.port}", "mqtt_prefix": "tls", "mqtt_ca_file": broker.ca}
        with start_gateway(tmp_path / "data", **config) as server:
            wait_for(lambda: server.runtime.mqtt.connected, 10, what="TLS connection")
            dev = _create(server)
            _api(server, "POST", f"/gw/devices/{dev}/messages", json=[{"timestamp": 1.7e9, "position.speed": 7}])
            wait_for(lambda: server.runtime.mqtt.published >= 3 and server.runtime.mqtt.depth == 0, 10)
        # without the CA (the system's store does not know it) the handshake fails: never connected
        with start_gateway(tmp_path / "data2", mqtt_url=f"mqtts://127.0.0.1:{broker.port}") as server:
            wait_for(lambda: server.runtime.mqtt.state == "disconnected", 10)
            assert not server.runtime.mqtt.connected and server.runtime.mqtt.connects == 0
    finally:
        broker.close()


def test_a_posted_drive_gives_interval_and_event_topics(tmp_path: Path, prefix: str) -> None:
    """The calculators' intervals (trips) reach the interval topics: created when the trip is
    confirmed, updated when it closes; trip.start and trip.end on the events topics."""
    with start_gateway(tmp_path / "data", **_mqtt(prefix)) as server:
        _connected(server)
        dev = _create(server, "4210051996")
        sub = Subscriber(f"{prefix}/interval/#", f"{prefix}/log/gw/devices/{dev}/events/#")
        try:
            t0 = time.time() - 3600
            for i in range(120):  # parked 5 min, driving 25 min at 50 km/h, parked again
                moving = 10 <= i < 70
                _api(server, "POST", f"/gw/devices/{dev}/messages", json=[{
                    "timestamp": t0 + 30 * i, "position.latitude": 22.5 + 0.002 * max(0, min(i, 70) - 10),
                    "position.longitude": 113.9, "position.speed": 50 if moving else 0, "position.valid": True,
                    "engine.ignition.status": moving or i < 75}])
            start = sub.wait(f"{prefix}/log/gw/devices/{dev}/events/trip.start")[0].json()
            end = sub.wait(f"{prefix}/log/gw/devices/{dev}/events/trip.end")[0].json()
            calc = start["calc.id"]
            created = sub.wait(f"{prefix}/interval/gw/calcs/{calc}/devices/{dev}/created")[0].json()
            updated = sub.wait(f"{prefix}/interval/gw/calcs/{calc}/devices/{dev}/updated")[0].json()
            assert created["begin"] == updated["begin"] == start["begin"]
            assert updated["active"] is False and updated["distance"] == pytest.approx(end["distance"])
        finally:
            sub.close()
