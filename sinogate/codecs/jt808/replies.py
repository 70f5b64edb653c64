"""JT/T 808: which terminal messages answer a platform command, and which command (pure, no I/O).

Reference ``jt808.md``: 0x0001 terminal general response (answered serial, answered id, result;
§3); 0x0104 parameter query answer (answered serial, §4 0x8103/0x8104/0x8106); a text command
(0x8300) is first acknowledged with 0x0001 and then answered by a vendor text report, 0x6006,
0x0900, 0x0701 or 0x1300, which carries no serial except 0x1300 (§4 0x8300). The codec decodes
these into ``command.serial``, ``command.code``, ``command.result.code`` and ``command.response``;
``EncodedCommand.match`` holds ``{"serial", "msg_id"}`` of the platform frame.

A 0x0001 with result 0 for a text command or a parameter query is an intermediate acknowledgement:
the command stays open for the text (or parameter) answer.
"""

from __future__ import annotations

from typing import Any, Final

from sinogate.codecs.base import Message
from sinogate.codecs.replies import failed
from sinogate.codecs.spec import Match, Pending

TEXT_TYPES: Final = frozenset({"0x6006", "0x0900", "0x0701", "0x1300", "text"})
"""Vendor text reports that carry the answer to a text command (0x8300); ``text``: a plain-text
``( … )`` sentence on the JT/T 808 port (Jointech e-locks)."""

REPLY_TYPES: Final = frozenset({"0x0001", "0x0104"}) | TEXT_TYPES
"""``message.type`` values that may answer a command."""

_ONLY_REPLIES: Final = frozenset({"0x0001", "0x0104"})
_TEXT_ONLY_AS_REPLY: Final = frozenset({"0x6006", "0x1300"})


def is_reply(message: Message) -> bool:
    """0x0001 and 0x0104 always answer the platform; 0x6006 / 0x1300 when they carry a response text."""
    kind = message.get("message.type")
    return kind in _ONLY_REPLIES or (kind in _TEXT_ONLY_AS_REPLY and "command.response" in message)


def _msg_id(code: Any) -> int | None:
    """A message id from ``command.code``: an int, ``"0x8105"`` or ``"33029"``; ``None`` if neither."""
    if isinstance(code, int):
        return code
    try:
        return int(str(code), 16) if str(code).lower().startswith("0x") else int(str(code))
    except ValueError:
        return None


def match_reply(pending: list[Pending], message: Message) -> Match | None:
    """The command ``message`` answers among ``pending`` (sent, oldest first), or ``None``.

    0x0001: by serial (and answered message id when both are known); result != 0 closes the
    command as not executed. 0x0104: by serial, else the oldest parameter query. A text report: the
    text command with the same serial, else the oldest one the terminal already acknowledged, else
    the oldest text command; executed unless the text reads as a failure.
    """
    kind = message.get("message.type")
    response = message.get("command.response")
    serial = message.get("command.serial")
    if kind == "0x0001":
        if serial is None:
            return None
        msg_id = _msg_id(message.get("command.code"))
        chosen = next(
            (p for p in pending if p.match.get("serial") == serial
             and (msg_id is None or p.match.get("msg_id") in (None, msg_id))),
            None,
        )
        if chosen is None:
            return None
        result = message.get("command.result.code", 0)
        if result != 0:
            return Match(chosen, True, False, response)
        if "text" in chosen.expects or "params" in chosen.expects:
            return Match(chosen, False, True, response)
        return Match(chosen, True, True, response)
    if kind == "0x0104":
        chosen = None
        if serial is not None:
            chosen = next((p for p in pending if p.match.get("serial") == serial and "params" in p.expects), None)
        if chosen is None:
            chosen = next((p for p in pending if "params" in p.expects), None)
        if chosen is None:
            return None
        return Match(chosen, True, True, response)
    if kind in TEXT_TYPES:
        if response is None:
            return None
        texts = [p for p in pending if "text" in p.expects]
        chosen = None
        if serial is not None:
            chosen = next((p for p in texts if p.match.get("serial") == serial), None)
        if chosen is None:
            chosen = next((p for p in texts if p.acked is not None), None)
        if chosen is None and texts:
            chosen = texts[0]
        if chosen is None:
            return None
        return Match(chosen, True, not failed(response), response)
    return None


__all__ = ["REPLY_TYPES", "TEXT_TYPES", "is_reply", "match_reply"]
