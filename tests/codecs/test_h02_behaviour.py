"""H02 replies, settings, special messages, UDP, commands and the parameter registry."""

from __future__ import annotations

import pytest

from sinogate.codecs import connection_class
from sinogate.codecs.base import CodecError, DeviceSettings
from sinogate.codecs.h02 import COMMANDS, Connection
from sinogate.codecs.h02.status import STATUS_BITS
from sinogate.model import params

NOW = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC
NOW_010203 = 1_699_920_000.0 + 3723  # 2023-11-14 01:02:03 UTC
V1 = b"*HQ,4210051415,V1,164549,A,0956.3869,N,08406.7068,W,000.00,000,221215,FFFFFBFF#"
V1_TS = 1450802749.0
V5 = b"*HQ,9180271064,V5,091233,V,2348.8912,N,09021.3302,E,000.00,000,051219,FFFFBBFF,470,01,21019,2033,2921283#"
B32 = bytes.fromhex("2441060116601245431311165035313006004318210e000000fffffbffff0024")
LINK = b"*HQ,1700086468,LINK,180902,15,0,84,0,0,240517,FFFFFBFF#"


def _conn(**kw: object) -> Connection:
    cfg = DeviceSettings(**kw)  # type: ignore[arg-type]
    return Connection(settings=lambda _i: cfg)


def _one(conn: Connection, data: bytes, now: float = NOW) -> tuple[dict, list[bytes], list[str]]:
    frames = conn.feed(data, now)
    msgs = [m for f in frames for m in f.messages]
    assert len(msgs) == 1, [f.errors for f in frames]
    return msgs[0], [r for f in frames for r in f.replies], [e for f in frames for e in f.errors]


def test_registered_via_connection_class() -> None:
    assert connection_class("h02") is Connection
    assert Connection.protocol == "h02"


# --- replies ---------------------------------------------------------------------------------


def test_r12_off_by_default_on_with_setting() -> None:
    _, replies, _ = _one(Connection(), V5)
    assert replies == []
    _, replies, _ = _one(_conn(h02_ack=True), V5)
    assert replies == [b"*HQ,9180271064,R12,221320#"]


def test_r12_for_binary_only_with_ack() -> None:
    assert _one(Connection(), B32)[1] == []
    assert _one(_conn(h02_ack=True), B32)[1] == [b"*HQ,4106011660,R12,221320#"]


def test_v1_gets_v4_reply_not_r12_even_with_ack() -> None:
    assert _one(_conn(h02_ack=True), V1)[1] == [b"*HQ,4210051415,V4,V1,20231114221320#"]


def test_link_never_answered() -> None:
    assert _one(_conn(h02_ack=True), LINK)[1] == []


@pytest.mark.parametrize(
    ("data", "echo"),
    [
        (b"*HQ,135790246811220,HTBT,100#", b"*HQ,135790246811220,HTBT#"),
        (b"*HQ,135790246811220,HTBT#", b"*HQ,135790246811220,HTBT#"),
        (b"*HQ,4106012736,V0,1,2,3#", b"*HQ,4106012736,V0#"),
        (b"*HQ,4106012736,V0#", b"*HQ,4106012736,V0#"),
    ],
)
def test_heartbeat_echo(data: bytes, echo: bytes) -> None:
    frames = _conn(h02_ack=True).feed(data, NOW)
    assert [r for f in frames for r in f.replies] == [echo]
    assert not any("position.latitude" in m for f in frames for m in f.messages)


def test_heartbeat_echo_even_when_decoding_fails() -> None:
    frames = Connection().feed(b"*HQ,135790246811220,HTBT,abc#", NOW)
    assert frames[0].replies == [b"*HQ,135790246811220,HTBT#"]
    assert frames[0].errors and not frames[0].messages


def test_empty_id_uses_known_ident_and_gets_no_reply() -> None:
    conn = Connection()
    _one(conn, V1)
    msg, replies, errors = _one(conn, b"*HQ,,V1,173212,A,2225.78879,S,02829.19021,E,0.00,0,290418,FFFFFBFF#")
    assert msg["ident"] == "4210051415" and replies == [] and errors == []
    assert conn.ident == "4210051415"


def test_empty_id_on_fresh_connection_is_reported() -> None:
    msg, replies, errors = _one(Connection(), b"*HQ,,V1,173212,A,2225.78879,S,02829.19021,E,0.00,0,290418,FFFFFBFF#")
    assert replies == [] and errors and msg["position.latitude"] == pytest.approx(-22.429813, abs=1e-5)


def test_th_code_reply_uses_hq() -> None:
    data = b"*TH,2020916012,V1,050316,A,2212.8745,N,11346.6574,E,14.28,028,220902,FFFFFBFF#"
    assert _one(Connection(), data)[1] == [b"*HQ,2020916012,V4,V1,20231114221320#"]


