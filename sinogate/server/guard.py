"""Limits on what device peers (unauthenticated, on ports that face the internet) can make the
gateway spend: descriptors, memory, disk, log lines and devices.

``Guard`` is built once by the composition root from the config (``Limits``) and shared by every
session, the listeners and the API:

- connections: at most ``max_connections`` TCP device connections in total (never more than the
  process's descriptor limit minus ``fd_headroom``, kept for the API, the store and the log) and
  ``max_connections_per_peer`` per peer address; UDP peers are limited the same way per address;
- registrations: a token bucket (``register_rate`` per minute, ``register_burst`` at once); an
  ident over the budget stays an unknown ident (its messages are stored without a device) and is
  queued (``pending``, at most ``REGISTER_BACKLOG``) to be registered as the budget refills;
- junk: raw traffic that holds no valid frame (and everything before a connection names its
  device) is stored as a sample: the first ``junk_sample`` bytes per connection, out of a global
  budget of ``junk_budget`` bytes per day (at most an hour's share at once);
- refused idents: counted by reason and listed (the latest ``REFUSED_KEPT``), never a traceback;
- log lines caused by device traffic go through ``device_log``: escaped (no control characters,
  so a peer cannot forge lines), cut to ``log_line_max`` characters, and at most ``log_rate`` per
  second (``LOG_BURST`` at once); what the rate drops is counted and said in one line a minute.

Every limit hit is counted in ``hits`` (exported by ``integrations.metrics``) and logged through
``hit``: one line per kind of limit per ``LIMIT_LOG_SECONDS``, with the number of hits since.
"""

from __future__ import annotations

import logging
import re
import resource
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("sinogate.limits")

LIMIT_LOG_SECONDS = 60.0  # one line per kind of limit hit per this many seconds
LOG_BURST = 100  # device-caused log lines at once, then ``log_rate`` per second
REGISTER_BACKLOG = 10_000  # idents waiting for the registration budget
REFUSED_KEPT = 1_000  # refused idents listed (the latest)
MAX_KINDS = 50  # distinct decode-error kinds counted, the rest are "other"
_DIGITS = re.compile(r"0x[0-9a-fA-F]+|\d+")


@dataclass(frozen=True, slots=True)
class Limits:
    """The configurable bounds (``Config`` fields of the same names; see the README)."""

    max_connections: int = 10_000
    max_connections_per_peer: int = 1000
    fd_headroom: int = 256
    unidentified_timeout: float = 60.0
    garbage_limit: int = 8192
    garbage_window: float = 60.0
    junk_sample: int = 4096
    junk_budget: int = 16 * 1024 * 1024  # bytes per day
    register_rate: float = 600.0  # per minute
    register_burst: int = 1000
    log_line_max: int = 512
    log_rate: float = 20.0  # per second
    warnings_per_connection: int = 3


def clean(value: object, limit: int = 512) -> str:
    """``value`` fit for one log line: control and other unprintable characters escaped
    (``\\r``, ``\\n``, ``\\x1b``…), cut to ``limit`` characters (saying how many were cut)."""
    text = value if isinstance(value, str) else str(value)
    if not text.isprintable():
        text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    if len(text) > limit:
        text = f"{text[:limit]}…(+{len(text) - limit} chars)"
    return text


class TokenBucket:
    """``rate`` tokens per second up to ``burst``; ``take`` spends them."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._at = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now

    @property
    def available(self) -> float:
        self._refill()
        return self._tokens

    def take(self, n: float = 1.0) -> bool:
        self._refill()
        if self._tokens >= n:
            self._tokens -= n
            return True
        return False

    def take_up_to(self, n: int) -> int:
        """Takes as many whole tokens as there are, at most ``n``; returns how many."""
        self._refill()
        got = max(0, min(n, int(self._tokens)))
        self._tokens -= got
        return got


class GarbageMeter:
    """Bytes that became no valid frame, over a window: a leaky bucket that drains ``limit`` bytes
    per ``window`` seconds. A valid frame does not empty it (that let one frame per read carry any
    amount of junk); only time does."""

    __slots__ = ("_at", "level", "limit", "window")

    def __init__(self, limit: int, window: float, now: float) -> None:
        self.limit = limit
        self.window = window
        self.level = 0.0
        self._at = now

    def add(self, junk: int, now: float) -> bool:
        """Counts ``junk`` bytes; ``True`` when the connection went over the limit."""
        if self.level:
            self.level = max(0.0, self.level - (now - self._at) * self.limit / self.window)
        self._at = now
        self.level += junk
        return self.level > self.limit


def error_kind(error: str) -> str:
    """An error text without its numbers (``checksum mismatch``, ``N bytes outside a frame skipped``),
    for counting by kind."""
    return _DIGITS.sub("N", error.split(":")[0]).strip()[:60] or "error"


def descriptor_limit() -> int:
    """The process's soft limit of open files (a large number when there is none)."""
    try:
        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError):
        return 1 << 20
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


