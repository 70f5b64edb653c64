"""SMS texts for commands: what to send by phone when the device is not on line.

The texts are each protocol's ``ProtocolSpec.sms_texts`` (e.g. the Sinotrack ST-90x set in
``sinogate.codecs.h02.sms``); this module looks them up by the device's protocol and fills in the
device's SMS password (device setting ``sms_password``, default ``0000``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sinogate import codecs
from sinogate.codecs.spec import SmsBuilder, SmsText

DEFAULT_PASSWORD = "0000"

__all__ = ["DEFAULT_PASSWORD", "SmsBuilder", "note", "password_of", "sms_text", "supports"]


def _texts(protocol: str) -> Mapping[str, SmsText]:
    found = codecs.SPECS.get(protocol)
    return found.sms_texts if found is not None else {}


def supports(protocol: str, name: str) -> bool:
    return name in _texts(protocol)


def note(protocol: str, name: str) -> str:
    entry = _texts(protocol).get(name)
    return entry[1] if entry else ""


def password_of(device: dict[str, Any]) -> str:
    pwd = (device.get("settings") or {}).get("sms_password")
    return pwd if isinstance(pwd, str) and pwd else DEFAULT_PASSWORD


def sms_text(protocol: str, name: str, properties: dict[str, Any], password: str = DEFAULT_PASSWORD) -> str:
    """The SMS text for a command; ``ValueError`` when there is none or the properties do not fit."""
    entry = _texts(protocol).get(name)
    if entry is None:
        raise ValueError(f"command {name!r} has no SMS form for protocol {protocol}")
    return entry[0](properties or {}, password)
