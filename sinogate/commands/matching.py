"""Matching a device's reply to the command that caused it (pure, no I/O).

H02: ``V4,<CMD>`` by command code and, when the device echoes it, the command's HHMMSS; an
``SMS`` text to the oldest pending raw-text command; ``LINK`` to a pending ``S26`` status query.
JT/T 808: 0x0001 by serial (and answered message id); 0x0104 by serial, else the oldest
parameter query; a text report (0x6006, 0x0900, 0x0701, 0x1300) to the oldest pending text
command (0x8300), preferring one the terminal already acknowledged with 0x0001.

A JT/T 808 0x0001 with result 0 for a text command or a parameter query is an intermediate
acknowledgement: the command stays open for the text (or parameter) answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Message = dict[str, Any]

FAILURE_WORDS = frozenset({"ERROR", "ERR", "FAIL", "FAILED"})
JT808_TEXT_TYPES = frozenset({"0x6006", "0x0900", "0x0701", "0x1300"})
_SKIP_IN_SUMMARY = frozenset({"ident", "timestamp", "server.timestamp", "message.type", "peer", "channel.id",
                              "protocol.id", "device.id", "device.name", "transport", "timestamp.flagged"})


@dataclass(slots=True, eq=False)
class Pending:
    """A command written to the device and waiting for its reply."""

    id: int
    match: dict[str, Any] = field(default_factory=dict)
    expects: tuple[str, ...] = ()
    acked: str | None = None  # intermediate response (JT/T 808 0x0001 before the text answer)
    acked_at: float | None = None


@dataclass(slots=True)
class Match:
    pending: Pending
    final: bool
    executed: bool | None
    response: str | None


def is_reply(protocol: str, message: Message) -> bool:
    """Whether ``message`` can only be an answer to a command (so an unmatched one is worth showing)."""
    kind = message.get("message.type")
    if protocol == "h02":
        return kind in ("V4", "SMS")
    if protocol == "jt808":
        return kind in ("0x0001", "0x0104") or (kind in ("0x6006", "0x1300") and "command.response" in message)
    return False


def _failed(text: str | None) -> bool:
    if not text:
        return False
    return any(part.strip().upper().rstrip("!.") in FAILURE_WORDS for part in text.replace(";", ",").split(","))


def summary(message: Message) -> str:
    """A one-line text of a reply that has no ``command.response`` (e.g. H02 LINK)."""
    parts = [f"{k}={v}" for k, v in message.items() if k not in _SKIP_IN_SUMMARY]
    return f"{message.get('message.type', '?')} " + ", ".join(parts)


def find(protocol: str, pending: list[Pending], message: Message) -> Match | None:
    """The command ``message`` answers among ``pending`` (sent, oldest first), or ``None``."""
    if not pending:
        return None
    if protocol == "h02":
        return _find_h02(pending, message)
    if protocol == "jt808":
        return _find_jt808(pending, message)
    return None


def _find_h02(pending: list[Pending], message: Message) -> Match | None:
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
        return Match(chosen, True, not _failed(response), response)
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


def _msg_id(code: Any) -> int | None:
    if isinstance(code, int):
        return code
    try:
        return int(str(code), 16) if str(code).lower().startswith("0x") else int(str(code))
    except ValueError:
        return None


def _find_jt808(pending: list[Pending], message: Message) -> Match | None:
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
    if kind in JT808_TEXT_TYPES:
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
        return Match(chosen, True, not _failed(response), response)
    return None