class Guard:
    """The shared limits of the device side; see the module docstring."""

    def __init__(self, limits: Limits | None = None, clock: Callable[[], float] = time.monotonic,
                 descriptors: int | None = None) -> None:
        self.limits = limits = limits or Limits()
        self._clock = clock
        fds = descriptor_limit() if descriptors is None else descriptors
        # What the process can hold: the rest of the descriptors are the API's, the store's, the log's.
        self.max_connections = max(1, min(limits.max_connections, fds - limits.fd_headroom))
        self.hits: dict[str, int] = {}
        self.refused_idents: dict[str, int] = {}  # by reason
        self.decode_errors: dict[tuple[str, str], int] = {}  # (protocol, kind)
        self.junk_dropped = 0  # bytes of junk not stored (over a sample or the budget)
        self.acks_withheld = 0  # reads whose replies were not sent: the store could not commit them
        self._tcp: dict[str, int] = {}  # peer address → open TCP connections
        self.tcp_open = 0
        self._udp: dict[str, int] = {}  # peer address → UDP peers (ports)
        self._register = TokenBucket(limits.register_rate / 60.0, limits.register_burst, clock)
        self.pending: OrderedDict[tuple[str, str], float] = OrderedDict()  # (protocol, ident) → first seen
        self._junk = TokenBucket(limits.junk_budget / 86400.0, max(limits.junk_sample, limits.junk_budget / 24), clock)
        self._lines = TokenBucket(limits.log_rate, max(LOG_BURST, limits.log_rate), clock)
        self._lines_dropped = 0
        self._lines_dropped_at = clock()
        self._hit_logged: dict[str, tuple[float, int]] = {}
        self._refused: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()

    # -- limit hits -------------------------------------------------------------------------------
    def hit(self, kind: str, message: str, *args: object, count: int = 1) -> None:
        """Counts ``count`` hits of limit ``kind``; logs it unless one was logged less than a minute
        ago (the next line says how many were not)."""
        self.hits[kind] = self.hits.get(kind, 0) + count
        now = self._clock()
        last, quiet = self._hit_logged.get(kind, (float("-inf"), 0))
        if now - last < LIMIT_LOG_SECONDS:
            self._hit_logged[kind] = (last, quiet + 1)
            return
        self._hit_logged[kind] = (now, 0)
        text = clean(message % args if args else message, self.limits.log_line_max)
        suffix = f" ({quiet} more since the last such line)" if quiet else ""
        log.warning("limit %s: %s%s", kind, text, suffix)

    def device_log(self, level: int, message: str, *args: object) -> bool:
        """Logs a line caused by device traffic, escaped and cut, within the global line rate;
        ``False`` when the rate dropped it."""
        if not self._lines.take():
            self._lines_dropped += 1
            return False
        self.report_dropped_lines()
        logging.getLogger("sinogate.session").log(
            level, "%s", clean(message % args if args else message, self.limits.log_line_max))
        return True

    def report_dropped_lines(self, every: float = LIMIT_LOG_SECONDS) -> None:
        """One line saying how many device lines the rate dropped (at most one per ``every``)."""
        now = self._clock()
        if self._lines_dropped and now - self._lines_dropped_at >= every:
            self.hits["log_rate"] = self.hits.get("log_rate", 0) + self._lines_dropped
            log.warning("limit log_rate: %d lines about device traffic not logged in the last %.0f s "
                        "(more than %g per second)", self._lines_dropped, now - self._lines_dropped_at,
                        self.limits.log_rate)
            self._lines_dropped = 0
            self._lines_dropped_at = now
        elif not self._lines_dropped:
            self._lines_dropped_at = now

    def count_decode_error(self, protocol: str, errors: list[str]) -> None:
        for error in errors:
            key = (protocol, error_kind(error))
            if key not in self.decode_errors and len(self.decode_errors) >= MAX_KINDS:
                key = (protocol, "other")
            self.decode_errors[key] = self.decode_errors.get(key, 0) + 1

    # -- connections ------------------------------------------------------------------------------
    def admit_tcp(self, host: str) -> tuple[str, str] | None:
        """Takes a slot for a new TCP connection from ``host``; when there is none, the limit's
        name and why."""
        if self.tcp_open >= self.max_connections:
            return "max_connections", f"{self.tcp_open} device connections open (max {self.max_connections})"
        held = self._tcp.get(host, 0)
        per_peer = self.limits.max_connections_per_peer
        if held >= per_peer:
            return "max_connections_per_peer", f"{held} connections from {host} (max {per_peer})"
        self._tcp[host] = held + 1
        self.tcp_open += 1
        return None

    def release_tcp(self, host: str) -> None:
        held = self._tcp.get(host, 0)
        if held <= 1:
            self._tcp.pop(host, None)
        else:
            self._tcp[host] = held - 1
        self.tcp_open = max(0, self.tcp_open - 1)

    def admit_udp(self, host: str) -> str | None:
        """Takes a slot for a new UDP peer (address and port) of ``host``; why not when there is none."""
        held = self._udp.get(host, 0)
        if held >= self.limits.max_connections_per_peer:
            return f"{held} UDP peers from {host} (max {self.limits.max_connections_per_peer})"
        self._udp[host] = held + 1
        return None

    def release_udp(self, host: str) -> None:
        held = self._udp.get(host, 0)
        if held <= 1:
            self._udp.pop(host, None)
        else:
            self._udp[host] = held - 1

    # -- registrations ----------------------------------------------------------------------------
    def may_register(self) -> bool:
        return self._register.take()

    def defer(self, protocol: str, ident: str) -> None:
        """Queues an ident the budget refused, to be registered when it refills."""
        key = (protocol, ident)
        if key in self.pending:
            return
        if len(self.pending) >= REGISTER_BACKLOG:
            self.hit("register_backlog", "%d idents already wait for registration: %s %s stays unknown",
                     len(self.pending), protocol, ident)
            return
        self.pending[key] = time.time()

    def next_pending(self) -> tuple[str, str] | None:
        """The oldest waiting ident when the budget has room for it (the token is spent)."""
        if not self.pending or not self._register.take():
            return None
        key, _ = self.pending.popitem(last=False)
        return key

    # -- junk -------------------------------------------------------------------------------------
    def junk_allowance(self, wanted: int) -> int:
        """Bytes of a junk sample that the global budget still allows (they are spent)."""
        return self._junk.take_up_to(wanted)

    # -- refused idents ---------------------------------------------------------------------------
    def refuse_ident(self, protocol: str, channel_id: int, ident: str, reason: str, peer: str) -> None:
        self.refused_idents[reason] = self.refused_idents.get(reason, 0) + 1
        shown = clean(ident, 64)
        key = (protocol, shown)
        entry = self._refused.pop(key, None)
        now = time.time()
        if entry is None:
            entry = {"protocol": protocol, "channel_id": channel_id, "ident": shown, "reason": reason,
                     "first_seen": now, "count": 0}
        entry.update(last_seen=now, peer=peer, count=entry["count"] + 1, reason=reason)
        self._refused[key] = entry
        while len(self._refused) > REFUSED_KEPT:
            self._refused.popitem(last=False)

    def refused(self, protocol: str | None = None) -> list[dict[str, Any]]:
        """The refused idents, the latest first."""
        return [dict(e) for e in reversed(self._refused.values()) if protocol is None or e["protocol"] == protocol]
