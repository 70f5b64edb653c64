"""One message parameter's definition (``Param``); the registry of all of them is ``sinogate.model.params``.

Kept apart from the registry so that the codecs can declare their own parameters without
importing the registry, which collects them from every protocol's spec.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Param:
    """A message field: its dotted ``name``, JSON ``type`` (``"number"``, ``"string"``, ``"boolean"``
    or ``"any"``), ``unit`` (empty when none), what it means, and the packets that carry it."""

    name: str
    type: str  # "number" | "string" | "boolean" | "any"
    unit: str
    meaning: str
    packets: str = ""


__all__ = ["Param"]
