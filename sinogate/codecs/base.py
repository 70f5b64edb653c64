"""The sans-IO contract every protocol codec follows.

A codec never touches a socket, a clock, a database or a global. The session feeds it bytes
together with the current time and gets back ``Frame`` objects: the decoded messages, the
bytes the protocol says the server must answer, and any errors. Per-device settings reach the
codec through a lookup function the session passes in, so the codec stays pure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from sinogate.codecs.limits import CodecLimits

Message = dict[str, Any]


class CodecError(Exception):
    """A frame or datagram that the codec cannot make sense of; carries the offending bytes."""

    def __init__(self, reason: str, data: bytes = b"") -> None:
        super().__init__(reason)
        self.reason = reason
        self.data = data


@dataclass(frozen=True, slots=True)
class DeviceSettings:
    """What a codec needs to know about one device to decode and answer it correctly.

    ``time_offset`` is the device clock's offset from UTC in hours; ``None`` means the
    protocol's default, its ``ProtocolSpec.default_time_offset`` (UTC for H02, GMT+8 for JT/T 808)
    (the device setting ``auto``: the pipeline's clock handler then detects and corrects an offset).
    ``h02_binary_length``: the length of the device's H02 binary frames, tried first.
    """

    time_offset: float | None = None
    h02_ack: bool = False
    h02_binary_length: int | None = None
    jt808_strict: bool = False
    model: str | None = None


DEFAULT_SETTINGS = DeviceSettings()

SettingsLookup = Callable[[str], DeviceSettings]


def default_lookup(_ident: str) -> DeviceSettings:
    return DEFAULT_SETTINGS


@dataclass(slots=True)
class Frame:
    """One unit of the wire protocol after framing and decoding.

    ``raw`` is the frame exactly as it came off the wire. ``messages`` may be empty
    (a heartbeat) or hold many (a JT/T 808 batch). ``replies`` are complete wire frames the
    server must send back; the session sends them once the messages are durable. ``errors``
    explain anything that was wrong with the frame; a frame with errors may still carry
    messages (lenient decoding).
    """

    raw: bytes
    ident: str | None = None
    messages: list[Message] = field(default_factory=list)
    replies: list[bytes] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@dataclass(slots=True)
class EncodedCommand:
    """Bytes for a command plus the keys a session uses to match the device's reply.

    ``match`` holds protocol-specific keys, e.g. ``{"code": "S20", "time": "010203"}`` for
    H02 or ``{"serial": 7, "msg_id": 0x8105}`` for JT/T 808; ``expects`` names what kind of
    reply closes the command (``"v4"``, ``"sms"``, ``"general"``, ``"params"``, ``"text"``).
    ``one_at_a_time``: the device reads such commands one per packet with nothing to delimit
    them (H02 raw SMS-style text), so at most one may be on the wire, waiting for its reply.
    """

    data: bytes
    match: dict[str, Any] = field(default_factory=dict)
    expects: tuple[str, ...] = ()
    one_at_a_time: bool = False


class ProtocolConnection(Protocol):
    """What a protocol package's ``Connection`` class looks like (the contract in the package docstring)."""

    protocol: ClassVar[str]

    def __init__(self, settings: SettingsLookup = ..., transport: str = "tcp",
                 limits: CodecLimits | None = None) -> None: ...

    @property
    def ident(self) -> str | None: ...

    def feed(self, data: bytes, now: float) -> list[Frame]: ...

    def datagram(self, data: bytes, now: float) -> list[Frame]: ...

    def encode_command(self, name: str, properties: dict[str, Any], now: float) -> EncodedCommand: ...

    def buffered(self) -> int:
        """Bytes held by the framer waiting for the rest of a frame."""
        ...

    def follow(self, ident: str) -> None:
        """Binds the connection to ``ident``. The first frame that names an ident binds it; a frame
        naming another ident is reported (``Frame.ident``) but never rebinds the connection unless
        the session decides to follow the device (a channel's ``follow_ident``)."""
        ...

    def flush(self, now: float) -> list[Frame]:
        """The device has been silent for a moment: a frame held only because its end could not
        be told yet (an H02 binary frame of an unusual length) comes back now."""
        ...

    def close(self, now: float) -> list[Frame]:
        """The stream ended: whatever the framer holds comes back as frames with errors."""
        ...
