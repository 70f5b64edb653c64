"""The parameter registry: every message field sinogate emits, with type, unit and source packets.

The first block is the published Sinotrack parameter set; the names sinogate adds follow, and
each protocol contributes its own (alarm and status bits, vendor fields) as ``ProtocolSpec.params``,
collected here in the registry's protocol order. A name declared twice keeps its first definition.
"""

from __future__ import annotations

from sinogate import codecs
from sinogate.model.param import Param

_CORE: tuple[Param, ...] = (
    Param('battery.level', 'number', 'percentage', 'Internal battery level', 'Command *V1, Command *V4, Command *V5, Command *V6'),
    Param('battery.low.alarm', 'boolean', '', 'Battery low alarm event', 'Message ID 0x0200, Message ID 0x0704'),
    Param('beidou.satellites.status', 'boolean', '', 'BeiDou positioning system status', 'Message ID 0x0200, Message ID 0x0704'),
    Param('channel.id', 'number', '', 'ID of channel that received a message', ''),
    Param('city.id', 'number', '', "ID of device's home city", 'Message ID 0x0100'),
    Param('crash.event', 'boolean', '', 'Crash event detected', 'Message ID 0x0200, Message ID 0x0704'),
    Param('custom', 'any', '', 'Any custom parameter', ''),
    Param('device.id', 'number', '', 'ID of device that received a message', ''),
    Param('device.name', 'string', '', 'Name of device that received a message', ''),
    Param('device.type.id', 'number', '', 'ID of device type of device that received a message', ''),
    Param('engine.ignition.status', 'boolean', '', 'Engine ignition or ACC status', 'Binary packet $, Command *V1, Command *V5, Command *V6, Message ID 0x0200, Message ID 0x0704'),
    Param('event.seqnum', 'number', '', 'Unique event sequence number', 'Binary packet $'),
    Param('fatigue.driving.status', 'boolean', '', 'Fatigue driving', 'Message ID 0x0200, Message ID 0x0704'),
    Param('galileo.satellites.status', 'boolean', '', 'Galileo positioning system status', 'Message ID 0x0200, Message ID 0x0704'),
    Param('glonass.satellites.status', 'boolean', '', 'Glonass positioning system status', 'Message ID 0x0200, Message ID 0x0704'),
    Param('gps.satellites.status', 'boolean', '', 'GPS positioning system status', 'Message ID 0x0200, Message ID 0x0704'),
    Param('gsm.cellid', 'number', '', 'Mobile network (GSM, 3G, 4G, LTE, 5G, ...) base station ID', 'Binary packet $, Command *V1, Command *V4, Command *V5, Command *V6'),
    Param('gsm.lac', 'number', '', 'Mobile network (GSM, 3G, 4G, LTE, 5G, ...) location area code', 'Binary packet $, Command *V1, Command *V4, Command *V5, Command *V6'),
    Param('gsm.mcc', 'number', '', 'Mobile network (GSM, 3G, 4G, LTE, 5G, ...) country code', 'Binary packet $, Command *V1, Command *V4, Command *V5, Command *V6'),
    Param('gsm.mnc', 'number', '', 'Mobile network (GSM, 3G, 4G, LTE, 5G, ...) code', 'Binary packet $, Command *V1, Command *V4, Command *V5, Command *V6'),
    Param('ident', 'string', '', 'Device unique identifier like serial number, IMEI, etc', ''),
    Param('manufacturer.code', 'string', '', 'Device manufacturer code', 'Message ID 0x0100'),
    Param('manufacturer.device.code', 'string', '', 'Device code, assigned by device manufacturer', 'Message ID 0x0100'),
    Param('message.type', 'string', '', 'Message type', ''),
    Param('overspeeding.event', 'boolean', '', 'Overspeeding detected', 'Message ID 0x0200, Message ID 0x0704'),
    Param('peer', 'string', '', 'IP:port from which device connecting to the channel', ''),
    Param('position.altitude', 'number', 'meters', 'Altitude value for position', 'Message ID 0x0200, Message ID 0x0704'),
    Param('position.direction', 'number', 'degrees', 'Heading angle at position detection moment', 'Binary packet $, Command *V1, Command *V4, Command *V5, Command *V6, Message ID 0x0200, Message ID 0x0704'),
    Param('position.latitude', 'number', 'degrees', 'Latitude coordinate value', 'Binary packet $, Command *V1, Command *V4, Command *V5, Command *V6, Message ID 0x0200, Message ID 0x0704'),
    Param('position.longitude', 'number', 'degrees', 'Longitude coordinate value', 'Binary packet $, Command *V1, Command *V4, Command *V5, Command *V6, Message ID 0x0200, Message ID 0x0704'),
    Param('position.speed', 'number', 'km/h', 'Instant speed at position detection moment', 'Binary packet $, Command *V1, Command *V4, Command *V5, Command *V6, Message ID 0x0200, Message ID 0x0704'),
    Param('position.valid', 'boolean', '', 'Is position information accurate and valid for given timestamp', 'Command *V1, Command *V4, Command *V5, Command *V6, Message ID 0x0200, Message ID 0x0704'),
    Param('power.cut.alarm', 'boolean', '', 'External power cut-off alarm event', 'Message ID 0x0200, Message ID 0x0704'),
    Param('protocol.id', 'number', '', 'ID of protocol', ''),
    Param('province.id', 'number', '', "ID of device's home province", 'Message ID 0x0100'),
    Param('rollover.event', 'boolean', '', 'Roll over event detected', 'Message ID 0x0200, Message ID 0x0704'),
    Param('server.timestamp', 'number', 'seconds', 'Timestamp when server received a message', ''),
    Param('sos.alarm', 'boolean', '', 'SOS alarm triggerred', 'Message ID 0x0200, Message ID 0x0704'),
    Param('timestamp', 'number', 'seconds', 'Message timestamp', 'Binary packet $, Command *V1, Command *V4, Command *V5, Command *V6, Message ID 0x0200, Message ID 0x0704'),
    Param('vehicle.mileage', 'number', 'km', 'Total calculated mileage', 'Binary packet $, Command *V4'),
    Param('vehicle.state', 'string', '', 'Vehicle state, such as moving, idling, parked etc', 'Binary packet $, Command *V1, Command *V4, Command *V5, Command *V6'),
    Param('vehicle.state.bitmask', 'number', '', 'Vehicle state flags bitmask', 'Binary packet $, Command *V1, Command *V4, Command *V5, Command *V6'),
    Param('vendor.code', 'string', '', 'Vendor identification string code', ''),
)

