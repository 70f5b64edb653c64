"""The message pipeline: small handlers applied in order to every decoded message.

A handler takes a message and the context of the connection that produced it and returns the
message (changed in place or not) or ``None`` to drop it. Logic that is not about reading bytes
lives here, never in a codec.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Message = dict[str, Any]


@dataclass(slots=True)
class Context:
    protocol: str
    transport: str
    peer: str
    now: float
    device: dict[str, Any] | None
    channel_id: int
    protocol_id: int


Handler = Callable[[Message, Context], Message | None]


class Pipeline:
    def __init__(self, handlers: list[Handler]) -> None:
        self.handlers = handlers

    def run(self, messages: list[Message], ctx: Context) -> list[Message]:
        out = []
        for message in messages:
            current: Message | None = message
            for handler in self.handlers:
                current = handler(current, ctx)
                if current is None:
                    break
            if current is not None:
                out.append(current)
        return out


def default_pipeline() -> Pipeline:
    from sinogate.pipeline.enrich import enrich
    from sinogate.pipeline.time_sanity import time_sanity

    return Pipeline([enrich, time_sanity])
