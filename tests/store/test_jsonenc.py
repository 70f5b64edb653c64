"""The one JSON encoding and the dedup digest."""

from __future__ import annotations

import json

from sinogate.jsonenc import dumps, encode_message

DEVICE = {"ident": "42", "message.type": "V1", "timestamp": 1000.0, "position.latitude": 1.5, "note": 'a,"peer":b'}


def test_digest_ignores_reception_fields_wherever_they_sit() -> None:
    bare_data, bare = encode_message(dict(DEVICE))
    trailing = {**DEVICE, "server.timestamp": 5.0, "peer": "1.2.3.4:5", "device.id": 7, "timestamp.flagged": True}
    middle = {"server.timestamp": 9.0, **DEVICE, "peer": "9.9.9.9:9"}
    assert encode_message(trailing)[1] == bare
    assert encode_message(middle)[1] == bare
    assert json.loads(bare_data) == DEVICE


def test_digest_changes_with_content_in_any_position() -> None:
    _, base = encode_message({**DEVICE, "server.timestamp": 5.0})
    assert encode_message({**DEVICE, "server.timestamp": 5.0, "extra": 1})[1] != base  # after a reception field
    assert encode_message({**DEVICE, "position.latitude": 1.6, "server.timestamp": 5.0})[1] != base


def test_huge_integers_fall_back_to_the_stdlib() -> None:
    assert json.loads(dumps({"raw": 2**70})) == {"raw": 2**70}
