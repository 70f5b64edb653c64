"""The protocol registry and each protocol's ``ProtocolSpec``: facts, reply matching on real replies,
and the command catalog and SMS texts reached through the spec."""

from __future__ import annotations

import calendar
import dataclasses
from typing import Any

import pytest

from sinogate import codecs
from sinogate.codecs import h02, jt808
from sinogate.codecs.base import DeviceSettings, Message
from sinogate.codecs.spec import Match, Pending, ProtocolSpec
from sinogate.commands import catalog, matching, sms

try:  # tests/ as a package, or tests/codecs on sys.path (pytest rootdir-relative import)
    from tests.codecs.vectors import load
except ImportError:
    from vectors import load  # type: ignore[no-redef,import-not-found]

NOW = 1_700_000_000.0
H02 = {v["id"]: v for v in load("h02.json")}
JT808 = {v["id"]: v for v in load("jt808.json") + load("jt808_more.json")}


# --- the registry ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "number", "port", "offset", "package"), [
    ("h02", 1, 5013, 0.0, h02),
    ("jt808", 2, 5015, 8.0, jt808),
])
def test_spec_facts(name: str, number: int, port: int, offset: float, package: Any) -> None:
    s = codecs.spec(name)
    assert s is package.SPEC and codecs.SPECS[name] is s
    assert (s.name, s.id, s.default_port, s.default_time_offset) == (name, number, port, offset)
    assert s.title
    assert s.connection is package.Connection and s.connection.protocol == name
    assert codecs.connection_class(name) is package.Connection
    assert codecs.PROTOCOL_IDS[name] == number
    assert s.commands == package.COMMANDS


def test_registry_names_and_ids_do_not_change() -> None:
    assert codecs.PROTOCOLS == ("h02", "jt808") == tuple(codecs.SPECS)
    assert codecs.PROTOCOL_IDS == {"h02": 1, "jt808": 2}
    assert all(isinstance(s, ProtocolSpec) for s in codecs.SPECS.values())


def test_unknown_protocol_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown protocol 'nope'; known: h02, jt808"):
        codecs.spec("nope")
    with pytest.raises(ValueError, match=r"unknown protocol 'nope'; known: h02, jt808"):
        codecs.connection_class("nope")
    assert matching.find("nope", [Pending(1)], {"message.type": "V4"}) is None
    assert not matching.is_reply("nope", {"message.type": "V4"})
    assert catalog.codec_commands("nope") == {} and not sms.supports("nope", "custom")


def test_specs_are_read_only() -> None:
    s = codecs.spec("h02")
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.id = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        s.commands["x"] = {}  # type: ignore[index]


def _first_position(conn: codecs.ProtocolConnection, data: bytes) -> Message:
    return next(m for f in conn.feed(data, NOW) for m in f.messages if "position.latitude" in m)


@pytest.mark.parametrize(("name", "vector"), [("h02", "h02-000"), ("jt808", "jt808-000")])
def test_default_time_offset_is_the_codecs(name: str, vector: str) -> None:
    """An unset ``time_offset`` decodes exactly like the spec's default set explicitly, and unlike
    one hour more."""
    s = codecs.spec(name)
    data = bytes.fromhex((H02 if name == "h02" else JT808)[vector]["hex"])
    unset = _first_position(s.connection(), data)["timestamp"]
    explicit = DeviceSettings(time_offset=s.default_time_offset)
    assert _first_position(s.connection(lambda _i: explicit), data)["timestamp"] == unset
    shifted = DeviceSettings(time_offset=s.default_time_offset + 1)
    assert _first_position(s.connection(lambda _i: shifted), data)["timestamp"] == unset - 3600


# --- reply matching on real replies ---------------------------------------------------------------

def _decoded(conn: codecs.ProtocolConnection, data: bytes, now: float = NOW) -> Message:
    frames = conn.feed(data, now)
    assert not [e for f in frames for e in f.errors]
    (message,) = [m for f in frames for m in f.messages]
    return message


def _both(protocol: str, pending: list[Pending], message: Message) -> Match | None:
    """The spec's answer, checked to be what the public dispatcher gives."""
    found = codecs.spec(protocol).match_reply(pending, message)
    via = matching.find(protocol, pending, message)
    assert (found is None) == (via is None)
    if found is not None and via is not None:
        assert dataclasses.astuple(found) == dataclasses.astuple(via)
    return found


