"""A single writer thread that batches many small writes into one transaction.

Callers submit a function taking the connection; the thread runs everything queued since the
last commit inside one transaction (each call in its own savepoint, so one failure does not undo
the others) and resolves the callers' futures only after COMMIT returns. Group commit is what makes
"acknowledge only what is durable" cheap: a busy server commits a few hundred times a second, not
once per message.

State kept outside the database (the store's in-memory telemetry) must change only with what was
committed: a caller passes ``after_commit``, which the thread runs with the op's result once the
transaction has committed (never when it rolled back), in commit order, before the caller's future
resolves with its result (or its error: the op's writes stay committed). ``housekeeping`` runs
after every commit, outside any transaction.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Any

WriteOp = Callable[[sqlite3.Connection], Any]
AfterCommit = Callable[[Any], Any]
Item = tuple[WriteOp, AfterCommit | None, "asyncio.Future[Any]", asyncio.AbstractEventLoop]

_STOP = object()


class BatchWriter:
    def __init__(
        self,
        connection: sqlite3.Connection,
        max_batch: int = 2000,
        housekeeping: Callable[[sqlite3.Connection], None] | None = None,
    ) -> None:
        self._db = connection
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._max_batch = max_batch
        self._housekeeping = housekeeping
        self._thread = threading.Thread(target=self._run, name="sqlite-writer", daemon=True)
        self.commits = 0
        self.handoffs = 0  # puts on the queue: each may wake the writer thread
        # Ops submitted during one turn of an event loop, handed to the writer together at its end.
        self._outboxes: dict[asyncio.AbstractEventLoop, list[Item]] = {}

    def start(self) -> None:
        self._thread.start()

    def submit(self, op: WriteOp, after_commit: AfterCommit | None = None) -> asyncio.Future[Any]:
        """Queues ``op``; the future gets its result (or ``after_commit``'s, when given) once committed.

        What the event loop submits during one of its turns (every session whose read it ran) is
        handed to the writer thread in one put at the end of the turn: waking a thread costs the
        loop far more than queueing (on a busy machine the woken writer can take the loop's core
        while the loop holds the GIL), so it is paid once per turn, not once per op."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        outbox = self._outboxes.get(loop)
        if outbox is None:
            outbox = self._outboxes[loop] = []
            loop.call_soon(self._hand_over, loop)
        outbox.append((op, after_commit, future, loop))
        return future

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        items = self._outboxes.pop(loop, None)
        if items:
            self.handoffs += 1
            self._queue.put(items)

    def stop(self) -> None:
        """Runs what is queued, commits, ends the thread and closes the connection (until it is
        closed the file stays open: another process could not take it over exclusively)."""
        self._queue.put(_STOP)
        self._thread.join()
        self._db.close()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            batch: list[Item] = []
            stop = item is _STOP
            if not stop:
                batch.extend(item)
            while not stop and len(batch) < self._max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stop = True
                else:
                    batch.extend(nxt)
            if batch:
                self._commit(batch)
            if stop:
                return

    def _commit(self, batch: list[Item]) -> None:
        try:
            results = self._run_batch(batch, isolate=False)
        except Exception:
            # Something in the batch failed: run it again with each op in its own savepoint, so the
            # failing op gets its error and the others still commit.
            results = self._run_batch(batch, isolate=True)
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
        for (ok, value), (_op, after_commit, future, loop) in zip(results, batch, strict=True):
            if ok and after_commit is not None:  # committed: now what lives outside the database follows
                try:
                    value = after_commit(value)
                except Exception as exc:
                    ok, value = False, exc
            by_loop.setdefault(loop, []).append((future, ok, value))
        for loop, outcomes in by_loop.items():  # one wake-up of the event loop per commit
            loop.call_soon_threadsafe(_resolve_all, outcomes)
        if self._housekeeping is not None:
            try:
                self._housekeeping(self._db)
            except Exception:
                pass  # it is retried after the next commit; the writer thread must not die

    def _run_batch(self, batch: list[Item], isolate: bool) -> list[tuple[bool, Any]]:
        db = self._db
        results: list[tuple[bool, Any]] = []
        try:
            db.execute("BEGIN")
            for op, _after_commit, _future, _loop in batch:
                if not isolate:
                    results.append((True, op(db)))
                    continue
                db.execute("SAVEPOINT op")
                try:
                    results.append((True, op(db)))
                    db.execute("RELEASE op")
                except Exception as exc:  # the caller gets the error; the rest of the batch commits
                    db.execute("ROLLBACK TO op")
                    db.execute("RELEASE op")
                    results.append((False, exc))
            db.execute("COMMIT")
            self.commits += 1
            return results
        except Exception as exc:
            try:
                db.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            if not isolate:
                raise
            return [(False, exc)] * len(batch)  # the commit itself failed: nothing here is durable


def _resolve_all(outcomes: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for future, ok, value in outcomes:
        if future.done():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
