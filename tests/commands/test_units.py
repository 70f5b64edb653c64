"""Pure parts: the catalog and its validator, reply matching, SMS texts."""

from __future__ import annotations

import pytest

from sinogate.commands import catalog, matching, sms
from sinogate.commands.catalog import CommandError
from sinogate.commands.matching import Pending


def test_catalog_entries() -> None:
    for protocol in ("h02", "jt808"):
        entries = catalog.catalog_for(protocol)
        names = {e["name"] for e in entries}
        assert {"custom", "engine.stop", "engine.resume", "interval.set", "reboot", "server.set"} <= names
        for e in entries:
            assert e["address"][0] == "connection" and isinstance(e["schema"], dict) and e["examples"]
            catalog.check(protocol, e["name"], e["examples"][0]["properties"])  # examples are valid
    h02 = {e["name"]: e for e in catalog.catalog_for("h02")}
    assert "sms" in h02["reboot"]["address"] and "sms" not in h02["alarm.arm"]["address"]
    assert {"params.set", "params.query", "terminal.control"} <= {e["name"] for e in catalog.catalog_for("jt808")}


@pytest.mark.parametrize(("name", "props", "reason"), [
    ("nope", {}, "unknown command 'nope'"),
    ("interval.set", {}, "missing required property 'seconds'"),
    ("interval.set", {"seconds": True}, "seconds must be integer"),
    ("interval.set", {"seconds": -1}, ">= 0"),
    ("engine.stop", {"x": 1}, "unknown property 'x'"),
    ("custom", {"payload": "S20", "mode": "both"}, "mode must be one of"),
])
def test_validation(name: str, props: dict, reason: str) -> None:
    with pytest.raises(CommandError, match=reason):
        catalog.check("h02", name, props)


def p(cid: int, match: dict, expects: tuple[str, ...]) -> Pending:
    return Pending(cid, match, expects)


def test_h02_matching() -> None:
    pending = [p(1, {"code": "S20", "time": "010203"}, ("v4",)), p(2, {"code": "S20", "time": "010204"}, ("v4",)),
               p(3, {"raw": True}, ("sms",)), p(4, {"code": "S26", "time": "010205"}, ("link", "v4"))]
    m = matching.find("h02", pending, {"message.type": "V4", "command.code": "S20", "command.time": "010204",
                                       "command.response": "S20,010204,1,1"})
    assert m is not None and m.pending.id == 2 and m.final and m.executed
    m = matching.find("h02", pending, {"message.type": "V4", "command.code": "S20", "command.response": "S20,ERROR"})
    assert m is not None and m.pending.id == 1 and m.executed is False
    m = matching.find("h02", pending, {"message.type": "SMS", "command.response": "ok"})
    assert m is not None and m.pending.id == 3
    m = matching.find("h02", pending, {"message.type": "LINK", "gsm.signal.level": 20})
    assert m is not None and m.pending.id == 4 and "gsm.signal.level=20" in (m.response or "")
    assert matching.find("h02", pending, {"message.type": "V4", "command.code": "S71"}) is None
    assert matching.is_reply("h02", {"message.type": "V4"}) and not matching.is_reply("h02", {"message.type": "V1"})


def test_jt808_matching() -> None:
    pending = [p(1, {"serial": 5, "msg_id": 0x8300}, ("general", "text")), p(2, {"serial": 6, "msg_id": 0x8105},
                                                                             ("general",)),
               p(3, {"serial": 7, "msg_id": 0x8104}, ("params",))]
    ack = {"message.type": "0x0001", "command.serial": 5, "command.code": "0x8300", "command.result.code": 0}
    m = matching.find("jt808", pending, ack)
    assert m is not None and m.pending.id == 1 and not m.final
    m = matching.find("jt808", pending, {"message.type": "0x0001", "command.serial": 6, "command.code": "0x8105",
                                         "command.result.code": 1, "command.response": "failure"})
    assert m is not None and m.pending.id == 2 and m.final and m.executed is False
    wrong_id = {"message.type": "0x0001", "command.serial": 6, "command.code": "0x8300", "command.result.code": 0}
    assert matching.find("jt808", pending, wrong_id) is None
    m = matching.find("jt808", pending, {"message.type": "0x6006", "command.response": "OK"})
    assert m is not None and m.pending.id == 1 and m.final
    m = matching.find("jt808", pending, {"message.type": "0x0104", "command.serial": 7, "command.response": "a"})
    assert m is not None and m.pending.id == 3
    assert matching.find("jt808", pending, {"message.type": "0x0900", "passthrough.data": "00"}) is None


def test_sms_texts() -> None:
    assert sms.sms_text("h02", "interval.set", {"seconds": 30}, "1234") == "8051234 30"
    assert sms.sms_text("h02", "server.set", {"host": "a.b", "port": 1}) == "8040000 a.b 1"
    assert sms.sms_text("h02", "engine.stop", {}) == "9400000"
    assert sms.sms_text("h02", "reboot", {}) == "RESTART"
    assert sms.sms_text("jt808", "custom", {"text": "WHERE#"}) == "WHERE#"
    assert "unverified" in sms.note("h02", "engine.stop")
    with pytest.raises(ValueError):
        sms.sms_text("h02", "alarm.arm", {})
    assert sms.password_of({"settings": {"sms_password": "9999"}}) == "9999"
    assert sms.password_of({"settings": {}}) == "0000"
