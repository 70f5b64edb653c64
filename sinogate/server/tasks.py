"""Background tasks of the process and the deferred writes nothing waits on."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from sinogate.store.base import IngestBatch, MessageStore

log = logging.getLogger("sinogate")


class Tasks:
    """Implements ``TaskRunner``: keeps a reference to each task, logs failures, drains on stop.
    ``expected(exc)`` may claim a failure as expected (a full disk: counted by the store's health,
    not a traceback per failed write)."""

    def __init__(self, expected: Callable[[BaseException], bool] | None = None) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._expected = expected

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            if self._expected is not None and self._expected(exc):
                return
            log.error("background task failed", exc_info=exc)

    async def drain(self, timeout: float) -> None:
        """Waits up to ``timeout`` seconds for the running tasks (other than the caller)."""
        deadline = time.monotonic() + timeout
        while self._tasks and time.monotonic() < deadline:
            pending = [t for t in self._tasks if t is not asyncio.current_task()]
            if not pending:
                break
            await asyncio.wait(pending, timeout=max(0.0, deadline - time.monotonic()))


class DeferredWrites:
    """Implements ``LaterWriter``: batches gathered for ``delay`` seconds, written in one go."""

    def __init__(self, store: MessageStore, tasks: Tasks, delay: float = 0.05) -> None:
        self._store = store
        self._tasks = tasks
        self._delay = delay
        self._batch = IngestBatch()
        self._pending: asyncio.Task[Any] | None = None

    def store_later(self, batch: IngestBatch) -> None:
        self._batch.extend(batch)
        if self._pending is None:
            self._pending = self._tasks.spawn(self._flush_soon())

    async def _flush_soon(self) -> None:
        await asyncio.sleep(self._delay)
        batch, self._batch, self._pending = self._batch, IngestBatch(), None
        await self._store.ingest(batch)

    async def flush(self) -> None:
        batch, self._batch = self._batch, IngestBatch()
        if batch:
            await self._store.ingest(batch)
