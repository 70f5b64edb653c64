"""H02 status word: 32 active-low bits, one boolean each (reference §5).

A bit value of 0 means the condition is active; bit 10 (ACC) is the exception: 1 means the
ignition is on. The tables are built once at import from the bit list below and never change,
so decoding a status is four ``dict.update`` calls (one per byte) plus the combined SOS flag.

``sos.alarm`` is true when bit 18 (SOS) **or** bit 1 (robbery, "SOS" in another vendor
variant; Traccar maps both to sos) is active. Bit 1 is also reported alone as ``robbery.alarm``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Final

from sinogate.model.param import Param

_B = "Binary packet $, Command *V1, Command *V4, Command *V5, Command *V6, NBR, LINK, V3"

# (bit, name, meaning). Names for bits 20-31 are best effort (reference §5).
STATUS_BITS: Final[tuple[tuple[int, str, str], ...]] = (
    (0, "theft.alarm", "Theft alarm (other variant: illegal door opening), H02 status bit 0"),
    (1, "robbery.alarm", "Robbery alarm (other variant: SOS), H02 status bit 1; also sets sos.alarm"),
    (2, "overspeeding.event", "Overspeeding detected, H02 status bit 2"),
    (3, "illegal.ignition.alarm", "Illegal ignition alarm, H02 status bit 3"),
    (4, "geofence.in.alarm", "Geofence entering alarm, H02 status bit 4"),
    (5, "gnss.antenna.open.alarm", "GNSS antenna open-circuit alarm, H02 status bit 5"),
    (6, "gnss.antenna.short.alarm", "GNSS antenna short-circuit alarm, H02 status bit 6"),
    (7, "geofence.out.alarm", "Geofence leaving alarm, H02 status bit 7"),
    (8, "door.open.status", "Door open, H02 status bit 8"),
    (9, "vehicle.armed.status", "Vehicle armed (fortified), H02 status bit 9"),
    (10, "engine.ignition.status", "ACC on, H02 status bit 10 (active high)"),
    (11, "h02.status.bit11", "H02 status bit 11 active: reserved (variant 1: crash alarm)"),
    (12, "h02.status.bit12", "H02 status bit 12 active: reserved"),
    (13, "h02.status.bit13", "H02 status bit 13 active: 'engine' in the TQ document, 'pump' in variant 1"),
    (14, "custom.alarm", "Custom alarm, H02 status bit 14"),
    (15, "overspeeding.status", "Overspeed state, H02 status bit 15"),
    (16, "gnss.receiver.fault.alarm", "GNSS receiver fault, H02 status bit 16"),
    (17, "analog.overrange.alarm", "Analog input over range (variants: shock, low battery), H02 status bit 17"),
    (18, "sos.alarm", "SOS alarm, H02 status bit 18 (also set by bit 1)"),
    (19, "power.cut.alarm", "Main power lost, running on backup battery, H02 status bit 19"),
    (20, "battery.removed.alarm", "Backup battery removed alarm, H02 status bit 20"),
    (21, "gnss.antenna.open.status", "GNSS antenna open circuit (state), H02 status bit 21"),
    (22, "gnss.antenna.short.status", "GNSS antenna short circuit (state), H02 status bit 22"),
    (23, "sensor.low2.status", "Low-level sensor 2 active, H02 status bit 23"),
    (24, "temperature.alarm", "Temperature alarm, H02 status bit 24"),
    (25, "password.wrong.alarm", "Password entered wrongly three times, H02 status bit 25"),
    (26, "gprs.blocked.status", "GPRS blocked, H02 status bit 26"),
    (27, "engine.blocked.status", "Oil/power cut relay engaged (engine blocked), H02 status bit 27"),
    (28, "battery.removed.status", "Battery removal state, H02 status bit 28"),
    (29, "sensor.high1.status", "High-level sensor 1 active, H02 status bit 29"),
    (30, "sensor.high2.status", "High-level sensor 2 active, H02 status bit 30"),
    (31, "sensor.low1.status", "Low-level sensor 1 active, H02 status bit 31"),
)

IGNITION_BIT: Final = 10
SOS_MASK: Final = (1 << 1) | (1 << 18)


def _table(byte_index: int) -> tuple[dict[str, bool], ...]:
    bits = [(bit - 8 * byte_index, name) for bit, name, _ in STATUS_BITS if bit // 8 == byte_index]
    table = []
    for value in range(256):
        flags = {}
        for shift, name in bits:
            on = (value >> shift) & 1 == 1
            flags[name] = on if shift + 8 * byte_index == IGNITION_BIT else not on
        table.append(flags)
    return tuple(table)


# Per byte of the status word (byte 0 = least significant), value -> flags.
_T0, _T1, _T2, _T3 = (_table(i) for i in range(4))


@lru_cache(maxsize=1024)
def status_fields(status: int) -> dict[str, object]:
    """The raw status word and every flag it carries (memoised: a pure function of ``status``)."""
    fields: dict[str, object] = {"vehicle.state.bitmask": status}
    fields.update(_T0[status & 0xFF])
    fields.update(_T1[(status >> 8) & 0xFF])
    fields.update(_T2[(status >> 16) & 0xFF])
    fields.update(_T3[(status >> 24) & 0xFF])
    fields["sos.alarm"] = status & SOS_MASK != SOS_MASK
    return fields


@lru_cache(maxsize=1024)
def status_template(status: int) -> dict[str, Any]:
    """``ident``, ``message.type`` and ``timestamp`` (None, to be set) then the status fields:
    a shared dict, copy it, never mutate it. (ident, message.type and timestamp first, so that
    messages read in a natural order.)"""
    head: dict[str, Any] = {"ident": None, "message.type": None, "timestamp": None}
    head.update(status_fields(status))
    return head


def with_status(head: dict[str, Any], status: int) -> dict[str, Any]:
    """A new message: ``head`` (which must hold ident, message.type, timestamp) plus the status.

    Copying a memoised, pre-sized dict is much cheaper than inserting 34 keys one by one.
    """
    msg: dict[str, Any] = status_template(status).copy()
    msg.update(head)
    return msg


def apply_status(msg: dict[str, object], status: int) -> None:
    """Add the raw status word and every flag it carries to ``msg``."""
    msg.update(status_fields(status))


def parse_status(text: str) -> int | None:
    """An 8-hex-digit status field as an int, or None when the field is not one."""
    if len(text) != 8:
        return None
    try:
        return int(text, 16) if text.isalnum() else None
    except ValueError:
        return None


# the message names of the status bits, for the parameter registry (via SPEC.params)
FIELDS: Final[tuple[Param, ...]] = tuple(Param(name, "boolean", "", meaning, _B) for _, name, meaning in STATUS_BITS)
