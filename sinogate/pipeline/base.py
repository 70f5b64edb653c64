"""The contract of a pipeline handler (phase 1: before the store commit).

In the style of Traccar's handler chain: one class per concern, one file each, the order declared
in ``sinogate.pipeline.chain``. A handler reads its configuration once, when it is built; a value
a device's ``settings`` holds under the same name overrides the server default for that device.
A handler that keeps per-device state (a trip in progress, geofence membership) keeps it in the
JSON-serializable object ``ctx.state(self.name)`` returns, which the runtime persists so a restart
or another node resumes it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

Message = dict[str, Any]


@dataclass(slots=True)
class Context:
    """Where a batch of messages came from; one per call of ``Pipeline.run``.

    ``now`` is the server's reception time (UNIX s); ``device`` the registry's device dict, or
    ``None`` for an ident nobody registered; ``channel_id`` the listener's id (flespi's channel),
    ``protocol_id`` the protocol's (flespi's ``protocol.id``)."""

    protocol: str
    transport: str
    peer: str
    now: float
    device: Mapping[str, Any] | None
    channel_id: int
    protocol_id: int
    states: dict[str, Any] | None = field(default=None, repr=False)  # this device's handler states

    def state(self, name: str, factory: Callable[[], Any] = dict) -> Any:
        """The per-device state of handler ``name`` (created by ``factory`` on first use); ``None``
        for messages of an unknown ident, which have no device to keep state for."""
        if self.states is None:
            return None
        value = self.states.get(name)
        if value is None:
            value = self.states[name] = factory()
        return value


class Handler:
    """One concern of phase 1. Subclasses set ``name`` and ``options`` (setting name → server
    default) and implement ``handle``; ``handle`` returns the message (changed in place or not) or
    ``None`` to drop it. Anything it raises is logged with the message and the chain goes on."""

    name: ClassVar[str] = ""
    options: ClassVar[Mapping[str, Any]] = {}

    def __init__(self, config: Mapping[str, Any]) -> None:
        # Read once: server-wide values of this handler's options.
        self.defaults: dict[str, Any] = {key: config.get(key, default) for key, default in self.options.items()}

    def setting(self, ctx: Context, key: str) -> Any:
        """This device's value of option ``key``: its ``settings`` override the server default."""
        device = ctx.device
        if device is not None:
            settings = device.get("settings")
            if settings and key in settings and settings[key] is not None:
                return settings[key]
        return self.defaults[key]

    def handle(self, message: Message, ctx: Context) -> Message | None:
        raise NotImplementedError
