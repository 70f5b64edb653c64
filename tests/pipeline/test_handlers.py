"""Pipeline handlers and the chain runner, without a server."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from sinogate.pipeline.base import Context, Handler, Message
from sinogate.pipeline.chain import HANDLERS
from sinogate.pipeline.enrich import Enrich
from sinogate.pipeline.runner import Pipeline
from sinogate.pipeline.time_sanity import TimeSanity

NOW = 1_750_000_000.0
DEVICE: dict[str, Any] = {"id": 7, "name": "truck", "settings": {}}


def ctx(device: dict[str, Any] | None = DEVICE, states: dict[str, Any] | None = None) -> Context:
    return Context("h02", "tcp", "10.0.0.1:5000", NOW, device, 1, 1, states)


def test_chain_order_is_declared_once() -> None:
    names = [h.name for h in HANDLERS]
    assert names[:8] == ["enrich", "time_sanity", "clock", "plugins", "filters", "odometer", "edges", "geofencing"]
    assert names.index("overspeed") > names.index("geofencing")  # it reads the fences' speed limits


def test_enrich_adds_reception_and_device_fields() -> None:
    message = Enrich({}).handle({"ident": "42", "position.speed": 3.0}, ctx())
    assert message == {
        "ident": "42", "position.speed": 3.0, "server.timestamp": NOW, "peer": "10.0.0.1:5000", "channel.id": 1,
        "protocol.id": 1, "protocol.name": "h02", "transport": "tcp", "timestamp": NOW, "device.id": 7,
        "device.name": "truck", "device.type.id": 0,
    }
    unknown = Enrich({}).handle({"ident": "42", "timestamp": 5.0}, ctx(device=None))
    assert "device.id" not in unknown and unknown["timestamp"] == 5.0


@pytest.mark.parametrize(("ts", "flagged"), [
    (NOW - 3600, False), (NOW + 86_000, False), (NOW + 86_401, True), (946_684_799.0, True), ("x", True),
    (True, True),
])
def test_time_sanity(ts: Any, flagged: bool) -> None:
    message = TimeSanity({}).handle({"timestamp": ts}, ctx())
    assert message.get("timestamp.flagged", False) is flagged


def test_server_config_is_read_once_and_device_settings_override_it() -> None:
    handler = TimeSanity({"time_max_ahead": 60.0})
    assert handler.handle({"timestamp": NOW + 120}, ctx()).get("timestamp.flagged") is True
    lenient = {**DEVICE, "settings": {"time_max_ahead": 3600.0}}
    assert "timestamp.flagged" not in handler.handle({"timestamp": NOW + 120}, ctx(device=lenient))


class Counter(Handler):
    """A stateful handler: counts a device's messages in its per-device state."""

    name = "counter"

    def handle(self, message: Message, ctx: Context) -> Message:
        state = ctx.state(self.name)
        if state is not None:
            state["n"] = state.get("n", 0) + 1
            message["count"] = state["n"]
        return message


class Boom(Handler):
    name = "boom"

    def handle(self, message: Message, ctx: Context) -> Message:
        if message.get("explode"):
            raise RuntimeError("kaboom")
        return message


class DropOdd(Handler):
    name = "drop_odd"

    def handle(self, message: Message, ctx: Context) -> Message | None:
        return None if message["i"] % 2 else message


def test_per_device_state_lives_in_the_context_states() -> None:
    states: dict[str, Any] = {}
    pipeline = Pipeline([Counter({})])
    out = pipeline.run([{"i": 0}, {"i": 1}], ctx(states=states))
    out += pipeline.run([{"i": 2}], ctx(states=states))
    assert [m["count"] for m in out] == [1, 2, 3]
    assert states == {"counter": {"n": 3}}
    assert pipeline.run([{"i": 3}], ctx(device=None)) == [{"i": 3}]  # no device, no state


def test_a_failing_handler_is_logged_and_skipped(caplog: pytest.LogCaptureFixture) -> None:
    pipeline = Pipeline([Boom({}), Counter({})])
    with caplog.at_level(logging.ERROR, logger="sinogate.pipeline"):
        out = pipeline.run([{"i": 0, "explode": True}, {"i": 1}], ctx(states={}))
    assert [m["count"] for m in out] == [1, 2]  # both messages went on through the chain
    assert pipeline.failures == 1
    assert "handler boom failed" in caplog.text and "'explode': True" in caplog.text


def test_a_handler_can_drop_messages() -> None:
    assert Pipeline([DropOdd({}), Counter({})]).run([{"i": i} for i in range(5)], ctx(states={})) == [
        {"i": 0, "count": 1}, {"i": 2, "count": 2}, {"i": 4, "count": 3}]