# --- messages ----------------------------------------------------------------------------------


def test_short_v4_ack_is_a_command_reply_without_position() -> None:
    msg, replies, errors = _one(Connection(), b"*HQ,7340001234,V4,S20,034313,1,1#")
    assert errors == [] and replies == []
    assert msg["message.type"] == "V4"
    assert msg["command.code"] == "S20"
    assert msg["command.time"] == "034313"
    assert msg["command.response"] == "S20,034313,1,1"
    assert msg["timestamp"] == NOW
    assert "position.latitude" not in msg


def test_long_v4_reply_carries_code_time_and_result() -> None:
    data = b"*TH,2020916012,V4,S20,DONE,130305,050316,A,2212.8745,N,11346.6574,E,14.28,028,220902,F7FFFBFF#"
    msg, _, _ = _one(Connection(), data)
    assert (msg["command.code"], msg["command.time"], msg["command.response"]) == ("S20", "130305", "S20,DONE,130305")
    assert msg["engine.blocked.status"] is True
    assert msg["position.latitude"] == pytest.approx(22.214575, abs=1e-6)


def test_sms_reply_with_volt() -> None:
    data = b"*HQ,5226073533,SMS,ST906 2024\nIP:1.2.3.4 5013\nVOLT:12.9V\nGSM:26#"
    msg, replies, _ = _one(_conn(h02_ack=True), data)
    assert replies == []
    assert msg["message.type"] == "SMS"
    assert msg["command.response"] == "ST906 2024\nIP:1.2.3.4 5013\nVOLT:12.9V\nGSM:26"
    assert msg["external.powersource.voltage"] == 12.9
    assert msg["gsm.signal.level"] == 26
    assert msg["timestamp"] == NOW


def test_time_offset_setting_shifts_device_time() -> None:
    msg, _, _ = _one(_conn(time_offset=8), V1)
    assert msg["timestamp"] == V1_TS - 8 * 3600
    msg, _, _ = _one(_conn(time_offset=-3.5), B32)
    assert msg["timestamp"] == 1479041143.0 + 3.5 * 3600
    # no date in the packet: now, whatever the offset
    msg, _, _ = _one(_conn(time_offset=8), b"*HQ,353505220873067,V1,,V,4605.75732,N,01430.73863,E,0.00,0,,FFFFFFEF#")
    assert msg["timestamp"] == NOW


def test_status_bits_all_named_and_active_low() -> None:
    msg, _, _ = _one(Connection(), V1.replace(b"FFFFFBFF", b"00000000"))
    names = [name for _, name, _ in STATUS_BITS]
    assert len(set(names)) == 32
    for name in names:
        expected = name != "engine.ignition.status"  # bit 10 is active high
        assert msg[name] is expected, name
    msg, _, _ = _one(Connection(), V1.replace(b"FFFFFBFF", b"FFFFFFFF"))
    assert msg["engine.ignition.status"] is True
    assert not any(msg[n] for n in names if n != "engine.ignition.status")
    assert msg["sos.alarm"] is False


@pytest.mark.parametrize(("status", "name"), [("FFFBFFFF", "sos.alarm"), ("FFFFFBFD", "robbery.alarm"),
                                              ("FFFFFBFB", "overspeeding.event"), ("FFF7FBFF", "power.cut.alarm"),
                                              ("F7FFFBFF", "engine.blocked.status"), ("FFFFF7FF", "h02.status.bit11")])
def test_single_status_bits(status: str, name: str) -> None:
    msg, _, _ = _one(Connection(), V1.replace(b"FFFFFBFF", status.encode()))
    assert msg[name] is True
    if name == "robbery.alarm":
        assert msg["sos.alarm"] is True


def test_empty_coordinates_give_message_without_position() -> None:
    msg, _, errors = _one(Connection(), b"*HQ,353505510948929,V1,,V,,N,,E,0.00,0,,FFFFF7FF,f0,a,11a0,c0c6#")
    assert errors == [] and "position.latitude" not in msg
    assert msg["vehicle.state.bitmask"] == 0xFFFFF7FF
    assert (msg["gsm.mcc"], msg["gsm.mnc"], msg["gsm.lac"], msg["gsm.cellid"]) == (240, 10, 0x11A0, 0xC0C6)


def test_zero_hemisphere_gives_no_position() -> None:
    msg, _, _ = _one(Connection(), b"*HQ,4210051415,V1,164549,V,0.0000,0,0.0000,0,0.00,0,221215,FFFFFBFF#")
    assert "position.latitude" not in msg and msg["engine.ignition.status"] is False


