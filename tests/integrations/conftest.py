"""Fixtures of the integration tests: the real broker (127.0.0.1:1883, started by ``.ci/run``), a
topic prefix of the test's own (its retained messages removed afterwards), an HTTP receiver."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integrations.helpers import Receiver, broker_up, clear_retained, unique_prefix


@pytest.fixture
def broker() -> None:
    if not broker_up():
        pytest.fail("no MQTT broker at 127.0.0.1:1883: start Mosquitto (mosquitto -d -c /etc/mosquitto/mosquitto.conf)")


@pytest.fixture
def prefix(broker: None) -> Iterator[str]:
    value = unique_prefix()
    yield value
    clear_retained(value)
    clear_retained(f"{value}-ha")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()
