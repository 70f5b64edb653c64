"""JT/T 808: SMS forms of the commands. The standard defines no SMS command set; a ``custom``
text is sent as it is (Chinese terminals run the same texts as 0x8300, reference ``jt808.md`` §4),
and Sinotrack units in JT/T 808 mode take the Sinotrack SMS set (``codecs.sinotrack``)."""

from __future__ import annotations

from typing import Final

from sinogate.codecs.sinotrack import TEXT_COMMANDS
from sinogate.codecs.sms import CUSTOM_NOTE, custom_text
from sinogate.codecs.spec import SmsText

SMS_TEXTS: Final[dict[str, SmsText]] = {
    "custom": (custom_text, CUSTOM_NOTE),
    **{name: (entry.build, entry.note) for name, entry in TEXT_COMMANDS.items()},
}
"""Command name → (builder(properties, password) -> text, note)."""

__all__ = ["SMS_TEXTS"]
