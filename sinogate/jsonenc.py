"""The one JSON encoding of a message, used by the store, the API, the stream and the CLI.

orjson does the work (an order of magnitude faster than the stdlib on the ingest path); values
it cannot represent (integers beyond 64 bits) fall back to the stdlib encoder.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

import orjson

_stdlib = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
loads = orjson.loads

# The pipeline's enrich handler adds the reception fields (server.timestamp first, then peer,
# channel and device) after everything the device said, so the device's content is the prefix of
# the encoded message up to this key. JSON escapes quotes inside strings, so the marker cannot
# occur inside a value.
_RECEPTION_MARKER = b',"server.timestamp":'


def dumps_bytes(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except (orjson.JSONEncodeError, TypeError):
        return _stdlib(value).encode()


def dumps(value: Any) -> str:
    return dumps_bytes(value).decode()


def encode_message(message: dict[str, Any]) -> tuple[str, int]:
    """(JSON text, digest of the device's content) — two receptions of the same device message
    differ only after the reception marker, so they get the same digest."""
    data = dumps_bytes(message)
    cut = data.find(_RECEPTION_MARKER)
    digest = zlib.crc32(memoryview(data)[:cut] if cut > 0 else data)
    return data.decode(), digest
