"""Matching a device's reply to the command that caused it (pure, no I/O).

The protocol knowledge lives in each codec's spec (``ProtocolSpec.match_reply`` / ``is_reply``,
e.g. ``sinogate.codecs.h02.replies``); this module dispatches on the device's protocol. An unknown
protocol matches nothing.
"""

from __future__ import annotations

from typing import Final

from sinogate import codecs
from sinogate.codecs.base import Message
from sinogate.codecs.jt808.replies import TEXT_TYPES
from sinogate.codecs.replies import FAILURE_WORDS, summary
from sinogate.codecs.spec import Match, Pending

REPLY_TYPES: Final[frozenset[str]] = frozenset[str]().union(*(s.reply_types for s in codecs.SPECS.values()))
"""Every ``message.type`` that may answer a command, over all protocols."""

JT808_TEXT_TYPES: Final = TEXT_TYPES
"""JT/T 808 text reports that answer a text command (kept for callers)."""

def is_reply(protocol: str, message: Message) -> bool:
    """Whether ``message`` can only be an answer to a command (so an unmatched one is worth showing)."""
    found = codecs.SPECS.get(protocol)
    return found is not None and found.is_reply(message)


def find(protocol: str, pending: list[Pending], message: Message) -> Match | None:
    """The command ``message`` answers among ``pending`` (sent, oldest first), or ``None``."""
    if not pending:
        return None
    found = codecs.SPECS.get(protocol)
    if found is None:
        return None
    return found.match_reply(pending, message)


__all__ = ["FAILURE_WORDS", "JT808_TEXT_TYPES", "REPLY_TYPES", "Match", "Message", "Pending", "find", "is_reply",
           "summary"]
