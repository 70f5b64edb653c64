"""H02: which device messages answer a command, and which command (pure, no I/O).

Reference ``h02.md``: ``V4,<CMD>,...,<HHMMSS>`` confirms a command and echoes its code and, usually,
its HHMMSS (§3); ``SMS`` carries the answer to an SMS-style text sent over GPRS (§4.8); ``LINK``
answers the ``S26`` status query (§4.4). The codec decodes these into ``command.code``,
``command.time`` and ``command.response``; ``EncodedCommand.match`` holds ``{"code", "time"}`` for a
wrapped command and ``{"raw": True}`` for raw text.
"""

from __future__ import annotations

from typing import Final

from sinogate.codecs.base import Message
from sinogate.codecs.replies import failed, summary
from sinogate.codecs.spec import Match, Pending

REPLY_TYPES: Final = frozenset({"V4", "SMS", "LINK"})
"""``message.type`` values that may answer a command."""

_ONLY_REPLIES: Final = frozenset({"V4", "SMS"})


def is_reply(message: Message) -> bool:
    """``V4`` and ``SMS`` are sent only in answer to a command (``LINK`` may come unasked)."""
    return message.get("message.type") in _ONLY_REPLIES


def match_reply(pending: list[Pending], message: Message) -> Match | None:
    """The command ``message`` answers among ``pending`` (sent, oldest first), or ``None``.

    ``V4``: the oldest command with the confirmed code and, when the device echoes it, the same
    HHMMSS; failing that, the oldest pre-framed ``*HQ,...`` payload expecting a V4. Executed unless
    the response reads as a failure (``ERROR``...). ``SMS``: the oldest raw-text command. ``LINK``:
    the oldest pending ``S26``; with no response text, a summary of the message is stored.
    """
    kind = message.get("message.type")
    response = message.get("command.response")
    if kind == "V4":
        code = str(message.get("command.code", "")).strip()
        echoed = message.get("command.time")
        same_code = [p for p in pending if p.match.get("code") == code]
        chosen: Pending | None = None
        if echoed:
            chosen = next((p for p in same_code if p.match.get("time") == echoed), None)
        if chosen is None and same_code:
            chosen = same_code[0]
        if chosen is None:  # a pre-framed '*HQ,...' custom payload we could not parse
            chosen = next((p for p in pending if p.match.get("raw") and "v4" in p.expects), None)
        if chosen is None:
            return None
        return Match(chosen, True, not failed(response), response)
    if kind == "SMS":
        chosen = next((p for p in pending if "sms" in p.expects), None)
        if chosen is None:
            return None
        return Match(chosen, True, True, response)
    if kind == "LINK":
        chosen = next((p for p in pending if "link" in p.expects), None)
        if chosen is None:
            return None
        return Match(chosen, True, True, response or summary(message))
    return None


__all__ = ["REPLY_TYPES", "is_reply", "match_reply"]
