"""Whether the store can take writes: ``ok``, or ``degraded`` with the reason (the disk is full).

A full disk must not take the gateway down: the API stays up (reads work), device
acknowledgements are withheld (nothing that is not durable is acknowledged: a tracker keeps its
data and sends it again), writes through the API get 503 with the reason, ``GET /health`` says
why, and the gateway recovers by itself: the composition root probes the store while degraded
(``probe``) and returns to ``ok`` once a write commits again and the disk has room. One log line
per change of state, never one per failed write.

``storage_problem(exc)`` tells a storage failure (no space, quota, I/O error) from a bug.
"""

from __future__ import annotations

import errno
import logging
import sqlite3
import time
from collections.abc import Callable

from sinogate.store.base import StoreError

log = logging.getLogger("sinogate.store")

_NO_SPACE = {errno.ENOSPC, errno.EDQUOT}
_SQLITE_FULL = 13
_SQLITE_IOERR = 10
_PG_DISK_FULL = "53100"  # PostgreSQL disk_full
_PG_OUT_OF_SPACE = {"53100", "53200", "58030"}  # disk_full, out_of_memory, io_error


class StoreUnavailable(StoreError):
    """The store cannot take writes now (disk full): the API answers 503 with this reason."""


def storage_problem(exc: BaseException) -> str | None:
    """What is wrong with the storage when ``exc`` (or an exception it came from) says so."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 8:
        seen += 1
        if isinstance(current, StoreUnavailable):
            return str(current)
        if isinstance(current, sqlite3.Error):
            code = getattr(current, "sqlite_errorcode", None)
            primary = code & 0xFF if isinstance(code, int) else None
            if primary == _SQLITE_FULL or "disk is full" in str(current):
                return "disk full"
            if primary == _SQLITE_IOERR or "disk I/O error" in str(current):
                return "disk I/O error"
        elif isinstance(current, OSError) and current.errno in _NO_SPACE:
            return "disk full"
        state = getattr(current, "sqlstate", None)
        if isinstance(state, str) and state in _PG_OUT_OF_SPACE:
            return "database server disk full" if state == _PG_DISK_FULL else f"database server error {state}"
        current = current.__cause__ or current.__context__
    return None


class StoreHealth:
    """The store's state for the whole process (see the module docstring)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self.reason: str | None = None
        self.since: float | None = None
        self.failures = 0  # writes that failed for lack of space (or I/O) since the start
        self.changes = 0  # state changes since the start

    @property
    def degraded(self) -> bool:
        return self.reason is not None

    def failed(self, exc: BaseException) -> bool:
        """Records ``exc`` when it is a storage problem (``True``); ``False`` for anything else."""
        problem = storage_problem(exc)
        if problem is None:
            return False
        self.failures += 1
        if self.reason is None:
            self.reason = problem
            self.since = self._clock()
            self.changes += 1
            log.error("store degraded: %s; device acknowledgements withheld, API writes answered 503, "
                      "reads go on; retrying by itself", problem)
        return True

    def recovered(self) -> None:
        if self.reason is not None:
            lasted = self._clock() - (self.since or self._clock())
            log.warning("store writable again after %.0f s (%s); acknowledgements and writes resume",
                        lasted, self.reason)
            self.reason = None
            self.since = None
            self.changes += 1

    def check(self) -> None:
        """Raises ``StoreUnavailable`` while degraded."""
        if self.reason is not None:
            raise StoreUnavailable(f"store unavailable: {self.reason} (since {self.since:.0f}); try again later")

    def status(self) -> dict[str, object]:
        if self.reason is None:
            return {"status": "ok"}
        return {"status": "degraded", "reason": f"store unavailable: {self.reason}", "since": self.since,
                "failed_writes": self.failures}
