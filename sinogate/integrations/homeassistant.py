"""Home Assistant MQTT discovery: the retained configs that make every tracker appear in Home
Assistant, on the map, with no YAML.

Per device (``<node>`` is ``sinogate_<ident>``, characters Home Assistant does not allow in a
discovery topic replaced by ``_``):

- ``{ha}/device_tracker/<node>/config``: a GPS tracker whose attributes (``latitude``,
  ``longitude``, ``gps_accuracy``, ...) come from ``{prefix}/state/gw/devices/{id}/location``;
- ``{ha}/sensor/<node>/{speed,battery,signal}/config`` over the telemetry topics;
- ``{ha}/binary_sensor/<node>/{ignition,connected}/config``;
- ``{ha}/button/<node>/<command>/config``, one per *safe* command of the protocol, when inbound
  MQTT commands are on: the button publishes ``{"name": ...}`` to the commands-queue topic.
  Never a command that cuts the engine, moves the device to another server, reboots it or
  changes its configuration.

Every entity is available while the gateway is (``{prefix}/state/gw/status``, the bridge's last
will). Pure functions: the MQTT bridge publishes what they return.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sinogate import __version__
from sinogate.commands.catalog import codec_commands, destructive
from sinogate.integrations.topics import Topics
from sinogate.jsonenc import dumps

# Commands a button may send: each only asks or arms, none takes properties.
SAFE_COMMANDS: tuple[str, ...] = ("status.query", "mileage.query", "params.query", "alarm.arm", "alarm.disarm")
# Never a button, whatever a protocol calls safe.
UNSAFE_COMMANDS = frozenset({
    "engine.stop", "engine.resume", "server.set", "reboot", "custom", "params.set", "terminal.control",
    "interval.set", "factory.reset", "apn.set", "password.set",
})

SENSORS: tuple[tuple[str, str, str, dict[str, Any]], ...] = (
    ("speed", "position.speed", "Speed",
     {"device_class": "speed", "unit_of_measurement": "km/h", "state_class": "measurement"}),
    ("battery", "battery.level", "Battery",
     {"device_class": "battery", "unit_of_measurement": "%", "state_class": "measurement"}),
    # GSM CSQ (0-31) is not a dB value, so no signal_strength device class.
    ("signal", "gsm.signal.level", "GSM signal", {"icon": "mdi:signal", "state_class": "measurement"}),
)
BINARY_SENSORS: tuple[tuple[str, str, str, dict[str, Any]], ...] = (
    ("ignition", "engine.ignition.status", "Ignition", {"icon": "mdi:engine"}),
)
LOCATION_FIELDS: tuple[tuple[str, str], ...] = (
    ("position.latitude", "latitude"), ("position.longitude", "longitude"), ("position.altitude", "altitude"),
    ("position.speed", "speed"), ("position.direction", "course"), ("position.satellites", "satellites"),
)
_NODE = re.compile(r"[^a-zA-Z0-9_-]")


def node_id(device: Mapping[str, Any]) -> str:
    return "sinogate_" + _NODE.sub("_", str(device.get("ident") or device["id"]))


def safe_commands(protocol: str) -> list[str]:
    commands = codec_commands(protocol)
    return [name for name in SAFE_COMMANDS
            if name in commands and name not in UNSAFE_COMMANDS and not commands[name].get("required")
            and destructive(protocol, name, {}) is None]


def _device_block(device: Mapping[str, Any]) -> dict[str, Any]:
    protocol = str(device.get("protocol") or "")
    block: dict[str, Any] = {
        "identifiers": [node_id(device)],
        "name": str(device.get("name") or device.get("ident") or device["id"]),
        "manufacturer": "Sinotrack" if protocol == "h02" else "JT/T 808 tracker",
        "model": str(device.get("model") or protocol or "tracker"),
    }
    if device.get("ident"):
        block["serial_number"] = str(device["ident"])
    return block


def _common(device: Mapping[str, Any], topics: Topics, key: str, qos: int) -> dict[str, Any]:
    return {
        "unique_id": f"{node_id(device)}_{key}",
        "availability_topic": topics.status(),
        "payload_available": "online",
        "payload_not_available": "offline",
        "device": _device_block(device),
        "origin": {"name": "sinogate", "sw_version": __version__},
        "qos": qos,
    }


def discovery_configs(device: Mapping[str, Any], topics: Topics, ha_prefix: str = "homeassistant",
                      commands: bool = False, qos: int = 1) -> list[tuple[str, dict[str, Any]]]:
    """``(config topic, payload)`` of every entity of ``device`` (a registry device dict)."""
    device_id = int(device["id"])
    node = node_id(device)
    out: list[tuple[str, dict[str, Any]]] = [(f"{ha_prefix}/device_tracker/{node}/config", {
        **_common(device, topics, "tracker", qos),
        "name": None,  # the device's own name: the tracker is its main entity
        "json_attributes_topic": topics.location(device_id),
        "source_type": "gps",
        "icon": "mdi:map-marker",
    })]
    for key, param, name, extra in SENSORS:
        out.append((f"{ha_prefix}/sensor/{node}/{key}/config", {
            **_common(device, topics, key, qos), "name": name, "state_topic": topics.telemetry(device_id, param),
            **extra,
        }))
    for key, param, name, extra in BINARY_SENSORS:
        out.append((f"{ha_prefix}/binary_sensor/{node}/{key}/config", {
            **_common(device, topics, key, qos), "name": name, "state_topic": topics.telemetry(device_id, param),
            "payload_on": "true", "payload_off": "false", **extra,
        }))
    out.append((f"{ha_prefix}/binary_sensor/{node}/connected/config", {
        **_common(device, topics, "connected", qos), "name": "Connected", "state_topic": topics.connected(device_id),
        "payload_on": "true", "payload_off": "false", "device_class": "connectivity", "entity_category": "diagnostic",
    }))
    if commands:
        for command in safe_commands(str(device.get("protocol") or "")):
            key = command.replace(".", "_")
            out.append((f"{ha_prefix}/button/{node}/{key}/config", {
                **_common(device, topics, key, qos), "name": command.replace(".", " ").capitalize(),
                "command_topic": topics.commands_in(str(device_id)), "payload_press": dumps({"name": command}),
                "retain": False,
            }))
    return out


def config_topics(device: Mapping[str, Any], ha_prefix: str = "homeassistant") -> list[str]:
    """Every config topic sinogate may have published for ``device`` (an empty retained payload on
    each removes the entities when the device is deleted)."""
    node = node_id(device)
    topics = [f"{ha_prefix}/device_tracker/{node}/config"]
    topics += [f"{ha_prefix}/sensor/{node}/{key}/config" for key, *_ in SENSORS]
    topics += [f"{ha_prefix}/binary_sensor/{node}/{key}/config" for key, *_ in BINARY_SENSORS]
    topics.append(f"{ha_prefix}/binary_sensor/{node}/connected/config")
    topics += [f"{ha_prefix}/button/{node}/{name.replace('.', '_')}/config" for name in SAFE_COMMANDS]
    return topics


def location(message: Mapping[str, Any]) -> dict[str, Any] | None:
    """The device tracker's attributes from a message with a position, else ``None``."""
    if message.get("position.latitude") is None or message.get("position.longitude") is None:
        return None
    out: dict[str, Any] = {ha: message[name] for name, ha in LOCATION_FIELDS if message.get(name) is not None}
    hdop = message.get("position.hdop")
    if isinstance(hdop, int | float) and not isinstance(hdop, bool):
        out["gps_accuracy"] = round(float(hdop) * 5.0, 1)  # metres, the usual rule of thumb (UERE ≈ 5 m)
    if message.get("timestamp") is not None:
        out["timestamp"] = message["timestamp"]
    return out
