"""Protocol codecs. One package per protocol, each exposing a ``Connection`` class and a ``SPEC``.

The contract (see ``base``)::

    conn = Connection(settings=lookup, transport="tcp")
    frames = conn.feed(data, now)          # TCP: any chunk of the byte stream
                                           # (every message carries "ident" and "timestamp")
    frames = conn.datagram(data, now)      # UDP: exactly one datagram
    conn.ident                             # the device ident once a frame named it
    cmd = conn.encode_command(name, properties, now)   # -> EncodedCommand, or CodecError
    conn.buffered()                        # bytes waiting for the rest of a frame
    conn.close(now)                        # end of stream: what is held, as frames with errors

``now`` is UNIX seconds (float); the codec has no clock of its own.

Everything else the gateway needs to know about a protocol (id, default port and time offset,
commands, SMS texts, reply matching) is its ``ProtocolSpec`` (``spec``). Adding a protocol: write
a package next to ``h02`` and ``jt808`` that exposes ``SPEC``, and add it to ``_SPECS`` below.
"""

from __future__ import annotations

from collections.abc import Iterable

from sinogate import _native
from sinogate.codecs import h02, jt808
from sinogate.codecs.base import (
    DEFAULT_SETTINGS,
    CodecError,
    DeviceSettings,
    EncodedCommand,
    Frame,
    Message,
    ProtocolConnection,
    SettingsLookup,
    default_lookup,
)
from sinogate.codecs.spec import Match, Pending, ProtocolSpec

_SPECS: tuple[ProtocolSpec, ...] = (h02.SPEC, jt808.SPEC)


def _registry(specs: Iterable[ProtocolSpec]) -> dict[str, ProtocolSpec]:
    """Name → spec, refusing a name or an id given twice (ids are stored, so they must be unique)."""
    out: dict[str, ProtocolSpec] = {}
    ids: dict[int, str] = {}
    for s in specs:
        if s.name in out:
            raise ValueError(f"protocol {s.name!r} registered twice")
        if s.id in ids:
            raise ValueError(f"protocol id {s.id} used by both {ids[s.id]!r} and {s.name!r}")
        out[s.name] = s
        ids[s.id] = s.name
    return out


SPECS: dict[str, ProtocolSpec] = _registry(_SPECS)
"""Every protocol's spec by name, in registration order."""

PROTOCOLS: tuple[str, ...] = tuple(SPECS)
# The numeric id of each protocol; there is one channel (listener) per protocol, with the same id.
PROTOCOL_IDS: dict[str, int] = {s.name: s.id for s in SPECS.values()}


def spec(name: str) -> ProtocolSpec:
    """The spec of protocol ``name``; ``ValueError`` naming the known protocols for an unknown one."""
    found = SPECS.get(name)
    if found is None:
        raise ValueError(f"unknown protocol {name!r}; known: {', '.join(PROTOCOLS)}")
    return found


def connection_class(protocol: str) -> type[ProtocolConnection]:
    """The ``Connection`` class of ``protocol`` (``ValueError`` for an unknown one)."""
    return spec(protocol).connection


def compiled() -> bool:
    """Do the decoding modules run compiled (mypyc, ``setup.py``)? False: pure Python."""
    return _native.compiled(h02.connection) and _native.compiled(jt808.connection)


def load_all() -> None:
    """Kept for callers: every codec is imported with this package (and the parameter registry,
    ``sinogate.model.params``, reads their names from ``ProtocolSpec.params``); nothing to do."""


__all__ = [
    "DEFAULT_SETTINGS",
    "PROTOCOLS",
    "PROTOCOL_IDS",
    "SPECS",
    "CodecError",
    "DeviceSettings",
    "EncodedCommand",
    "Frame",
    "Match",
    "Message",
    "Pending",
    "ProtocolConnection",
    "ProtocolSpec",
    "SettingsLookup",
    "compiled",
    "connection_class",
    "default_lookup",
    "load_all",
    "spec",
]
