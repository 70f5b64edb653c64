"""Raw captures as messages: Traccar's ``tracker-server.log`` hex lines and one-capture-per-line files.

A Traccar log line (``2024-05-01 10:00:00  INFO: [T1a2b3c4d: h02 < 10.0.0.1] 2a48512c...``) gives its
protocol, its direction (``<`` from the device, ``>`` to it: skipped) and the hex bytes; its time is
used as the reception time. Any other line is a capture as ``sinogate decode`` reads them (hex, or
raw H02 text from ``*``). Each capture is decoded by the protocol's codec like one connection, so the
messages carry the device times the device sent (``timestamp``) and the ident they name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sinogate.codecs import connection_class

_TRACCAR = re.compile(
    r"^(?P<time>\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2})(?:[.,]\d+)?\s+\w+:\s*"
    r"\[(?:[^:\]]*:\s*)?(?P<protocol>[\w-]+)\s*(?P<dir>[<>])\s*[^\]]*\]\s*(?P<hex>[0-9a-fA-F]+)\s*$"
)
_HEX_NOISE = re.compile(r"[\s:,-]|0x", re.IGNORECASE)
TRACCAR_NAMES: dict[str, str] = {"h02": "h02", "huabao": "jt808", "jt808": "jt808"}
MESSAGE_FREE = frozenset({"ident"})  # set by the ingest route from the device


@dataclass(slots=True)
class Capture:
    """One line of input: bytes from a device, the protocol, the reception time if the line has one."""

    line: int
    data: bytes
    protocol: str
    received: float | None = None


@dataclass(slots=True)
class Decoded:
    """What the captures gave: messages by ident, and what could not be used."""

    messages: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    lines: int = 0
    skipped: int = 0  # other protocols, data sent to the device, blank lines
    errors: list[str] = field(default_factory=list)


def capture_bytes(line: str, protocol: str) -> bytes:
    """One captured frame as bytes: hex (spaces, colons, commas, ``0x`` allowed) or, for H02, the
    raw text from ``*`` (or ``$``). Raises ``ValueError`` with the reason."""
    text = line.strip()
    if protocol == "h02" and text.startswith(("*", "$")) and not re.fullmatch(r"[0-9a-fA-F\s:]+", text):
        return text.encode("latin-1")
    cleaned = _HEX_NOISE.sub("", text)
    if len(cleaned) % 2:
        raise ValueError(f"odd number of hex digits ({len(cleaned)})")
    try:
        return bytes.fromhex(cleaned)
    except ValueError:
        raise ValueError("neither hex nor an H02 text frame") from None


def captures(lines: Iterable[str], protocol: str, decoded: Decoded) -> Iterator[Capture]:
    """The captures of ``protocol`` in ``lines`` (a Traccar log or one capture per line)."""
    for number, raw in enumerate(lines, start=1):
        decoded.lines += 1
        text = raw.strip()
        if not text or text.startswith("#"):
            decoded.skipped += 1
            continue
        found = _TRACCAR.match(text)
        if found is not None:
            if TRACCAR_NAMES.get(found["protocol"].lower()) != protocol or found["dir"] != "<":
                decoded.skipped += 1
                continue
            when = datetime.fromisoformat(found["time"].replace("T", " ")).replace(tzinfo=UTC).timestamp()
            yield Capture(number, bytes.fromhex(found["hex"]), protocol, when)
            continue
        if " INFO: " in text or " WARN: " in text or " DEBUG: " in text:
            decoded.skipped += 1  # other log lines of the Traccar log
            continue
        try:
            yield Capture(number, capture_bytes(text, protocol), protocol)
        except ValueError as exc:
            decoded.errors.append(f"line {number}: {exc}")


def decode(lines: Iterable[str], protocol: str, now: float) -> Decoded:
    """Decodes every capture; messages without an ident (nothing named the device) are left out."""
    out = Decoded()
    cls = connection_class(protocol)
    for capture in captures(lines, protocol, out):
        conn = cls()
        when = capture.received if capture.received is not None else now
        try:
            frames = [*conn.feed(capture.data, when), *conn.close(when)]
        except Exception as exc:  # the codec promises not to raise; report, do not stop
            out.errors.append(f"line {capture.line}: decoder failure: {type(exc).__name__}: {exc}")
            continue
        for frame in frames:
            out.errors.extend(f"line {capture.line}: {e}" for e in frame.errors)
            for message in frame.messages:
                ident = message.get("ident") or frame.ident
                if not ident:
                    out.errors.append(f"line {capture.line}: a message without an ident")
                    continue
                body = {k: v for k, v in message.items() if k not in MESSAGE_FREE}
                out.messages.setdefault(str(ident), []).append(body)
    return out


__all__ = ["Capture", "Decoded", "captures", "decode"]
