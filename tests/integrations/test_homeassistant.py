"""Home Assistant MQTT discovery: the payloads checked against the configuration keys Home
Assistant documents for each MQTT platform (device_tracker, sensor, binary_sensor, button) and
for the device block, then published on the real broker, and a button press reaching a device."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from sinogate.integrations import homeassistant
from sinogate.integrations.topics import Topics
from tests.commands.devices import H02Device, device_id
from tests.conftest import start_gateway
from tests.integrations.helpers import Subscriber, wait_for

pytestmark = pytest.mark.timeout(60)

# The configuration variables of Home Assistant's MQTT integrations (home-assistant.io/integrations/
# <platform>.mqtt), written out here so a key Home Assistant does not know fails the test.
COMMON = {
    "availability", "availability_mode", "availability_template", "availability_topic", "default_entity_id",
    "device", "enabled_by_default", "encoding", "entity_category", "entity_picture", "icon",
    "json_attributes_template", "json_attributes_topic", "name", "object_id", "origin", "payload_available",
    "payload_not_available", "platform", "qos", "unique_id",
}
PLATFORM_KEYS = {
    "device_tracker": COMMON | {"payload_home", "payload_not_home", "payload_reset", "source_type", "state_topic",
                                "value_template"},
    "sensor": COMMON | {"device_class", "expire_after", "force_update", "last_reset_value_template", "options",
                        "state_class", "state_topic", "suggested_display_precision", "unit_of_measurement",
                        "value_template"},
    "binary_sensor": COMMON | {"device_class", "expire_after", "force_update", "off_delay", "payload_off",
                               "payload_on", "state_topic", "value_template"},
    "button": COMMON | {"command_template", "command_topic", "device_class", "payload_press", "retain"},
}
REQUIRED = {"device_tracker": set(), "sensor": {"state_topic"}, "binary_sensor": {"state_topic"},
            "button": {"command_topic"}}
DEVICE_KEYS = {"configuration_url", "connections", "hw_version", "identifiers", "manufacturer", "model", "model_id",
               "name", "serial_number", "suggested_area", "sw_version", "via_device"}
ORIGIN_KEYS = {"name", "sw_version", "support_url"}
SOURCE_TYPES = {"gps", "router", "bluetooth", "bluetooth_le"}
ENTITY_CATEGORIES = {"config", "diagnostic"}
STATE_CLASSES = {"measurement", "total", "total_increasing", "measurement_angle"}
# Device classes used here and the units Home Assistant accepts for them.
SENSOR_UNITS = {"speed": {"km/h", "m/s", "mph", "kn", "ft/s", "in/h", "in/s", "mm/d", "mm/h", "mm/s"},
                "battery": {"%"}, "voltage": {"V", "mV", "µV", "kV", "MV"}}
BINARY_CLASSES = {"battery", "battery_charging", "carbon_monoxide", "cold", "connectivity", "door", "garage_door",
                  "gas", "heat", "light", "lock", "moisture", "motion", "moving", "occupancy", "opening", "plug",
                  "power", "presence", "problem", "running", "safety", "smoke", "sound", "tamper", "update",
                  "vibration", "window"}
BUTTON_CLASSES = {"identify", "restart", "update"}
UNSAFE = {"engine.stop", "engine.resume", "server.set", "reboot", "custom", "params.set", "terminal.control"}


def _check(platform: str, payload: dict[str, Any]) -> None:
    unknown = set(payload) - PLATFORM_KEYS[platform]
    assert not unknown, f"{platform}: keys Home Assistant does not document: {unknown}"
    assert REQUIRED[platform] <= set(payload), f"{platform}: missing {REQUIRED[platform] - set(payload)}"
    assert isinstance(payload["unique_id"], str) and payload["unique_id"]
    device = payload["device"]
    assert set(device) <= DEVICE_KEYS and device["identifiers"], device
    assert set(payload["origin"]) <= ORIGIN_KEYS and payload["origin"]["name"]
    assert payload.get("qos", 0) in (0, 1, 2)
    for key in ("state_topic", "command_topic", "json_attributes_topic", "availability_topic"):
        if key in payload:
            assert isinstance(payload[key], str) and "+" not in payload[key] and "#" not in payload[key]
    if "entity_category" in payload:
        assert payload["entity_category"] in ENTITY_CATEGORIES
    if platform == "device_tracker":
        assert payload["source_type"] in SOURCE_TYPES
        assert payload["json_attributes_topic"]
    elif platform == "sensor":
        if "device_class" in payload:
            assert payload["unit_of_measurement"] in SENSOR_UNITS[payload["device_class"]]
        if "state_class" in payload:
            assert payload["state_class"] in STATE_CLASSES
    elif platform == "binary_sensor":
        if "device_class" in payload:
            assert payload["device_class"] in BINARY_CLASSES
        assert isinstance(payload["payload_on"], str) and isinstance(payload["payload_off"], str)
    elif platform == "button":
        if "device_class" in payload:
            assert payload["device_class"] in BUTTON_CLASSES
        press = json.loads(payload["payload_press"])
        assert press["name"] not in UNSAFE and set(press) == {"name"}


@pytest.mark.parametrize("protocol", ["h02", "jt808"])
def test_discovery_payloads_use_only_documented_keys(protocol: str) -> None:
    device = {"id": 7, "ident": "4210051415", "name": "Van 7", "protocol": protocol, "model": None}
    configs = homeassistant.discovery_configs(device, Topics("flespi"), "homeassistant", commands=True)
    platforms = [topic.split("/")[1] for topic, _ in configs]
    assert platforms.count("device_tracker") == 1
    assert platforms.count("sensor") == 3 and platforms.count("binary_sensor") == 2
    assert platforms.count("button") >= 1
    unique = [payload["unique_id"] for _, payload in configs]
    assert len(set(unique)) == len(unique)
    for topic, payload in configs:
        platform = topic.split("/")[1]
        parts = topic.split("/")
        assert parts[0] == "homeassistant" and parts[-1] == "config" and parts[2] == "sinogate_4210051415"
        _check(platform, payload)
    tracker = dict(configs)["homeassistant/device_tracker/sinogate_4210051415/config"]
    assert tracker["json_attributes_topic"] == "flespi/state/gw/devices/7/location"
    sensors = {p["unique_id"]: p for t, p in configs if "/sensor/" in t}
    assert sensors["sinogate_4210051415_speed"]["state_topic"] == "flespi/state/gw/devices/7/telemetry/position.speed"
    buttons = [json.loads(p["payload_press"])["name"] for t, p in configs if "/button/" in t]
    assert buttons and not set(buttons) & UNSAFE
    # without inbound commands a button would do nothing: none is published
    assert not [t for t, _ in homeassistant.discovery_configs(device, Topics("flespi")) if "/button/" in t]


def test_location_attributes() -> None:
    where = homeassistant.location({"position.latitude": 22.5, "position.longitude": 113.9, "position.hdop": 1.2,
                                    "position.speed": 30, "timestamp": 1.7e9})
    assert where == {"latitude": 22.5, "longitude": 113.9, "speed": 30, "gps_accuracy": 6.0, "timestamp": 1.7e9}
    assert homeassistant.location({"battery.level": 80}) is None


def test_discovery_on_the_broker_and_a_button_press(tmp_path: Path, prefix: str) -> None:
    ident = "4210051990"
    ha = f"{prefix}-ha"
    config = {"mqtt_url": "mqtt://127.0.0.1:1883", "mqtt_prefix": prefix, "mqtt_homeassistant": True,
              "mqtt_homeassistant_prefix": ha, "mqtt_commands": True}
    with start_gateway(tmp_path / "data", **config) as server:
        wait_for(lambda: server.runtime.mqtt.connected, 10)
        headers = server.headers
        dev = httpx.post(server.url("/gw/devices"), headers=headers, json=[
            {"name": "Van", "configuration": {"ident": ident}, "protocol": "h02"}]).json()["result"][0]["id"]
        device = H02Device(server.h02_port, ident)
        device.hello()  # a position: the device is announced with its first message
        device_id(server, "h02", ident)
        sub = Subscriber(f"{ha}/#", f"{prefix}/state/#")
        try:
            tracker = sub.wait(f"{ha}/device_tracker/sinogate_{ident}/config")[0]
            assert tracker.retain
            button = sub.wait(f"{ha}/button/sinogate_{ident}/status_query/config")[0].json()
            configs = sub.matching(lambda m: m.topic.startswith(f"{ha}/") and m.topic.endswith("/config"))
            for message in configs:
                _check(message.topic.split("/")[1], message.json())
            assert tracker.json()["device"]["name"] == "Van"
            location = sub.wait(f"{prefix}/state/gw/devices/{dev}/location")[0].json()
            assert location["latitude"] == pytest.approx(22.586295, abs=1e-5)
            assert sub.wait(f"{prefix}/state/gw/status")[0].payload == b"online"

            sub.publish(button["command_topic"], button["payload_press"])  # what Home Assistant sends
            frame = device.read_command()
            assert b",S26," in frame
        finally:
            sub.close()
            device.close()
        # deleting the device removes its entities from Home Assistant
        sub = Subscriber(f"{ha}/#")
        try:
            sub.wait(f"{ha}/device_tracker/sinogate_{ident}/config")
            assert httpx.delete(server.url(f"/gw/devices/{dev}"), headers=headers).status_code == 200
            assert sub.wait(f"{ha}/device_tracker/sinogate_{ident}/config", 2)[-1].payload == b""
        finally:
            sub.close()
        sub = Subscriber(f"{ha}/#")
        try:
            time.sleep(0.5)
            assert not sub.matching(lambda m: bool(m.payload)), "retained discovery configs left behind"
        finally:
            sub.close()
