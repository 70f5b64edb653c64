"""What the gateway knows about one protocol, in one place: the ``ProtocolSpec``.

Each protocol package (``sinogate.codecs.h02``, ``sinogate.codecs.jt808``) exposes its spec as
``SPEC``; the registry in ``sinogate.codecs`` lists them. Everything outside the codecs that
depends on the protocol (listener ports, the command catalog, SMS texts, matching a device's reply
to the command that caused it) reads it from the spec instead of testing the protocol name.

``Pending`` and ``Match`` live here, not in ``sinogate.commands``, so that a codec can match
replies without importing the command service. Pure data and functions: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sinogate.codecs.base import Message, ProtocolConnection
from sinogate.model.param import Param


@dataclass(slots=True, eq=False)
class Pending:
    """A command written to the device and waiting for its reply.

    ``id`` is the command's id in the store; ``match`` and ``expects`` are the
    ``EncodedCommand.match`` / ``EncodedCommand.expects`` the codec produced when encoding it;
    ``acked`` is an intermediate response (a JT/T 808 0x0001 before the text answer) and
    ``acked_at`` when it came (UNIX seconds).
    """

    id: int
    match: dict[str, Any] = field(default_factory=dict)
    expects: tuple[str, ...] = ()
    acked: str | None = None
    acked_at: float | None = None


@dataclass(slots=True)
class Match:
    """The pending command a message answers.

    ``final``: the command is closed (``False`` for an intermediate acknowledgement that leaves it
    open for the real answer); ``executed``: whether the device says it did it (``None`` when
    unknown); ``response``: the reply text to store with the command.
    """

    pending: Pending
    final: bool
    executed: bool | None
    response: str | None


SmsBuilder = Callable[[dict[str, Any], str], str]
"""``builder(properties, password) -> SMS text``; ``ValueError`` when the properties do not fit."""

SmsText = tuple[SmsBuilder, str]
"""An SMS form of a command: its builder and a one-line note for the catalog."""

ReplyMatcher = Callable[[list[Pending], Message], Match | None]
"""``match_reply(pending, message)``: the command ``message`` answers among ``pending``
(sent, oldest first), or ``None``."""


@dataclass(frozen=True, slots=True)
class ProtocolSpec:
    """One protocol's facts and protocol-specific behaviour.

    * ``name``: the protocol's key everywhere (``device.protocol``, URLs, settings), e.g. ``"h02"``.
    * ``id``: the numeric ``protocol.id`` / ``channel.id``; stored in the database, so never renumber.
    * ``title``: a human name for listings.
    * ``connection``: the sans-IO ``Connection`` class (``ProtocolConnection``).
    * ``default_port``: the TCP+UDP port the gateway listens on unless configured.
    * ``default_time_offset``: hours the device clock is ahead of UTC when the device setting
      ``time_offset`` is unset.
    * ``commands``: command name → JSON schema of its properties (the catalog).
    * ``command_examples``: command name → example property sets; the first is what listings show.
    * ``sms_texts``: command name → (builder, note) for commands that also have an SMS form.
    * ``reply_types``: the ``message.type`` values that may answer a command (worth trying to match).
    * ``is_reply(message)``: the message can only be an answer to a command (an unmatched one is
      worth reporting).
    * ``match_reply(pending, message)``: see ``ReplyMatcher``.
    * ``params``: the message names only this protocol emits (status/alarm bits, vendor fields),
      for the parameter registry (``sinogate.model.params``); a name the core set or an earlier
      protocol already declares keeps that definition.
    """

    name: str
    id: int
    title: str
    connection: type[ProtocolConnection]
    default_port: int
    default_time_offset: float
    commands: Mapping[str, dict[str, Any]]
    command_examples: Mapping[str, tuple[dict[str, Any], ...]]
    sms_texts: Mapping[str, SmsText]
    reply_types: frozenset[str]
    is_reply: Callable[[Message], bool]
    match_reply: ReplyMatcher
    params: tuple[Param, ...] = ()


__all__ = ["Match", "Pending", "ProtocolSpec", "ReplyMatcher", "SmsBuilder", "SmsText"]
