"""Every catalog entry of every protocol: its exact bytes on the wire (GPRS) and its SMS text.

The expected values are written out by hand (JT/T 808 frames are built with the tests' own framer,
``tests.commands.devices.jt808_frame``), and a test fails when an entry is added to the catalog
without a line here."""

from __future__ import annotations

from typing import Any

import pytest

from sinogate.codecs.h02 import commands as h02
from sinogate.codecs.jt808 import encode_command_frame
from sinogate.commands import catalog, sms
from tests.commands.devices import jt808_frame

IDENT = "4210051415"
NOW = 3723.0  # 01:02:03 UTC
PHONE = "013511221122"

# name: (properties, bytes written over GPRS, SMS text with the default password or None)
H02: dict[str, tuple[dict[str, Any], bytes, str | None]] = {
    "custom": ({"payload": "S20,1,1"}, b"*HQ,4210051415,S20,010203,1,1#", "S20,1,1"),
    "engine.stop": ({}, b"*HQ,4210051415,S20,010203,1,1#", "9400000"),
    "engine.resume": ({}, b"*HQ,4210051415,S20,010203,1,0#", "9410000"),
    "alarm.arm": ({}, b"*HQ,4210051415,SCF,010203,0,0#", None),
    "alarm.disarm": ({}, b"*HQ,4210051415,SCF,010203,1,1#", None),
    "interval.set": ({"seconds": 30}, b"*HQ,4210051415,S71,010203,22,30#", "8050000 30"),
    "mileage.query": ({}, b"*HQ,4210051415,S32,010203#", "1430000"),
    "status.query": ({}, b"*HQ,4210051415,S26,010203#", "CXZT"),
    "reboot": ({}, b"RESTART", "RESTART"),
    "server.set": ({"host": "1.2.3.4", "port": 5013}, b"8040000 1.2.3.4 5013", "8040000 1.2.3.4 5013"),
    "apn.set": ({"apn": "internet"}, b"8030000 internet", "8030000 internet"),
    "timezone.set": ({"hours": 0}, b"8960000E00", "8960000E00"),
    "mode.set": ({"mode": "gprs"}, b"7100000", "7100000"),
    "interval.acc_on.set": ({"seconds": 30}, b"8050000 30", "8050000 30"),
    "interval.acc_off.set": ({"seconds": 600}, b"8090000 600", "8090000 600"),
    "overspeed.set": ({"speed": 120}, b"1220000 120", "1220000 120"),
    "power.alarm.set": ({"enabled": True}, b"0110000", "0110000"),
    "password.set": ({"new_password": "1234"}, b"77712340000", "77712340000"),
    "config.query": ({}, b"RCONF", "RCONF"),
    "status.text.query": ({}, b"CXZT", "CXZT"),
    "version.query": ({}, b"VERSION", "VERSION"),
    "factory.reset": ({}, b"FORMAT", "FORMAT"),
}

# More forms of the same entries: (name, properties, bytes, SMS text with password 1234 or None)
H02_MORE: list[tuple[str, dict[str, Any], bytes, str | None]] = [
    ("interval.set", {"seconds": 60, "alternative": True}, b"*HQ,4210051415,D1,010203,60#", "8051234 60"),
    ("custom", {"payload": "RCONF"}, b"RCONF", "RCONF"),
    ("custom", {"payload": "8040000 1.2.3.4 5013", "mode": "raw"}, b"8040000 1.2.3.4 5013", "8040000 1.2.3.4 5013"),
    ("server.set", {"host": "gps.example.org", "port": 5013, "password": "1234"}, b"8041234 gps.example.org 5013",
     "8041234 gps.example.org 5013"),
    ("apn.set", {"apn": "web.example", "apn_user": "u", "apn_password": "p", "password": "1234"},
     b"8031234 web.example u p", "8031234 web.example u p"),
    ("timezone.set", {"hours": -5, "password": "1234"}, b"8961234W05", "8961234W05"),
    ("timezone.set", {"hours": 8, "password": "1234"}, b"8961234E08", "8961234E08"),
    ("mode.set", {"mode": "sms", "password": "1234"}, b"7001234", "7001234"),
    ("interval.acc_on.set", {"seconds": 0, "password": "1234"}, b"8051234 0", "8051234 0"),
    ("overspeed.set", {"speed": 0, "password": "1234"}, b"1221234 0", "1221234 0"),
    ("power.alarm.set", {"enabled": False, "password": "1234"}, b"0101234", "0101234"),
    ("password.set", {"new_password": "5678", "password": "1234"}, b"77756781234", "77756781234"),
]

