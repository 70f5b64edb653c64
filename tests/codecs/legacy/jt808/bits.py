"""JT/T 808 0x0200 alarm and status bit names, with byte-wise lookup tables for a fast decode.

Every bit of both words becomes one boolean. Core names (``sos.alarm``, ``position.valid`` …)
are used where they fit; the others are registered in the parameter registry.
"""

from __future__ import annotations

from sinogate.model.param import Param

_PK = "Message ID 0x0200, Message ID 0x0704"

# bit → (name, meaning); 2013 meaning, with the 2019 one where 2013 had a reserved bit
ALARM_BITS: tuple[tuple[str, str], ...] = (
    ("sos.alarm", "Emergency / SOS button (alarm bit 0)"),
    ("overspeeding.event", "Overspeed (alarm bit 1)"),
    ("fatigue.driving.status", "Fatigue driving (alarm bit 2)"),
    ("dangerous.driving.alarm", "Danger warning / dangerous driving behaviour (alarm bit 3)"),
    ("gnss.module.fault.alarm", "GNSS module fault (alarm bit 4)"),
    ("gnss.antenna.cut.alarm", "GNSS antenna not connected or cut (alarm bit 5)"),
    ("gnss.antenna.short.alarm", "GNSS antenna short circuit (alarm bit 6)"),
    ("battery.low.alarm", "Main power under-voltage / low voltage (alarm bit 7)"),
    ("power.cut.alarm", "Main power off (alarm bit 8)"),
    ("display.fault.alarm", "LCD / display fault (alarm bit 9)"),
    ("tts.fault.alarm", "TTS module fault (alarm bit 10)"),
    ("camera.fault.alarm", "Camera fault (alarm bit 11)"),
    ("iccard.fault.alarm", "IC-card module fault (alarm bit 12)"),
    ("overspeeding.warning.alarm", "Overspeed pre-warning (alarm bit 13)"),
    ("fatigue.driving.warning.alarm", "Fatigue driving pre-warning (alarm bit 14)"),
    ("illegal.driving.alarm", "Illegal driving (2019; reserved in 2013) (alarm bit 15)"),
    ("tyre.pressure.alarm", "Tyre-pressure warning (2019; reserved in 2013) (alarm bit 16)"),
    ("blind.spot.alarm", "Right-turn blind-spot alarm (2019; reserved in 2013) (alarm bit 17)"),
    ("driving.time.exceeded.alarm", "Cumulative driving time exceeded today (alarm bit 18)"),
    ("parking.overtime.alarm", "Overtime parking (alarm bit 19)"),
    ("geofence.area.alarm", "Entered or left an area (alarm bit 20)"),
    ("geofence.route.alarm", "Entered or left a route (alarm bit 21)"),
    ("route.time.alarm", "Route driving time too short or too long (alarm bit 22)"),
    ("route.deviation.alarm", "Route deviation (alarm bit 23)"),
    ("vss.fault.alarm", "Vehicle speed sensor fault (alarm bit 24)"),
    ("fuel.abnormal.alarm", "Abnormal fuel level (alarm bit 25)"),
    ("theft.alarm", "Vehicle stolen, anti-theft device (alarm bit 26)"),
    ("ignition.illegal.alarm", "Illegal ignition (alarm bit 27)"),
    ("movement.illegal.alarm", "Illegal displacement, vehicle moved (alarm bit 28)"),
    ("crash.event", "Collision (2019: collision/rollover) (alarm bit 29)"),
    ("rollover.event", "Rollover (alarm bit 30)"),
    ("door.illegal.open.alarm", "Illegal door opening (2013; reserved in 2019) (alarm bit 31)"),
)

