"""SMS forms shared by the protocols (each protocol's table is its ``SPEC.sms_texts``).

A builder takes the command's properties and the device's SMS password and returns the text to
send by phone; it raises ``ValueError`` when the properties do not fit.
"""

from __future__ import annotations

from typing import Any


def custom_text(props: dict[str, Any], _pwd: str) -> str:
    """``custom``: the ``payload`` (or ``text``) property is the SMS text, stripped."""
    text = props.get("payload", props.get("text"))
    if not isinstance(text, str) or not text.strip():
        raise ValueError("custom: property 'payload' (or 'text') must be a non-empty string")
    return text.strip()


CUSTOM_NOTE = "the payload is sent as the SMS text."

__all__ = ["CUSTOM_NOTE", "custom_text"]
