"""The one JSON encoding of a message, used by the store, the API, the stream and the CLI.

orjson does the work (an order of magnitude faster than the stdlib on the ingest path); values
it cannot represent (integers beyond 64 bits) fall back to the stdlib, both ways: ``dumps`` writes
them exactly, and ``loads`` reads them exactly (orjson would read them as floats).
"""

from __future__ import annotations

import json
import zlib
from typing import Any

import orjson

_stdlib = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

# orjson reads integers as 64-bit (signed, or unsigned up to 2**64 - 1) and longer ones as floats.
# Such an integer is a number token of 20 or more digits, or a minus sign and 19: a run of 20 of
# "-0123456789" at the start of the text or after what may precede a value (":", ",", "[" or
# whitespace; not a quote, so long digit strings such as ICCIDs do not count). Looking for one
# costs a C translate and a substring search (about 1.5 µs for a 1 KB message, orjson's parse
# about 2.6 µs); only a hit pays for the stdlib parser (about 11 µs).
_DIGIT_RUNS = bytes(0x30 if c in b"-0123456789" else 0x78 for c in range(256))
_LONG_RUN = b"0" * 20
_VALUE_START = frozenset(b":,[ \t\n\r")


def _long_integer(raw: bytes) -> bool:
    """Whether the JSON text may hold an integer beyond 64 bits (a few that do not count too:
    2**64 - 1 has 20 digits, -2**63 a sign and 19; the stdlib reads them as exactly)."""
    runs = raw.translate(_DIGIT_RUNS)
    at = runs.find(_LONG_RUN)
    while at >= 0:  # ``at`` starts a run: the leftmost match of a longer run is its start
        if at == 0 or raw[at - 1] in _VALUE_START:
            return True
        end = runs.find(b"x", at)
        at = -1 if end < 0 else runs.find(_LONG_RUN, end)
    return False


def _reject_constant(name: str) -> Any:
    raise json.JSONDecodeError(f"{name} is not valid JSON", name, 0)


_stdlib_loads = json.JSONDecoder(parse_constant=_reject_constant).decode


def loads(text: bytes | bytearray | memoryview | str) -> Any:
    """Parses JSON like ``orjson.loads``, except that integers beyond 64 bits come back exact."""
    raw = text.encode() if isinstance(text, str) else bytes(text)
    if _long_integer(raw):
        return _stdlib_loads(raw.decode())
    return orjson.loads(text)


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
