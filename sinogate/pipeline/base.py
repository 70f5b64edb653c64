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

from mypy_extensions import mypyc_attr

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
    events: list[dict[str, Any]] = field(default_factory=list)  # emitted while the batch ran
    # Interval changes (calcs): closed ones ("active" false) are stored with the batch; all are
    # published after the commit (see ``sinogate.pipeline.calcs``).
    intervals: list[dict[str, Any]] = field(default_factory=list)
    # Facts one handler tells the later ones about the current message (reset for each message):
    # "late", "filtered" (see ``live``/``accepted``), "speed_limit" (km/h, from geofences), "step"
    # (the filters' distance from the previous fix: (lat, lon, km)).
    scratch: dict[str, Any] = field(default_factory=dict)

    def state(self, name: str, factory: Callable[[], Any] = dict) -> Any:
        """The per-device state of handler ``name`` (created by ``factory`` on first use); ``None``
        for messages of an unknown ident, which have no device to keep state for."""
        if self.states is None:
            return None
        value = self.states.get(name)
        if value is None:
            value = self.states[name] = factory()
        return value


    def emit(self, kind: str, message: Message, **fields: Any) -> dict[str, Any]:
        """Records an event of ``kind`` (``alarm``, ``geofence.enter`` ...) caused by ``message``:
        ``{"device.id", "timestamp" (the message's device time), "type", **fields, position}``.
        It is stored with the batch and published after the commit."""
        event: dict[str, Any] = {"device.id": self.device["id"] if self.device is not None else None,
                                 "ident": message.get("ident"), "timestamp": message.get("timestamp"),
                                 "type": kind, **fields}
        lat, lon = message.get("position.latitude"), message.get("position.longitude")
        if lat is not None and lon is not None:
            event["position.latitude"] = lat
            event["position.longitude"] = lon
        self.events.append(event)
        return event

    @property
    def live(self) -> bool:
        """The current message is news: its device time is trustworthy and not older than what the
        device already sent, so it may move state and fire events (see ``filters``)."""
        scratch = self.scratch
        return not (scratch.get("late") or scratch.get("flagged"))

    @property
    def accepted(self) -> bool:
        """The current message is live and carries a position the filters accepted."""
        scratch = self.scratch
        return bool(scratch.get("fix")) and not (scratch.get("late") or scratch.get("flagged"))


# Compiled with mypyc (setup.py); handlers outside the compiled group (tests, plugins) subclass it.
@mypyc_attr(allow_interpreted_subclasses=True)
class Handler:
    """One concern of phase 1. Subclasses set ``name`` and ``options`` (setting name → server
    default) and implement ``handle``; ``handle`` returns the message (changed in place or not) or
    ``None`` to drop it. Anything it raises is logged with the message and the chain goes on."""

    name: ClassVar[str] = ""
    options: ClassVar[Mapping[str, Any]] = {}
    # Services the handler is built with (keyword arguments after ``config``), e.g. ("geofences",);
    # the composition root passes them (``runtime.build_pipeline``).
    needs: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: Mapping[str, Any]) -> None:
        # Read once: server-wide values of this handler's options.
        self.defaults: dict[str, Any] = {key: config.get(key, default) for key, default in self.options.items()}

    def setting(self, ctx: Context, key: str) -> Any:
        """This device's value of option ``key``: its ``settings`` override the server default."""
        device = ctx.device
        if device is not None:
            settings = device.get("settings")
            if settings:
                value = settings.get(key)
                if value is not None:
                    return value
        return self.defaults[key]

    def handle(self, message: Message, ctx: Context) -> Message | None:
        raise NotImplementedError