# JT/T 808 (2013 header, terminal 013511221122, serial 7): (properties, message id, body, SMS text or None)
JT808: dict[str, tuple[dict[str, Any], int, bytes, str | None]] = {
    "custom": ({"payload": "RELAY,1#"}, 0x8300, b"\x01RELAY,1#", "RELAY,1#"),
    "engine.stop": ({}, 0x8105, b"\xf0", None),
    "engine.resume": ({}, 0x8105, b"\xf1", None),
    "interval.set": ({"seconds": 30}, 0x8103, bytes.fromhex("01 00000029 04 0000001e"), None),
    "params.set": ({"params": {"0x0029": 30, "0x0055": 120}}, 0x8103,
                   bytes.fromhex("02 00000029 04 0000001e 00000055 04 00000078"), None),
    "params.query": ({}, 0x8104, b"", None),
    "terminal.control": ({"command": 4}, 0x8105, b"\x04", None),
    "reboot": ({}, 0x8105, b"\x04", None),
    "server.set": ({"host": "1.2.3.4", "port": 5015}, 0x8103,
                   bytes.fromhex("02 00000013 07") + b"1.2.3.4" + bytes.fromhex("00000018 04 00001397"), None),
    # the Sinotrack SMS set as 0x8300 texts (flag 0x01)
    "apn.set": ({"apn": "internet"}, 0x8300, b"\x018030000 internet", "8030000 internet"),
    "timezone.set": ({"hours": 0}, 0x8300, b"\x018960000E00", "8960000E00"),
    "mode.set": ({"mode": "gprs"}, 0x8300, b"\x017100000", "7100000"),
    "interval.acc_on.set": ({"seconds": 30}, 0x8300, b"\x018050000 30", "8050000 30"),
    "interval.acc_off.set": ({"seconds": 600}, 0x8300, b"\x018090000 600", "8090000 600"),
    "overspeed.set": ({"speed": 120}, 0x8300, b"\x011220000 120", "1220000 120"),
    "power.alarm.set": ({"enabled": True}, 0x8300, b"\x010110000", "0110000"),
    "password.set": ({"new_password": "1234"}, 0x8300, b"\x0177712340000", "77712340000"),
    "config.query": ({}, 0x8300, b"\x01RCONF", "RCONF"),
    "status.text.query": ({}, 0x8300, b"\x01CXZT", "CXZT"),
    "version.query": ({}, 0x8300, b"\x01VERSION", "VERSION"),
    "factory.reset": ({}, 0x8300, b"\x01FORMAT", "FORMAT"),
}


def test_every_catalog_entry_has_a_wire_test() -> None:
    assert set(H02) == set(catalog.codec_commands("h02"))
    assert set(JT808) == set(catalog.codec_commands("jt808"))


@pytest.mark.parametrize("name", sorted(H02))
def test_h02_bytes_and_sms_text(name: str) -> None:
    props, wire, text = H02[name]
    catalog.check("h02", name, props)  # the example passes the catalog's schema
    assert h02.encode(IDENT, name, props, NOW, None).data == wire
    if text is None:
        assert not sms.supports("h02", name)
    else:
        assert sms.sms_text("h02", name, props, "0000") == text


@pytest.mark.parametrize(("name", "props", "wire", "text"), H02_MORE)
def test_h02_more_forms_and_the_device_password(name: str, props: dict[str, Any], wire: bytes,
                                                 text: str | None) -> None:
    catalog.check("h02", name, props)
    assert h02.encode(IDENT, name, props, NOW, None).data == wire
    assert sms.sms_text("h02", name, props, "1234") == text