def test_v19_keeps_date_status_and_iccid() -> None:
    data = (b"*HQ,4209951296,V19,214452,A,5201.0178,N,01830.5029,E,000.00,000,200417,,195.63.13.195,"
            b"89480610500392633029,BFFFFBFF#")
    msg, _, _ = _one(Connection(), data)
    assert msg["timestamp"] == 1492724692.0
    assert msg["vehicle.state.bitmask"] == 0xBFFFFBFF
    assert msg["gsm.sim.iccid"] == "89480610500392633029"


def test_binary_45_trailer() -> None:
    data = bytes.fromhex("24410600082621532131081504419390060740418306000000fffffbfdff0015060000002c02dc0c000000001f")
    msg, _, _ = _one(Connection(), data)
    assert (msg["gsm.mcc"], msg["gsm.mnc"], msg["gsm.signal.level"], msg["position.satellites"]) == (732, 12, 21, 6)
    assert msg["event.seqnum"] == 0x1F


def test_vehicle_state_derived() -> None:
    assert _one(Connection(), V1)[0]["vehicle.state"] == "parked"
    moving = V1.replace(b"000.00,000,221215", b"030.00,000,221215").replace(b"FFFFFBFF", b"FFFFFFFF")
    assert _one(Connection(), moving)[0]["vehicle.state"] == "moving"


def test_unknown_type_reported_but_device_heard() -> None:
    msg, replies, errors = _one(_conn(h02_ack=True), b"*HQ,4210051415,ZZ,1,2#")
    assert msg["message.type"] == "ZZ" and replies == [] and errors


def test_xt_is_bare_without_error() -> None:
    msg, replies, errors = _one(_conn(h02_ack=True), b"*HQ,356327080425330,XT,1,100#")
    assert msg == {"ident": "356327080425330", "message.type": "XT", "timestamp": NOW, "vendor.code": "HQ"}
    assert replies == [] and errors == []


# --- UDP -----------------------------------------------------------------------------------------


def test_datagram_one_message() -> None:
    conn = Connection()
    frames = conn.datagram(V1 + b"\r\n", NOW)
    assert len(frames) == 1 and len(frames[0].messages) == 1
    assert frames[0].replies == [b"*HQ,4210051415,V4,V1,20231114221320#"]
    assert conn.buffered() == 0
    assert conn.datagram(V1[:-1], NOW)[0].messages  # no '#' is fine on UDP
    assert conn.datagram(B32, NOW)[0].messages[0]["ident"] == "4106011660"
    assert conn.datagram(b"hello", NOW)[0].errors
    assert conn.datagram(V1[:30], NOW)[0].errors  # half a datagram is not buffered


# --- commands ----------------------------------------------------------------------------------


def _known(ident: str = "4210051415", **kw: object) -> Connection:
    conn = _conn(**kw)
    conn.feed(f"*HQ,{ident},XT,1#".encode(), NOW)
    return conn


