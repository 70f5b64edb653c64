"""Channels are listeners: several per protocol, each with its own id and registration policy."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx
import pytest

from sinogate.config import ListenerConfig
from sinogate.store.base import TimeQuery
from tests.conftest import TEST_TOKEN, free_port
from tests.server.frames import h02_v1


def test_two_h02_channels_one_without_auto_register(tmp_path: Path, gateway_factory) -> None:  # type: ignore[no-untyped-def]
    listeners = [
        ListenerConfig(protocol="h02", port=free_port(), id=11, name="fleet-a"),
        ListenerConfig(protocol="h02", port=free_port(), id=12, name="fleet-b", auto_register=False, udp=False),
        ListenerConfig(protocol="jt808", port=free_port(), id=20),
    ]
    with gateway_factory(tmp_path / "data", listeners=listeners) as server:
        runtime = server.runtime
        assert [(c.id, c.name, c.protocol, c.bound) for c in runtime.channels] == [
            (11, "fleet-a", "h02", listeners[0].port), (12, "fleet-b", "h02", listeners[1].port),
            (20, "jt808", "jt808", listeners[2].port)]
        now = time.time()
        for port, ident in ((listeners[0].port, "7000000001"), (listeners[1].port, "7000000002")):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(h02_v1(ident, now - 5, 1.5, 2.5))
                time.sleep(0.3)
        assert runtime.devices.find("h02", "7000000001") is not None
        assert runtime.devices.find("h02", "7000000002") is None  # fleet-b registers nobody
        unknown = server.run(runtime.store.messages(None, TimeQuery(), protocol="h02"))
        assert {m["channel.id"] for m in unknown} == {11, 12}
        headers = {"Authorization": f"FlespiToken {TEST_TOKEN}"}
        channels = httpx.get(f"{server.http_url}/gw/channels", headers=headers).json()["result"]
        assert [(c["id"], c["name"], c["transports"], c["configuration"]["auto_register"]) for c in channels] == [
            (11, "fleet-a", ["tcp", "udp"], True), (12, "fleet-b", ["tcp"], False), (20, "jt808", ["tcp", "udp"], True)]
        idents = httpx.get(f"{server.http_url}/gw/channels/12/idents", headers=headers).json()["result"]
        assert any(i["ident"] == "7000000002" and i["unknown"] for i in idents)


def test_a_listener_with_an_unknown_protocol_fails_the_start(tmp_path: Path, gateway_factory) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(Exception, match="unknown protocol 'gt06'"), \
            gateway_factory(tmp_path / "data", listeners=[ListenerConfig(protocol="gt06", port=free_port())]):
        pass
