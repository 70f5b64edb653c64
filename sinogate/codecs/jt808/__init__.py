"""JT/T 808 (2011/2013/2019) codec, sans-IO, and its ``SPEC``.

Protocol reference: ``jt808.md`` in the project's reference notes (§ numbers below). The pieces:

* ``connection``: the ``Connection`` (contract in ``sinogate.codecs``): ``0x7E`` framing,
  sub-packages, replies 0x8001 / 0x8100 (§1-§3).
* ``frame``: escape, checksum, 2011/2013/2019 headers, terminal ids (§1-§2).
* ``location``: 0x0200 and its additional items (§4); ``bits``: alarm/status names (§5-§6).
* ``messages``: the other uplink bodies; ``params``: the terminal parameter table (0x8103).
* ``commands``: platform commands, the ``COMMANDS`` catalog and its examples (§7).
* ``replies``: which message answers which command (0x0001 / 0x0104 / text reports).
* ``sms``: SMS forms of the commands (only ``custom``).
"""

from __future__ import annotations

from types import MappingProxyType

from sinogate.codecs.jt808 import bits, messages, replies
from sinogate.codecs.jt808.commands import COMMANDS, EXAMPLES
from sinogate.codecs.jt808.connection import (
    DEFAULT_TZ_HOURS,
    MAX_FRAME,
    MAX_PARTIAL,
    Connection,
    decode_ident,
    encode_command_frame,
    encode_frame,
    escape,
    phone_from_ident,
    unescape,
    xor_checksum,
)
from sinogate.codecs.jt808.sms import SMS_TEXTS
from sinogate.codecs.spec import ProtocolSpec

SPEC = ProtocolSpec(
    name="jt808",
    id=2,
    title="JT/T 808",
    connection=Connection,
    default_port=5015,  # sinogate's default listener port for JT/T 808 (Settings.jt808_port)
    default_time_offset=DEFAULT_TZ_HOURS,
    commands=MappingProxyType(COMMANDS),
    command_examples=MappingProxyType(EXAMPLES),
    sms_texts=MappingProxyType(SMS_TEXTS),
    reply_types=replies.REPLY_TYPES,
    is_reply=replies.is_reply,
    match_reply=replies.match_reply,
    params=(*bits.FIELDS, *messages.FIELDS),
)

__all__ = [
    "COMMANDS",
    "MAX_FRAME",
    "MAX_PARTIAL",
    "SPEC",
    "Connection",
    "decode_ident",
    "encode_command_frame",
    "encode_frame",
    "escape",
    "phone_from_ident",
    "unescape",
    "xor_checksum",
]