STATUS_BITS: tuple[tuple[str, str], ...] = (
    ("engine.ignition.status", "ACC on (status bit 0)"),
    ("position.valid", "Positioned, valid fix (status bit 1)"),
    ("position.south.status", "Latitude is south (status bit 2)"),
    ("position.west.status", "Longitude is west (status bit 3)"),
    ("service.stopped.status", "Vehicle out of service / operation stopped (status bit 4)"),
    ("position.encrypted.status", "Coordinates encrypted by the secure plug-in (status bit 5)"),
    ("forward.collision.warning.status", "Forward-collision warning, AEBS (2019) (status bit 6)"),
    ("lane.departure.warning.status", "Lane-departure warning (2019) (status bit 7)"),
    ("cargo.load.bit0.status", "Load state low bit: 01 half, 11 full (status bit 8)"),
    ("cargo.load.bit1.status", "Load state high bit: 01 half, 11 full (status bit 9)"),
    ("fuel.cut.status", "Oil line cut, relay engaged (status bit 10)"),
    ("electric.circuit.cut.status", "Vehicle electric circuit cut (status bit 11)"),
    ("door.locked.status", "Doors locked (status bit 12)"),
    ("door.1.open.status", "Door 1 (front) open (status bit 13)"),
    ("door.2.open.status", "Door 2 (middle) open (status bit 14)"),
    ("door.3.open.status", "Door 3 (rear) open (status bit 15)"),
    ("door.4.open.status", "Door 4 (driver) open (status bit 16)"),
    ("door.5.open.status", "Door 5 (custom) open (status bit 17)"),
    ("gps.satellites.status", "GPS used for the fix (status bit 18)"),
    ("beidou.satellites.status", "BeiDou used for the fix (status bit 19)"),
    ("glonass.satellites.status", "GLONASS used for the fix (status bit 20)"),
    ("galileo.satellites.status", "Galileo used for the fix (status bit 21)"),
    ("movement.status", "Vehicle moving (2019) (status bit 22)"),
    *((f"status.bit{b}", f"Reserved / vendor-specific status bit {b}") for b in range(23, 32)),
)


def _tables(names: tuple[tuple[str, str], ...]) -> tuple[tuple[dict[str, bool], ...], ...]:
    """For each of the 4 bytes of a DWORD: byte value → {name: bool} of its 8 bits."""
    out = []
    for byte in range(4):
        bit_names = [names[byte * 8 + i][0] for i in range(8)]
        out.append(tuple({bit_names[i]: bool(v >> i & 1) for i in range(8)} for v in range(256)))
    return tuple(out)


ALARM_TABLES = _tables(ALARM_BITS)
STATUS_TABLES = _tables(STATUS_BITS)


_BITS_CACHE: dict[tuple[int, int], dict[str, object]] = {}


def bits_dict(alarm: int, status: int) -> dict[str, object]:
    """The 64 alarm/status booleans plus the raw words, as a shared dict: copy it, never mutate it.

    (alarm, status) pairs repeat from one report to the next, so the dicts are cached (bounded).
    """
    key = (alarm, status)
    bits = _BITS_CACHE.get(key)
    if bits is None:
        bits = {"alarm.bitmask": alarm, "status.bitmask": status, "cargo.load.state": status >> 8 & 3}
        _fill(bits, alarm, status)
        if len(_BITS_CACHE) >= 1024:
            _BITS_CACHE.clear()
        _BITS_CACHE[key] = bits
    return bits


def _fill(msg: dict[str, object], alarm: int, status: int) -> None:
    a0, a1, a2, a3 = ALARM_TABLES
    s0, s1, s2, s3 = STATUS_TABLES
    msg.update(a0[alarm & 0xFF])
    msg.update(a1[alarm >> 8 & 0xFF])
    msg.update(a2[alarm >> 16 & 0xFF])
    msg.update(a3[alarm >> 24 & 0xFF])
    msg.update(s0[status & 0xFF])
    msg.update(s1[status >> 8 & 0xFF])
    msg.update(s2[status >> 16 & 0xFF])
    msg.update(s3[status >> 24 & 0xFF])


