"""Runs the chain over a batch of messages of one device, isolating failing handlers."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sinogate.pipeline.base import Context, Handler, Message

log = logging.getLogger("sinogate.pipeline")


class Pipeline:
    """An ordered chain of handlers. ``run`` mutates and returns the messages that survive."""

    def __init__(self, handlers: Sequence[Handler]) -> None:
        self.handlers = tuple(handlers)
        self.failures = 0  # handler exceptions so far (each one logged)

    @property
    def handlers(self) -> tuple[Handler, ...]:
        return self._handlers

    @handlers.setter
    def handlers(self, handlers: Sequence[Handler]) -> None:
        self._handlers = tuple(handlers)
        self._handles = tuple(h.handle for h in self._handlers)  # bound once, not per message

    @property
    def names(self) -> list[str]:
        return [h.name for h in self.handlers]

    def run(self, messages: list[Message], ctx: Context) -> list[Message]:
        out = []
        handles = self._handles
        for message in messages:
            ctx.scratch = {}
            current: Message | None = message
            for i, handle in enumerate(handles):
                try:
                    current = handle(current, ctx)  # type: ignore[arg-type]
                except Exception:
                    self.failures += 1
                    log.exception("handler %s failed on %s %s message %r; skipped", self.handlers[i].name,
                                  ctx.protocol, ctx.peer, current)
                    continue
                if current is None:
                    break
            if current is not None:
                out.append(current)
        return out
