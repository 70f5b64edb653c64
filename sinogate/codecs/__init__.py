"""Protocol codecs. One module per protocol, each exposing a ``Connection`` class.

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
"""

from __future__ import annotations

import importlib
from typing import Any, ClassVar, Protocol

from sinogate.codecs.base import (
    DEFAULT_SETTINGS,
    CodecError,
    DeviceSettings,
    EncodedCommand,
    Frame,
    Message,
    SettingsLookup,
    default_lookup,
)

PROTOCOLS: tuple[str, ...] = ("h02", "jt808")
# The numeric id of each protocol; there is one channel (listener) per protocol, with the same id.
PROTOCOL_IDS: dict[str, int] = {name: number for number, name in enumerate(PROTOCOLS, start=1)}


class ProtocolConnection(Protocol):
    protocol: ClassVar[str]

    def __init__(self, settings: SettingsLookup = ..., transport: str = "tcp") -> None: ...

    @property
    def ident(self) -> str | None: ...

    def feed(self, data: bytes, now: float) -> list[Frame]: ...

    def datagram(self, data: bytes, now: float) -> list[Frame]: ...

    def encode_command(self, name: str, properties: dict[str, Any], now: float) -> EncodedCommand: ...

    def buffered(self) -> int:
        """Bytes held by the framer waiting for the rest of a frame."""
        ...

    def close(self, now: float) -> list[Frame]:
        """The stream ended: whatever the framer holds comes back as frames with errors."""
        ...


def connection_class(protocol: str) -> type[ProtocolConnection]:
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
    module = importlib.import_module(f"sinogate.codecs.{protocol}")
    return module.Connection  # type: ignore[no-any-return]


def load_all() -> None:
    for protocol in PROTOCOLS:
        importlib.import_module(f"sinogate.codecs.{protocol}")


__all__ = [
    "DEFAULT_SETTINGS",
    "PROTOCOLS",
    "PROTOCOL_IDS",
    "CodecError",
    "DeviceSettings",
    "EncodedCommand",
    "Frame",
    "Message",
    "ProtocolConnection",
    "SettingsLookup",
    "connection_class",
    "default_lookup",
    "load_all",
]
