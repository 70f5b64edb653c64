"""JT/T 808 commands end to end: 0x8105 / 0x8300 / 0x8103 / 0x8104 answered by 0x0001, 0x6006,
0x1300 and 0x0104 from a test terminal on a real socket."""

from __future__ import annotations

import struct
from typing import Any

import pytest

from tests.commands.devices import JT808Device, api, device_id, in_thread, joined, jt808_frame, wait_for

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def jt(gateway_server: Any) -> Any:
    dev = JT808Device(gateway_server.jt808_port)
    dev.hello()
    dev.id = device_id(gateway_server, "jt808")
    yield dev
    dev.close()


def realtime(server: Any, dev: JT808Device, name: str, props: dict[str, Any] | None = None) -> dict[str, Any]:
    return in_thread(api, server, "POST", f"/gw/devices/{dev.id}/commands",
                     json=[{"name": name, "properties": props or {}, "timeout": 10, "confirm": True}])


def test_engine_stop_exact_bytes_and_general_response(gateway_server: Any, jt: JT808Device) -> None:
    box = realtime(gateway_server, jt, "engine.stop")
    frame, msg_id, serial, body = jt.read_command()
    assert msg_id == 0x8105 and body == b"\xf0"
    assert frame == jt808_frame(0x8105, jt.phone, serial, b"\xf0")
    jt.general_response(serial, 0x8105, 0)
    item = joined(box).json()["result"][0]
    assert item["status"] == "processed" and item["executed"] is True
    assert item["reply"]["message.type"] == "0x0001"


def test_failure_result_is_not_executed(gateway_server: Any, jt: JT808Device) -> None:
    box = realtime(gateway_server, jt, "terminal.control", {"command": 7})
    _, msg_id, serial, body = jt.read_command()
    assert msg_id == 0x8105 and body == b"\x07"
    jt.general_response(serial, 0x8105, 3)  # not supported
    item = joined(box).json()["result"][0]
    assert item["status"] == "processed" and item["executed"] is False


def test_text_command_answered_by_0001_then_6006(gateway_server: Any, jt: JT808Device) -> None:
    box = realtime(gateway_server, jt, "custom", {"payload": "STATUS#"})
    frame, msg_id, serial, body = jt.read_command()
    assert msg_id == 0x8300 and body == b"\x01STATUS#"
    assert frame == jt808_frame(0x8300, jt.phone, serial, b"\x01STATUS#")
    jt.general_response(serial, 0x8300, 0)
    jt.send(0x6006, b"\x01GPS:A SAT:9 GSM:26 RELAY:0")
    item = joined(box).json()["result"][0]
    assert item["status"] == "processed"
    assert item["response"] == "GPS:A SAT:9 GSM:26 RELAY:0"
    assert item["reply"]["message.type"] == "0x6006"


def test_text_command_answered_by_1300_with_serial(gateway_server: Any, jt: JT808Device) -> None:
    box = realtime(gateway_server, jt, "custom", {"payload": "RELAY,1#"})
    _, msg_id, serial, _ = jt.read_command()
    assert msg_id == 0x8300
    jt.send(0x1300, struct.pack(">H", serial) + "Set OK!".encode("utf-16-be"))
    item = joined(box).json()["result"][0]
    assert item["status"] == "processed" and item["response"] == "Set OK!"


def test_params_query_answered_by_0104(gateway_server: Any, jt: JT808Device) -> None:
    box = realtime(gateway_server, jt, "params.query")
    _, msg_id, serial, body = jt.read_command()
    assert msg_id == 0x8104 and body == b""
    jt.send(0x0104, struct.pack(">HB", serial, 1) + struct.pack(">IBI", 0x0029, 4, 30))
    item = joined(box).json()["result"][0]
    assert item["status"] == "processed" and "0x0029=30" in item["response"]


def test_interval_setting_confirmed_by_0001(gateway_server: Any, jt: JT808Device) -> None:
    resp = api(gateway_server, "PUT", f"/gw/devices/{jt.id}/settings/interval", json={"value": 45})
    assert resp.status_code == 200, resp.text
    _, msg_id, serial, body = jt.read_command()
    assert msg_id == 0x8103 and body == bytes.fromhex("01" "00000029" "04" "0000002d")
    jt.general_response(serial, 0x8103, 0)

    def confirmed() -> Any:
        got = api(gateway_server, "GET", f"/gw/devices/{jt.id}/settings/interval").json()["result"][0]
        return got if got["value"] == 45 else None

    assert wait_for(confirmed)["pending"] is None


def test_unmatched_general_response(gateway_server: Any, jt: JT808Device) -> None:
    import asyncio

    gw = gateway_server.runtime
    sub = gateway_server.call(gw.bus.subscribe, lambda e: e["type"] == "command")
    jt.general_response(0x7777, 0x8105, 0)
    event = gateway_server.run(asyncio.wait_for(sub.get(), 5))
    assert event["data"]["unmatched"] is True and event["device_id"] == jt.id
    gateway_server.call(gw.bus.unsubscribe, sub)


def test_a_sinotrack_text_setting_over_jt808(gateway_server: Any, jt: JT808Device) -> None:
    """A Sinotrack unit in JT/T 808 mode takes the SMS text as 0x8300, acknowledges it with 0x0001 and
    answers with a text report; command support keys it by the message id and the text's code."""
    box = realtime(gateway_server, jt, "interval.acc_on.set", {"seconds": 30})
    _, msg_id, serial, body = jt.read_command()
    assert (msg_id, body) == (0x8300, b"\x018050000 30")
    jt.general_response(serial, 0x8300, 0)
    jt.send(0x6006, b"\x01SET OK! UT:30,300")
    item = joined(box).json()["result"][0]
    assert item["status"] == "processed" and item["response"] == "SET OK! UT:30,300"
    learned = api(gateway_server, "GET", f"/gw/devices/{jt.id}/command-support").json()["result"][0]
    entry = next(e for e in learned["commands"] if e["name"] == "interval.acc_on.set")
    assert entry["code"] == "0x8300 805" and entry["verdict"] == "answered 1/1"