def test_h02_short_v4_ack_closes_the_encoded_command() -> None:
    # reference h02.md §3: '*HQ,734000xxxx,V4,S20,034313,1,1#' answers '*HQ,734000xxxx,S20,034313,1,0#'
    conn = h02.Connection()
    conn.feed(b"*HQ,7340001234,HTBT#", NOW)
    now = float(calendar.timegm((2024, 1, 1, 3, 43, 13, 0, 0, 0)))
    stop = conn.encode_command("engine.stop", {}, now)
    older = conn.encode_command("engine.stop", {}, now - 60)
    pending = [Pending(1, older.match, older.expects), Pending(2, stop.match, stop.expects)]
    reply = _decoded(conn, b"*HQ,7340001234,V4,S20,034313,1,1#", now + 5)
    m = _both("h02", pending, reply)
    assert m is not None and m.pending.id == 2 and m.final and m.executed is True
    assert m.response == "S20,034313,1,1"
    assert codecs.spec("h02").is_reply(reply)


def test_h02_full_v4_done_and_error() -> None:
    pending = [Pending(1, {"code": "S20", "time": "010203"}, ("v4",)),
               Pending(2, {"code": "S20", "time": "130305"}, ("v4",)),
               Pending(3, {"raw": True}, ("sms",))]
    done = _decoded(h02.Connection(), bytes.fromhex(H02["h02-066"]["hex"]))  # V4,S20,DONE,130305,...
    m = _both("h02", pending, done)
    assert m is not None and (m.pending.id, m.final, m.executed, m.response) == (2, True, True, "S20,DONE,130305")
    error = _decoded(h02.Connection(), bytes.fromhex(H02["h02-065"]["hex"]))  # V4,S20,ERROR,130305,...
    m = _both("h02", pending, error)
    assert m is not None and (m.pending.id, m.final, m.executed, m.response) == (2, True, False, "S20,ERROR,130305")
    other = dict(done, **{"command.code": "S71", "command.time": "130305"})
    assert _both("h02", pending, other) is None


def test_h02_sms_and_link() -> None:
    pending = [Pending(1, {"code": "S20", "time": "010203"}, ("v4",)), Pending(2, {"raw": True}, ("sms",)),
               Pending(3, {"code": "S26", "time": "010204"}, ("link", "v4"))]
    text = _decoded(h02.Connection(), bytes.fromhex(H02["h02-085"]["hex"]))  # SMS answer to CXZT
    m = _both("h02", pending, text)
    assert m is not None and m.pending.id == 2 and m.final and m.executed is True
    assert m.response is not None and m.response.startswith("ST906(70SACD)_TQ_V_2.0")
    link = _decoded(h02.Connection(), bytes.fromhex(H02["h02-024"]["hex"]))
    m = _both("h02", pending, link)
    assert m is not None and m.pending.id == 3 and m.final and m.executed is True
    assert m.response is not None and m.response.startswith("LINK ") and "battery.level=84" in m.response
    assert not codecs.spec("h02").is_reply(link)  # LINK also comes unasked
    assert codecs.spec("h02").is_reply(text)


def test_jt808_general_response_by_serial() -> None:
    vec = JT808["jt808-more-014"]  # 0x0001: answered serial 0, answered id 0x8105, result 0
    reply = _decoded(jt808.Connection(), bytes.fromhex(vec["hex"]))
    phone = bytes.fromhex(vec["hex"])[5:11]
    stop = jt808.encode_command_frame("engine.stop", {}, phone, 0)
    text = jt808.encode_command_frame("custom", {"payload": "STATUS#"}, phone, 0)
    later = jt808.encode_command_frame("reboot", {}, phone, 1)
    assert stop.match == {"serial": 0, "msg_id": 0x8105}
    pending = [Pending(1, text.match, text.expects), Pending(2, stop.match, stop.expects),
               Pending(3, later.match, later.expects)]
    m = _both("jt808", pending, reply)
    assert m is not None and (m.pending.id, m.final, m.executed, m.response) == (2, True, True, "ok")
    failed = dict(reply, **{"command.result.code": 1})
    m = _both("jt808", pending, failed)
    assert m is not None and (m.pending.id, m.final, m.executed) == (2, True, False)
    # result 0 for a text command only acknowledges it: it stays open for the text answer
    ack = dict(reply, **{"command.code": "0x8300"})
    m = _both("jt808", pending, ack)
    assert m is not None and (m.pending.id, m.final, m.executed) == (1, False, True)
    assert _both("jt808", pending, dict(reply, **{"command.serial": 9})) is None
    assert codecs.spec("jt808").is_reply(reply)