@pytest.mark.parametrize("name", sorted(JT808))
def test_jt808_bytes_and_sms_text(name: str) -> None:
    props, msg_id, body, text = JT808[name]
    catalog.check("jt808", name, props)
    encoded = encode_command_frame(name, props, bytes.fromhex(PHONE), 7)
    assert encoded.data == jt808_frame(msg_id, PHONE, 7, body)
    if text is None:
        assert not sms.supports("jt808", name)
    else:
        assert sms.sms_text("jt808", name, props, "0000") == text


def test_text_commands_answer_by_sms_and_refuse_bad_properties() -> None:
    from sinogate.codecs import CodecError

    assert h02.encode(IDENT, "config.query", {}, NOW, None).expects == ("sms",)
    for name, props in [("timezone.set", {"hours": 15}), ("apn.set", {"apn": "has space"}),
                        ("password.set", {"new_password": "12a4"}), ("overspeed.set", {"speed": -1}),
                        ("apn.set", {"apn": "x", "apn_user": "u"})]:
        with pytest.raises(CodecError):
            h02.encode(IDENT, name, props, NOW, None)


DESTRUCTIVE = [
    ("h02", "engine.stop", {}), ("h02", "server.set", {"host": "1.2.3.4", "port": 1}), ("h02", "reboot", {}),
    ("h02", "factory.reset", {}), ("h02", "password.set", {"new_password": "1234"}),
    ("h02", "mode.set", {"mode": "sms"}),
    ("h02", "custom", {"payload": "9400000"}), ("h02", "custom", {"payload": "S20,1,1"}),
    ("h02", "custom", {"payload": "*HQ,4210051415,S20,010203,1,1#"}), ("h02", "custom", {"payload": "RESTART"}),
    ("h02", "custom", {"payload": "8040000 1.2.3.4 5013"}), ("h02", "custom", {"payload": "format"}),
    ("jt808", "engine.stop", {}), ("jt808", "reboot", {}), ("jt808", "terminal.control", {"command": 0xF0}),
    ("jt808", "terminal.control", {"command": 5}), ("jt808", "params.set", {"params": {"0x0013": "1.2.3.4"}}),
    ("jt808", "custom", {"payload": "RELAY,1#"}),
]
HARMLESS = [
    ("h02", "engine.resume", {}), ("h02", "mode.set", {"mode": "gprs"}), ("h02", "custom", {"payload": "RCONF"}),
    ("h02", "custom", {"payload": "S20,1,0"}), ("h02", "interval.set", {"seconds": 30}),
    ("jt808", "terminal.control", {"command": 1}), ("jt808", "params.set", {"params": {"0x0029": 30}}),
]


@pytest.mark.parametrize(("protocol", "name", "props"), DESTRUCTIVE)
def test_destructive_commands_need_confirm(protocol: str, name: str, props: dict[str, Any]) -> None:
    assert catalog.destructive(protocol, name, props)
    with pytest.raises(catalog.CommandError, match='"confirm": true'):
        catalog.check_confirmed(protocol, name, props, None)
    catalog.check_confirmed(protocol, name, props, True)


@pytest.mark.parametrize(("protocol", "name", "props"), HARMLESS)
def test_harmless_commands_need_no_confirm(protocol: str, name: str, props: dict[str, Any]) -> None:
    assert catalog.destructive(protocol, name, props) is None
    catalog.check_confirmed(protocol, name, props, None)


def test_engine_stops_and_the_catalog_marks() -> None:
    assert catalog.stops_engine("h02", "custom", {"payload": "9401234"})
    assert not catalog.stops_engine("h02", "reboot", {})
    entries = {e["name"]: e for e in catalog.catalog_for("h02")}
    assert entries["engine.stop"]["destructive"] is True and "fuel" in entries["engine.stop"]["warning"]
    assert entries["mode.set"]["destructive"] is False and "sms" in entries["mode.set"]["warning"]
    assert "sms" in entries["apn.set"]["address"] and "unverified" in entries["factory.reset"]["description"]