_EXTRA: tuple[Param, ...] = (
    Param("command.code", "string", "", "Command a device reply confirms (H02 `V4,<code>`, JT/T 808 answered id)",
          "Command *V4, Message ID 0x0001, Message ID 0x0104"),
    Param("command.response", "string", "", "Text the device sent back for a command",
          "Command *V4, Command *SMS, Message ID 0x0001, 0x0104, 0x6006, 0x0900, 0x0701, 0x1300"),
    Param("command.time", "string", "", "HHMMSS of the confirmed H02 command, echoed by the device",
          "Command *V4"),
    Param("command.serial", "number", "", "Serial number of the platform message a JT/T 808 reply answers",
          "Message ID 0x0001, Message ID 0x0104, Message ID 0x1300"),
    Param("command.result.code", "number", "",
          "JT/T 808 general response result: 0 ok, 1 failed, 2 bad message, 3 unsupported",
          "Message ID 0x0001"),
    Param("position.satellites", "number", "", "Number of satellites used for the fix",
          "Binary packet $ (45 bytes), LINK, Message ID 0x0200 item 0x31"),
    Param("position.blackbox", "boolean", "", "Position stored while offline and uploaded later (blind area)",
          "Message ID 0x0704 with data type 1"),
    Param("gsm.signal.level", "number", "", "GSM signal level (CSQ, 0-31)",
          "Binary packet $ (45 bytes), LINK, SMS, Message ID 0x0200 item 0x30"),
    Param("external.powersource.voltage", "number", "volts", "External (vehicle) supply voltage",
          "SMS (VOLT), Message ID 0x0200 vendor items"),
    Param("battery.voltage", "number", "volts", "Internal battery voltage", "Message ID 0x0200 vendor items"),
    Param("gsm.sim.iccid", "string", "", "SIM card ICCID", "Command *V19, Message ID 0x0200 item 0xEB, Message ID 0x0107"),
    Param("protocol.name", "string", "", "Name of the protocol that carried the message (h02, jt808)", ""),
    Param("transport", "string", "", "tcp, udp, or http for messages posted through the REST API", ""),
    Param("timestamp.flagged", "boolean", "",
          "Device time cannot be right: before 2000, more than a day ahead of the server, or more than "
          "clock_max_ahead (300 s) ahead after any clock correction; kept, never used as latest", ""),
    Param("timestamp.original", "number", "seconds",
          "Device time as the device sent it, before the detected clock offset was removed "
          "(time_offset auto)", ""),
    Param("timestamp.corrected", "boolean", "",
          "The timestamp was corrected by the device's detected clock offset (time_offset auto)", ""),
    Param("clock.offset", "number", "hours",
          "Detected offset of the device clock from UTC (time_offset auto); corrected times remove it", ""),
    # Added by the analytics handlers (sinogate/pipeline/):
    Param("message.late", "boolean", "",
          "Device time older than the newest the device already sent (blind-area batch, buffer replay)", ""),
    Param("position.filtered", "boolean", "",
          "The fix is kept but analytics ignore it (see position.filter.reason)", ""),
    Param("position.filter.reason", "string", "",
          "Why the fix was filtered: invalid (not valid), zero (0,0), jump (implied speed above filter_max_speed)",
          ""),
    Param("odometer.step", "number", "km", "Distance from the previous accepted fix", ""),
    Param("odometer.computed", "number", "km",
          "Running distance computed by the server from accepted fixes (apart from vehicle.mileage)", ""),
)

_REGISTRY: dict[str, Param] = {p.name: p for p in (*_CORE, *_EXTRA)}


def register(params: tuple[Param, ...] | list[Param]) -> None:
    """Add names; one already known keeps its first definition."""
    for p in params:
        _REGISTRY.setdefault(p.name, p)


for _spec in codecs.SPECS.values():
    register(_spec.params)


def all_params() -> list[Param]:
    """Every known name (the core set, sinogate's additions, every protocol's), sorted by name."""
    return sorted(_REGISTRY.values(), key=lambda p: p.name)


def get(name: str) -> Param | None:
    return _REGISTRY.get(name)


CORE_NAMES: frozenset[str] = frozenset(p.name for p in _CORE)


__all__ = ["CORE_NAMES", "Param", "all_params", "get", "register"]
