"""Reading a device's reply text; shared by the protocols' ``match_reply`` (pure, no I/O)."""

from __future__ import annotations

from typing import Final

from sinogate.codecs.base import Message

FAILURE_WORDS: Final = frozenset({"ERROR", "ERR", "FAIL", "FAILED"})
"""A reply text containing one of these as a comma- or semicolon-separated field reports a failure
(e.g. H02 ``V4,S20,ERROR``)."""

_SKIP_IN_SUMMARY: Final = frozenset({"ident", "timestamp", "server.timestamp", "message.type", "peer", "channel.id",
                                     "protocol.id", "device.id", "device.name", "transport", "timestamp.flagged"})


def failed(text: str | None) -> bool:
    """Whether a reply text says the command failed (one of ``FAILURE_WORDS`` as a field)."""
    if not text:
        return False
    return any(part.strip().upper().rstrip("!.") in FAILURE_WORDS for part in text.replace(";", ",").split(","))


def summary(message: Message) -> str:
    """A one-line text of a reply that has no ``command.response`` (e.g. H02 LINK):
    ``"<message.type> key=value, ..."`` without the bookkeeping keys."""
    parts = [f"{k}={v}" for k, v in message.items() if k not in _SKIP_IN_SUMMARY]
    return f"{message.get('message.type', '?')} " + ", ".join(parts)


__all__ = ["FAILURE_WORDS", "failed", "summary"]
