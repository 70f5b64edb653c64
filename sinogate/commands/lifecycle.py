"""The command lifecycle as one table (h11's shape): states, events, and who may follow whom.

    queued ──written──▶ sent ──replied──▶ processed
      ▲  │                │ │
      │  │            requeue (connection dropped before the reply; server restart)
      │  └──────────────┐ │ │
      └─────────────────┼─┘ │
           cancel / expire  ▼
                  canceled / expired

The command service asks ``transition`` for every change; an illegal one raises
``InvalidTransition`` instead of silently corrupting a command (a late reply to an expired
command, say, is then reported as unmatched rather than reviving it).
"""

from __future__ import annotations

from enum import StrEnum


class CommandStatus(StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    PROCESSED = "processed"
    CANCELED = "canceled"
    EXPIRED = "expired"


class CommandEvent(StrEnum):
    WRITTEN = "written"  # the bytes went to the device
    REPLIED = "replied"  # a matching reply closed it (or a reboot dropped the connection)
    REQUEUE = "requeue"  # written, but the connection went away before the reply
    CANCEL = "cancel"  # by the user, after too many attempts, or it cannot be encoded
    EXPIRE = "expire"  # its TTL (or a real-time command's timeout) passed


class InvalidTransition(Exception):
    def __init__(self, status: CommandStatus, event: CommandEvent) -> None:
        super().__init__(f"a {status} command cannot take the event {event!r}")
        self.status = status
        self.event = event


S, E = CommandStatus, CommandEvent

TRANSITIONS: dict[CommandStatus, dict[CommandEvent, CommandStatus]] = {
    S.QUEUED: {E.WRITTEN: S.SENT, E.CANCEL: S.CANCELED, E.EXPIRE: S.EXPIRED},
    S.SENT: {E.REPLIED: S.PROCESSED, E.REQUEUE: S.QUEUED, E.WRITTEN: S.SENT, E.CANCEL: S.CANCELED,
             E.EXPIRE: S.EXPIRED},
    S.PROCESSED: {},
    S.CANCELED: {},
    S.EXPIRED: {},
}

ACTIVE: tuple[CommandStatus, ...] = tuple(s for s, moves in TRANSITIONS.items() if moves)
FINAL: tuple[CommandStatus, ...] = tuple(s for s, moves in TRANSITIONS.items() if not moves)

# The event that leads to each status (the service names the status it wants).
EVENT_FOR: dict[CommandStatus, CommandEvent] = {
    S.SENT: E.WRITTEN,
    S.PROCESSED: E.REPLIED,
    S.QUEUED: E.REQUEUE,
    S.CANCELED: E.CANCEL,
    S.EXPIRED: E.EXPIRE,
}


def transition(status: str, event: CommandEvent) -> CommandStatus:
    """The status after ``event``; raises ``InvalidTransition`` (and ``ValueError`` for a status
    that is not one of ``CommandStatus``)."""
    current = CommandStatus(status)
    new = TRANSITIONS[current].get(event)
    if new is None:
        raise InvalidTransition(current, event)
    return new


def is_final(status: str) -> bool:
    return CommandStatus(status) in FINAL
