"""H02 (Sinotrack ``*HQ,...#`` text and ``$`` binary) codec, sans-IO, and its ``SPEC``.

Protocol reference: ``h02.md`` in the project's reference notes (§ numbers below). The pieces:

* ``connection``: the ``Connection`` (contract in ``sinogate.codecs``) and the server's replies.
* ``framer``: TCP stream -> frames (text, binary, X, junk, overflow).
* ``text`` / ``binary``: one frame -> one message (flat dict, names per parameters.md).
* ``fields``: coordinates, times, numbers shared by the decoders.
* ``status``: the 32 active-low status bits (§5).
* ``commands``: ``encode_command``, the ``COMMANDS`` catalog and its examples (§7).
* ``replies``: which message answers which command (V4 / SMS / LINK).
* ``sms``: SMS forms of the commands (Sinotrack ST-90x SMS command set, §7).
"""

from __future__ import annotations

from types import MappingProxyType

from sinogate.codecs.h02 import connection, replies, status
from sinogate.codecs.h02.commands import COMMANDS, EXAMPLES
from sinogate.codecs.h02.connection import DEFAULT_TZ_HOURS, Connection
from sinogate.codecs.h02.sms import SMS_TEXTS
from sinogate.codecs.spec import ProtocolSpec

SPEC = ProtocolSpec(
    name="h02",
    id=1,
    title="H02 (Sinotrack)",
    connection=Connection,
    default_port=5013,  # Traccar's default H02 port (§1), and sinogate's (Settings.h02_port)
    default_time_offset=DEFAULT_TZ_HOURS,
    commands=MappingProxyType(COMMANDS),
    command_examples=MappingProxyType(EXAMPLES),
    sms_texts=MappingProxyType(SMS_TEXTS),
    reply_types=replies.REPLY_TYPES,
    is_reply=replies.is_reply,
    match_reply=replies.match_reply,
    params=(*status.FIELDS, *connection.FIELDS),
)

__all__ = ["COMMANDS", "SPEC", "Connection"]