@pytest.mark.parametrize(
    ("name", "props", "data", "match", "expects"),
    [
        ("engine.stop", {}, b"*HQ,4210051415,S20,010203,1,1#", {"code": "S20", "time": "010203"}, ("v4",)),
        ("engine.resume", {}, b"*HQ,4210051415,S20,010203,1,0#", {"code": "S20", "time": "010203"}, ("v4",)),
        ("alarm.arm", {}, b"*HQ,4210051415,SCF,010203,0,0#", {"code": "SCF", "time": "010203"}, ("v4",)),
        ("alarm.disarm", {}, b"*HQ,4210051415,SCF,010203,1,1#", {"code": "SCF", "time": "010203"}, ("v4",)),
        ("interval.set", {"seconds": 30}, b"*HQ,4210051415,S71,010203,22,30#", {"code": "S71", "time": "010203"},
         ("v4",)),
        ("interval.set", {"seconds": 30, "alternative": True}, b"*HQ,4210051415,D1,010203,30#",
         {"code": "D1", "time": "010203"}, ("v4",)),
        ("mileage.query", {}, b"*HQ,4210051415,S32,010203#", {"code": "S32", "time": "010203"}, ("v4",)),
        ("status.query", {}, b"*HQ,4210051415,S26,010203#", {"code": "S26", "time": "010203"}, ("link", "v4")),
        ("reboot", {}, b"RESTART", {"raw": True}, ("sms",)),
        ("server.set", {"host": "1.2.3.4", "port": 5013}, b"8040000 1.2.3.4 5013", {"raw": True}, ("sms",)),
        ("server.set", {"host": "gps.example.com", "port": 5013, "password": "1234"},
         b"8041234 gps.example.com 5013", {"raw": True}, ("sms",)),
        ("custom", {"payload": "S71,130305,22,30"}, b"*HQ,4210051415,S71,130305,22,30#",
         {"code": "S71", "time": "130305"}, ("v4",)),
        ("custom", {"payload": "S20,1,1"}, b"*HQ,4210051415,S20,010203,1,1#", {"code": "S20", "time": "010203"},
         ("v4",)),
        ("custom", {"text": "SCF,0,0"}, b"*HQ,4210051415,SCF,010203,0,0#", {"code": "SCF", "time": "010203"},
         ("v4",)),
        ("custom", {"payload": "D1,10"}, b"*HQ,4210051415,D1,010203,10#", {"code": "D1", "time": "010203"}, ("v4",)),
        ("custom", {"payload": "S26"}, b"*HQ,4210051415,S26,010203#", {"code": "S26", "time": "010203"},
         ("link", "v4")),
        ("custom", {"payload": "RCONF"}, b"RCONF", {"raw": True}, ("sms",)),
        ("custom", {"payload": "CQ"}, b"CQ", {"raw": True}, ("sms",)),
        ("custom", {"payload": "C10#"}, b"C10#", {"raw": True}, ("sms",)),
        ("custom", {"payload": "CXZT"}, b"CXZT", {"raw": True}, ("sms",)),
        ("custom", {"payload": "8040000 1.2.3.4 5013"}, b"8040000 1.2.3.4 5013", {"raw": True}, ("sms",)),
        ("custom", {"payload": "*HQ,4210051415,S20,111111,1,1#"}, b"*HQ,4210051415,S20,111111,1,1#",
         {"code": "S20", "time": "111111"}, ("v4",)),
        ("custom", {"payload": "S20,1,1", "mode": "raw"}, b"S20,1,1", {"raw": True}, ("sms",)),
        ("custom", {"payload": "RCONF", "mode": "wrapped"}, b"*HQ,4210051415,RCONF,010203#",
         {"code": "RCONF", "time": "010203"}, ("v4",)),
    ],
)
def test_encode_command(name: str, props: dict, data: bytes, match: dict, expects: tuple) -> None:
    cmd = _known().encode_command(name, props, NOW_010203)
    assert (cmd.data, cmd.match, cmd.expects) == (data, match, expects)


def test_command_time_uses_device_offset() -> None:
    cmd = _known(time_offset=8).encode_command("engine.stop", {}, NOW_010203)
    assert cmd.data == b"*HQ,4210051415,S20,090203,1,1#" and cmd.match["time"] == "090203"


@pytest.mark.parametrize(
    ("name", "props"),
    [
        ("fly.away", {}),
        ("engine.stop", {"force": True}),
        ("interval.set", {}),
        ("interval.set", {"seconds": "30"}),
        ("interval.set", {"seconds": True}),
        ("interval.set", {"seconds": -1}),
        ("interval.set", {"seconds": 30, "alternative": "yes"}),
        ("server.set", {"host": "1.2.3.4"}),
        ("server.set", {"host": "a b", "port": 5013}),
        ("server.set", {"host": "1.2.3.4", "port": 70000}),
        ("server.set", {"host": "1.2.3.4", "port": 5013, "password": "ab"}),
        ("custom", {}),
        ("custom", {"payload": ""}),
        ("custom", {"payload": 5}),
        ("custom", {"payload": "S20,1#1"}),
        ("custom", {"payload": "RC\nONF"}),
        ("custom", {"payload": "S20", "mode": "loud"}),
        ("custom", {"payload": "привет"}),
    ],
)
def test_bad_commands_raise_codec_error(name: str, props: dict) -> None:
    with pytest.raises(CodecError) as info:
        _known().encode_command(name, props, NOW)
    assert info.value.reason


def test_command_without_known_ident() -> None:
    with pytest.raises(CodecError, match="ident"):
        Connection().encode_command("engine.stop", {}, NOW)


def test_commands_catalog() -> None:
    assert set(COMMANDS) == {"custom", "engine.stop", "engine.resume", "alarm.arm", "alarm.disarm", "interval.set",
                             "mileage.query", "status.query", "reboot", "server.set",
                             # Sinotrack settings sent as their SMS text (codecs/sinotrack.py)
                             "apn.set", "timezone.set", "mode.set", "interval.acc_on.set", "interval.acc_off.set",
                             "overspeed.set", "power.alarm.set", "password.set", "config.query", "status.text.query",
                             "version.query", "factory.reset"}
    for name, schema in COMMANDS.items():
        assert schema["type"] == "object" and schema["description"], name
        assert isinstance(schema["properties"], dict)


def test_parameters_registered() -> None:
    for name in [n for _, n, _ in STATUS_BITS] + ["fuel.level", "sensor.temperature", "h02.battery.raw",
                                                  "h02.mileage.raw"]:
        p = params.get(name)
        assert p is not None and p.meaning, name
