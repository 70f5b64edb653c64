"""A message POSTed through the API takes the same ingest path as one from a socket."""

from __future__ import annotations

import time

from tests.api.conftest import Api


def test_posted_future_message_is_flagged_and_never_becomes_telemetry(api: Api) -> None:
    device = api.create_device("666000000009001")
    path = f"/gw/devices/{device['id']}/messages"
    now = time.time()
    api.ok("POST", path, json=[{"timestamp": now - 60, "position.latitude": 10.5, "position.speed": 12}])
    stored = api.ok("POST", path, json=[{"timestamp": now + 5 * 86400, "position.latitude": 11.5,
                                         "position.speed": 99}])
    # The pipeline ran: reception fields and the time check, as for a device's message.
    assert stored[0]["timestamp.flagged"] is True
    assert stored[0]["transport"] == "http" and stored[0]["device.id"] == device["id"]
    assert stored[0]["protocol.id"] == 1 and stored[0]["channel.id"] == 0
    messages = api.ok("GET", path)
    assert [m.get("timestamp.flagged", False) for m in messages] == [False, True]
    telemetry = api.ok("GET", f"/gw/devices/{device['id']}/telemetry/all")[0]["telemetry"]
    assert telemetry["position.latitude"]["value"] == 10.5
    assert telemetry["position.speed"] == {"value": 12, "ts": now - 60}


def test_posted_duplicate_is_stored_once_whatever_the_server_adds(api: Api) -> None:
    device = api.create_device("666000000009002")
    path = f"/gw/devices/{device['id']}/messages"
    body = [{"timestamp": 1_700_000_000.0, "position.latitude": 1.25, "alarm.code": 3}]
    api.ok("POST", path, json=body)
    time.sleep(0.01)  # another reception time: the digest covers only what was sent
    api.ok("POST", path, json=body)
    assert [m["position.latitude"] for m in api.ok("GET", path)] == [1.25]
