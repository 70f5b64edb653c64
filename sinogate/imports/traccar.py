"""Traccar's rows in sinogate's names and units (pure: rows in, dicts out).

Traccar keeps (``tc_positions``) speed in knots, distances in metres, times as UTC ``timestamp``
columns, extra values in a JSON ``attributes`` text with its own keys (``ignition``, ``sat``,
``power``, ``odometer``...), and geofences (``tc_geofences.area``) as WKT with *latitude first*:
``CIRCLE (lat lon, radius_m)``, ``POLYGON ((lat lon, lat lon, ...))``, ``LINESTRING (lat lon, ...)``.

A position becomes one flat message: ``timestamp`` (the fix time), ``position.*`` (km/h, degrees,
metres), and each attribute under its registered sinogate name (``ATTRIBUTES``); an attribute
sinogate has no name for is kept as ``traccar.<key>``. The same row always gives the same message,
so importing it twice stores it once (the gateway deduplicates by content).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeGuard

KNOT_KMH = 1.852

# Traccar protocol name → sinogate protocol
PROTOCOLS: dict[str, str] = {"h02": "h02", "huabao": "jt808", "jt808": "jt808", "jt1078": "jt808"}


def _identity(value: Any) -> Any:
    return value


def _km(value: Any) -> Any:
    return round(float(value) / 1000.0, 3) if _is_number(value) else value


def _bool(value: Any) -> Any:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "on")
    return bool(value) if isinstance(value, int | float) else value


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


# Traccar attribute key → (sinogate parameter, conversion)
ATTRIBUTES: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "ignition": ("engine.ignition.status", _bool),
    "motion": ("movement.status", _bool),
    "sat": ("position.satellites", _identity),
    "satVisible": ("gps.satellites.status", _identity),
    "hdop": ("position.hdop", _identity),
    "pdop": ("position.pdop", _identity),
    "odometer": ("vehicle.mileage", _km),  # m → km
    "power": ("external.powersource.voltage", _identity),
    "battery": ("battery.voltage", _identity),
    "batteryLevel": ("battery.level", _identity),
    "charge": ("battery.charging.status", _bool),
    "rssi": ("gsm.signal.level", _identity),
    "fuel": ("fuel.level", _identity),
    "temp1": ("sensor.temperature", _identity),
    "status": ("status.bitmask", _identity),
    "armed": ("vehicle.armed.status", _bool),
    "blocked": ("engine.blocked.status", _bool),
    "door": ("door.open.status", _bool),
    "iccid": ("gsm.sim.iccid", _identity),
    "versionFw": ("device.firmware.version", _identity),
    "versionHw": ("device.hardware.version", _identity),
    "result": ("command.response", _identity),
    "driverUniqueId": ("driver.id", _identity),
}
SKIPPED_ATTRIBUTES = frozenset({"raw", "distance", "totalDistance"})
"""Not imported: the raw frame (hex, often large), and distances sinogate computes itself
(``odometer.computed``)."""

# Traccar alarm values (attribute "alarm", comma-separated) → sinogate's boolean alarm parameters
ALARMS: dict[str, str] = {
    "sos": "sos.alarm", "powerCut": "power.cut.alarm", "lowBattery": "battery.low.alarm",
    "overspeed": "overspeeding.event", "vibration": "theft.alarm", "tampering": "theft.alarm",
    "geofenceEnter": "geofence.in.alarm", "geofenceExit": "geofence.out.alarm", "lowPower": "battery.low.alarm",
    "fatigueDriving": "fatigue.driving.warning.alarm", "accident": "crash.event", "door": "door.illegal.open.alarm",
    "removing": "battery.removed.alarm", "gpsAntennaCut": "gnss.antenna.cut.alarm",
}

# tc_events types: what sinogate does with them
RECOMPUTED_EVENTS = frozenset({
    "ignitionOn", "ignitionOff", "geofenceEnter", "geofenceExit", "deviceOverspeed", "deviceOnline",
    "deviceOffline", "deviceUnknown", "deviceInactive", "deviceMoving", "deviceStopped", "alarm",
})
"""Event types sinogate computes from the imported positions and geofences (its own events)."""
MESSAGE_EVENTS: dict[str, str] = {"commandResult": "result", "textMessage": "message"}
"""Event types that carry what a device said (a command's answer, a text): imported as messages."""

# tc_commands_queue type → (sinogate command, properties from the attributes)
COMMANDS: dict[str, tuple[str, Callable[[Mapping[str, Any]], dict[str, Any]]]] = {
    "engineStop": ("engine.stop", lambda _a: {}),
    "engineResume": ("engine.resume", lambda _a: {}),
    "alarmArm": ("alarm.arm", lambda _a: {}),
    "alarmDisarm": ("alarm.disarm", lambda _a: {}),
    "rebootDevice": ("reboot", lambda _a: {}),
    "positionPeriodic": ("interval.set", lambda a: {"seconds": int(a.get("frequency", 30))}),
    "custom": ("custom", lambda a: {"payload": str(a.get("data", ""))}),
}


def attributes_of(text: Any) -> dict[str, Any]:
    """The ``attributes`` column (JSON text, or already a dict) as a dict; ``{}`` when unreadable."""
    if isinstance(text, Mapping):
        return dict(text)
    if isinstance(text, bytes | bytearray):
        text = bytes(text).decode("utf-8", "replace")
    if not isinstance(text, str) or not text.strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def unix(value: Any) -> float | None:
    """A Traccar time column (a naive UTC ``datetime``, an aware one, or a number) as UNIX seconds."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    if _is_number(value):
        return float(value) / (1000.0 if value > 1e11 else 1.0)
    return None


def _round(value: float, digits: int) -> float:
    rounded = round(value, digits)
    return 0.0 if rounded == 0 else rounded


def position_message(row: Mapping[str, Any]) -> dict[str, Any] | None:
    """One ``tc_positions`` row as a sinogate message; ``None`` without a usable time."""
    ts = unix(row.get("fixtime")) or unix(row.get("devicetime"))
    if ts is None:
        return None
    msg: dict[str, Any] = {"timestamp": ts}
    lat, lon = row.get("latitude"), row.get("longitude")
    if _is_number(lat) and _is_number(lon) and math.isfinite(lat) and math.isfinite(lon):
        msg["position.latitude"] = float(lat)
        msg["position.longitude"] = float(lon)
    for column, name in (("altitude", "position.altitude"), ("course", "position.direction")):
        value = row.get(column)
        if _is_number(value) and math.isfinite(value):
            msg[name] = float(value)
    speed = row.get("speed")
    if _is_number(speed) and math.isfinite(speed):
        msg["position.speed"] = _round(float(speed) * KNOT_KMH, 3)
    if row.get("valid") is not None:
        msg["position.valid"] = bool(row["valid"])
    accuracy = row.get("accuracy")
    if _is_number(accuracy) and accuracy > 0:
        msg["position.accuracy"] = float(accuracy)
    if isinstance(row.get("address"), str) and row["address"].strip():
        msg["position.address"] = row["address"].strip()
    for key, value in sorted(attributes_of(row.get("attributes")).items()):
        if key in SKIPPED_ATTRIBUTES or value is None or isinstance(value, dict | list):
            continue
        if key == "alarm":
            for alarm in str(value).split(","):
                alarm_name = ALARMS.get(alarm.strip())
                if alarm_name:
                    msg[alarm_name] = True
            msg["traccar.alarm"] = str(value)
            continue
        mapped = ATTRIBUTES.get(key)
        if mapped is not None:
            msg[mapped[0]] = mapped[1](value)
        else:
            msg[f"traccar.{key}"] = value
    return msg


def event_message(row: Mapping[str, Any]) -> dict[str, Any] | None:
    """A ``tc_events`` row that carries what a device said (``MESSAGE_EVENTS``) as a message."""
    key = MESSAGE_EVENTS.get(str(row.get("type")))
    if key is None:
        return None
    ts = unix(row.get("eventtime")) or unix(row.get("servertime"))
    if ts is None:
        return None
    attrs = attributes_of(row.get("attributes"))
    text = attrs.get(key)
    if text is None:
        return None
    name = "command.response" if key == "result" else "text.message"
    return {"timestamp": ts, "message.type": f"traccar.{row['type']}", name: str(text)}


_NUMBER = r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
_CIRCLE = re.compile(rf"^\s*CIRCLE\s*\(\s*({_NUMBER})\s+({_NUMBER})\s*,\s*({_NUMBER})\s*\)\s*$", re.IGNORECASE)
_POLYGON = re.compile(r"^\s*POLYGON\s*\(\s*\((.*)\)\s*\)\s*$", re.IGNORECASE | re.DOTALL)
_LINE = re.compile(r"^\s*LINESTRING\s*\((.*)\)\s*$", re.IGNORECASE | re.DOTALL)
DEFAULT_POLYLINE_DISTANCE = 25.0  # m: Traccar's geofence.polylineDistance default


class WktError(ValueError):
    """A geofence area sinogate cannot read."""


def _points(text: str) -> list[dict[str, float]]:
    out = []
    for pair in text.split(","):
        parts = pair.split()
        if len(parts) != 2:
            raise WktError(f"bad point {pair.strip()!r}")
        try:
            lat, lon = float(parts[0]), float(parts[1])  # Traccar writes latitude first
        except ValueError as exc:
            raise WktError(f"bad point {pair.strip()!r}") from exc
        out.append({"lat": lat, "lon": lon})
    return out


def geometry(area: str, attributes: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A ``tc_geofences.area`` WKT as sinogate's geometry (circle radius and corridor width in km)."""
    found = _CIRCLE.match(area)
    if found:
        lat, lon, radius = (float(g) for g in found.groups())
        return {"type": "circle", "center": {"lat": lat, "lon": lon}, "radius": radius / 1000.0}
    found = _POLYGON.match(area)
    if found:
        path = _points(found.group(1))
        if len(path) > 3 and path[0] == path[-1]:
            path = path[:-1]
        return {"type": "polygon", "path": path}
    found = _LINE.match(area)
    if found:
        distance = (attributes or {}).get("polylineDistance", DEFAULT_POLYLINE_DISTANCE)
        distance = float(distance) if _is_number(distance) else DEFAULT_POLYLINE_DISTANCE
        return {"type": "corridor", "path": _points(found.group(1)), "width": 2 * distance / 1000.0}
    raise WktError(f"unsupported geofence area {area[:40]!r}: CIRCLE, POLYGON and LINESTRING are read")


def geofence(row: Mapping[str, Any]) -> dict[str, Any]:
    """A ``tc_geofences`` row as a ``POST /gw/geofences`` item; ``WktError`` for an unreadable area."""
    attrs = attributes_of(row.get("attributes"))
    out: dict[str, Any] = {"name": str(row.get("name") or f"traccar-{row.get('id')}")[:256],
                           "geometry": geometry(str(row.get("area") or ""), attrs)}
    limit = attrs.get("speedLimit")
    if _is_number(limit) and limit > 0:
        out["speed_limit"] = round(float(limit) * KNOT_KMH, 1)  # Traccar keeps speed limits in knots
    return out


def command(row: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """A ``tc_commands_queue`` row as (sinogate command, properties); ``None`` when there is no such command."""
    found = COMMANDS.get(str(row.get("type")))
    if found is None:
        return None
    name, props = found
    try:
        return name, props(attributes_of(row.get("attributes")))
    except (TypeError, ValueError):
        return None


__all__ = ["ATTRIBUTES", "KNOT_KMH", "PROTOCOLS", "WktError", "attributes_of", "command", "event_message", "geofence",
           "geometry", "position_message", "unix"]