_MORE: tuple[Param, ...] = (
    Param("alarm.bitmask", "number", "", "JT/T 808 alarm flags DWORD (0x0200 bytes 0-3)", _PK),
    Param("status.bitmask", "number", "", "JT/T 808 status flags DWORD (0x0200 bytes 4-7)", _PK),
    Param("cargo.load.state", "number", "", "Load state from status bits 8-9: 0 empty, 1 half, 3 full", _PK),
    Param("fuel.volume", "number", "litres", "Fuel (0x0200 item 0x02, 1/10 L)", _PK),
    Param("tachograph.speed", "number", "km/h", "Tachograph speed (0x0200 item 0x03)", _PK),
    Param("alarm.event.id", "number", "", "ID of an alarm event needing manual confirmation (item 0x04)", _PK),
    Param("cargo.temperature", "number", "celsius", "Cargo-compartment temperature (2019 item 0x06)", _PK),
    Param("vehicle.signals.bitmask", "number", "", "Extended vehicle signal DWORD (item 0x25)", _PK),
    Param("io.status.bitmask", "number", "", "IO status WORD (item 0x2A): b0 deep sleep, b1 sleep", _PK),
    Param("device.deep.sleep.status", "boolean", "", "Deep sleep (item 0x2A bit 0)", _PK),
    Param("device.sleep.status", "boolean", "", "Sleep (item 0x2A bit 1)", _PK),
    Param("analog.input.0", "number", "", "Raw analog input AD0 (item 0x2B bits 0-15)", _PK),
    Param("analog.input.1", "number", "", "Raw analog input AD1 (item 0x2B bits 16-31)", _PK),
    Param("battery.charging.status", "boolean", "", "Internal battery charging (vendor items)", _PK),
    Param("device.timezone", "string", "", "Time zone text the device sent (item 0xEB as text)", _PK),
    Param("device.firmware.version", "string", "", "Firmware version text (vendor item 0xF2, 0x0107)",
          f"{_PK}, Message ID 0x0107"),
    Param("device.model", "string", "", "Terminal model from registration", "Message ID 0x0100"),
    Param("vehicle.plate.number", "string", "", "Vehicle plate (or VIN when colour is 0)", "Message ID 0x0100"),
    Param("vehicle.plate.color", "number", "",
          "Plate colour: 0 none, 1 blue, 2 yellow, 3 black, 4 white, 9 other", "Message ID 0x0100"),
    Param("protocol.version", "number", "", "JT/T 808-2019 protocol version byte (absent for 2011/2013)", ""),
    Param("auth.code", "string", "", "Authentication code the terminal sent", "Message ID 0x0102"),
    Param("device.imei", "string", "", "IMEI the terminal sent (2019 authentication)", "Message ID 0x0102"),
    Param("device.software.version", "string", "", "Software version (2019 authentication)",
          "Message ID 0x0102"),
    Param("config.heartbeat.interval", "number", "seconds", "Parameter 0x0001", "Message ID 0x0104"),
    Param("config.report.interval", "number", "seconds", "Parameter 0x0029 default report interval",
          "Message ID 0x0104"),
    Param("config.report.sleep.interval", "number", "seconds", "Parameter 0x0027 (ACC-off) interval",
          "Message ID 0x0104"),
    Param("config.report.alarm.interval", "number", "seconds", "Parameter 0x0028 emergency interval",
          "Message ID 0x0104"),
    Param("config.server.host", "string", "", "Parameter 0x0013 main server", "Message ID 0x0104"),
    Param("config.server.port", "number", "", "Parameter 0x0018 server TCP port", "Message ID 0x0104"),
    Param("config.apn", "string", "", "Parameter 0x0010 APN", "Message ID 0x0104"),
    Param("config.speed.limit", "number", "km/h", "Parameter 0x0055 max speed", "Message ID 0x0104"),
)


# the alarm and status bit names and the 0x0200 item names, for the parameter registry (via SPEC.params)
FIELDS: tuple[Param, ...] = (
    *(Param(n, "boolean", "", m, _PK) for n, m in (*ALARM_BITS, *STATUS_BITS)),
    *_MORE,
)
