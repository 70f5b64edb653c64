"""Traccar rows → sinogate messages, geometries and commands (pure functions)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sinogate.imports import traccar
from sinogate.imports.database import redact


def test_a_position_row() -> None:
    row = {"fixtime": datetime(2024, 3, 1, 0, 0, 30), "devicetime": datetime(2024, 3, 1), "latitude": 52.5,
           "longitude": 13.4, "altitude": 31.0, "speed": 10.0, "course": 90.0, "valid": 1, "accuracy": 0.0,
           "address": None, "attributes": '{"ignition": true, "odometer": 12345, "alarm": "sos,powerCut", '
                                           '"raw": "2a", "totalDistance": 5.0, "io3": 1, "motion": "false"}'}
    msg = traccar.position_message(row)
    assert msg == {
        "timestamp": datetime(2024, 3, 1, 0, 0, 30, tzinfo=UTC).timestamp(), "position.latitude": 52.5,
        "position.longitude": 13.4, "position.altitude": 31.0, "position.direction": 90.0,
        "position.speed": 18.52, "position.valid": True, "power.cut.alarm": True, "sos.alarm": True,
        "traccar.alarm": "sos,powerCut", "engine.ignition.status": True, "traccar.io3": 1,
        "movement.status": False, "vehicle.mileage": 12.345,
    }
    assert traccar.position_message({"latitude": 1.0}) is None
    assert traccar.unix(1_700_000_000_000) == 1_700_000_000.0


def test_geofence_areas_are_latitude_first() -> None:
    assert traccar.geometry("CIRCLE (48.85 2.35, 1500.5)") == {
        "type": "circle", "center": {"lat": 48.85, "lon": 2.35}, "radius": 1.5005}
    poly = traccar.geometry("POLYGON((1 2, 1 3, 2 3, 1 2))")
    assert poly == {"type": "polygon", "path": [{"lat": 1.0, "lon": 2.0}, {"lat": 1.0, "lon": 3.0},
                                                {"lat": 2.0, "lon": 3.0}]}
    line = traccar.geometry("LINESTRING (1 2, 3 4)")
    assert line["type"] == "corridor" and line["width"] == pytest.approx(0.05)
    with pytest.raises(traccar.WktError):
        traccar.geometry("RECTANGLE (1 2, 3 4)")
    with pytest.raises(traccar.WktError):
        traccar.geometry("POLYGON ((1 x, 2 3, 4 5))")


def test_commands_and_events() -> None:
    assert traccar.command({"type": "positionPeriodic", "attributes": '{"frequency": 120}'}) == (
        "interval.set", {"seconds": 120})
    assert traccar.command({"type": "custom", "attributes": '{"data": "RCONF"}'}) == ("custom", {"payload": "RCONF"})
    assert traccar.command({"type": "sendSms", "attributes": "{}"}) is None
    event = traccar.event_message({"type": "commandResult", "eventtime": datetime(2024, 1, 1),
                                   "attributes": '{"result": "OK"}'})
    assert event == {"timestamp": datetime(2024, 1, 1, tzinfo=UTC).timestamp(),
                     "message.type": "traccar.commandResult", "command.response": "OK"}
    assert traccar.event_message({"type": "ignitionOn", "eventtime": datetime(2024, 1, 1)}) is None


def test_passwords_stay_out_of_messages() -> None:
    assert redact("mysql://root:secret@db:3306/traccar") == "mysql://root:***@db:3306/traccar"
    assert redact("postgresql://postgres@127.0.0.1/traccar") == "postgresql://postgres@127.0.0.1/traccar"