def test_jt808_text_reports() -> None:
    pending = [Pending(1, {"serial": 4, "msg_id": 0x8300}, ("general", "text")),
               Pending(2, {"serial": 0, "msg_id": 0x8300}, ("general", "text"))]
    xinchun = _decoded(jt808.Connection(), bytes.fromhex(JT808["jt808-068"]["hex"]))  # 0x1300, serial 0
    m = _both("jt808", pending, xinchun)
    assert m is not None and (m.pending.id, m.final, m.executed, m.response) == (2, True, True, "Set OK!")
    waybill = _decoded(jt808.Connection(), bytes.fromhex(JT808["jt808-017"]["hex"]))  # 0x0701, no serial
    m = _both("jt808", pending, waybill)
    assert m is not None and (m.pending.id, m.response) == (1, "MD,SET CONFIG OK!")
    pending[1].acked = "ok"
    m = _both("jt808", pending, waybill)
    assert m is not None and m.pending.id == 2  # one the terminal already acknowledged comes first
    assert codecs.spec("jt808").is_reply(xinchun)
    assert not codecs.spec("jt808").is_reply({"message.type": "0x6006"})


def test_reply_types() -> None:
    assert codecs.spec("h02").reply_types == {"V4", "SMS", "LINK"}
    assert codecs.spec("jt808").reply_types == {"0x0001", "0x0104", "0x6006", "0x0900", "0x0701", "0x1300", "text"}
    assert codecs.spec("h02").reply_types | codecs.spec("jt808").reply_types == matching.REPLY_TYPES
    assert {"0x6006", "0x0900", "0x0701", "0x1300", "text"} == matching.JT808_TEXT_TYPES


# --- the catalog and SMS texts through the spec ---------------------------------------------------

@pytest.mark.parametrize("name", ["h02", "jt808"])
def test_catalog_comes_from_the_spec(name: str) -> None:
    s = codecs.spec(name)
    assert catalog.codec_commands(name) == dict(s.commands)
    assert set(s.command_examples) <= set(s.commands) and set(s.sms_texts) <= set(s.commands)
    for command, examples in s.command_examples.items():
        assert examples
        for props in examples:
            catalog.check(name, command, props)
    for entry in catalog.catalog_for(name):
        assert entry["schema"] is s.commands[entry["name"]]
        if entry["name"] in s.command_examples:
            assert [e["properties"] for e in entry["examples"]] == list(s.command_examples[entry["name"]])
        assert ("sms" in entry["address"]) == (entry["name"] in s.sms_texts)
    with pytest.raises(catalog.CommandError, match=f"unknown command 'nope' for protocol {name}"):
        catalog.schema_for(name, "nope")


def test_sms_texts_through_the_spec() -> None:
    texts = codecs.spec("h02").sms_texts
    build, note = texts["interval.set"]
    assert build({"seconds": 30}, "1234") == "8051234 30"
    assert sms.sms_text("h02", "interval.set", {"seconds": 30}, "1234") == "8051234 30"
    assert note == sms.note("h02", "interval.set") and "805<password>" in note
    assert texts["engine.stop"][0]({}, sms.DEFAULT_PASSWORD) == "9400000"
    assert "unverified" in texts["engine.stop"][1]
    assert texts["server.set"][0]({"host": "a.b", "port": 1}, "0000") == "8040000 a.b 1"
    assert codecs.spec("jt808").sms_texts["custom"][0]({"text": " WHERE# "}, "0000") == "WHERE#"
    # JT/T 808 has no SMS set of its own: custom, and the Sinotrack SMS set for Sinotrack units in 808 mode
    assert set(codecs.spec("jt808").sms_texts) == {"custom", "apn.set", "timezone.set", "mode.set",
                                                   "interval.acc_on.set", "interval.acc_off.set", "overspeed.set",
                                                   "power.alarm.set", "password.set", "config.query",
                                                   "status.text.query", "version.query", "factory.reset"}
    with pytest.raises(ValueError, match="custom: property 'payload'"):
        texts["custom"][0]({}, "0000")
    with pytest.raises(ValueError, match="has no SMS form for protocol h02"):
        sms.sms_text("h02", "alarm.arm", {})


def test_each_protocols_message_names_are_in_the_parameter_registry() -> None:
    from sinogate.model import params

    assert "h02.battery.raw" in {p.name for p in codecs.spec("h02").params}
    assert "passthrough.type" in {p.name for p in codecs.spec("jt808").params}
    for s in codecs.SPECS.values():
        assert s.params
        for p in s.params:
            assert params.get(p.name) is not None, p.name
    # a name two protocols declare keeps the first one's definition (the registry's protocol order)
    h02_theft = next(p for p in codecs.spec("h02").params if p.name == "theft.alarm")
    assert params.get("theft.alarm") == h02_theft
