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

# What the server adds on reception: two receptions of the same device message differ only here.
RECEPTION_FIELDS = frozenset({
    "server.timestamp", "peer", "channel.id", "protocol.id", "protocol.name", "transport", "device.id",
    "device.name", "device.type.id", "timestamp.flagged",
})


def dumps_bytes(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except (orjson.JSONEncodeError, TypeError):
        return _stdlib(value).encode()


def dumps(value: Any) -> str:
    return dumps_bytes(value).decode()


def device_digest(message: dict[str, Any]) -> int:
    """The dedup digest of a message exactly as the device sent it (the codec's output, before the
    pipeline adds anything): CRC-32 of its JSON without the closing brace. For a codec message it
    equals what ``encode_message`` gave earlier releases, so stored data keeps deduplicating."""
    return zlib.crc32(memoryview(dumps_bytes(message))[:-1])


def encode_message(message: dict[str, Any]) -> tuple[bytes, int]:
    """(JSON, content digest) for a message written without a digest from the ingest service
    (``IngestBatch.digests`` absent): receptions of the same device message get the same
    digest whatever the server added.

    The pipeline appends the reception fields after the device's content, so usually the content
    is a prefix of the JSON and one encoding serves both; a message with reception fields
    elsewhere (an injected one, say) is digested from a copy without them.
    """
    data = dumps_bytes(message)
    first_trailing = None
    trailing = 0
    for key in reversed(message):
        if key not in RECEPTION_FIELDS:
            break
        first_trailing = key
        trailing += 1
    present = sum(map(message.__contains__, RECEPTION_FIELDS))
    # The digest covers the content's JSON without its closing brace.
    if present == 0:
        return data, zlib.crc32(memoryview(data)[:-1])
    if trailing == present and first_trailing is not None:
        # JSON escapes quotes inside strings and reception values are scalars, so the last
        # occurrence of this key token is the top-level key itself.
        cut = data.rfind(b',"' + first_trailing.encode() + b'":')
        if cut > 0:
            return data, zlib.crc32(memoryview(data)[:cut])
    return data, content_digest(message)


def content_digest(message: dict[str, Any]) -> int:
    """The digest of a message minus the fields the server adds on reception."""
    content = {k: v for k, v in message.items() if k not in RECEPTION_FIELDS}
    return zlib.crc32(dumps_bytes(content)[:-1])
