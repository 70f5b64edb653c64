"""Bounds on what a codec may hold for a peer, shared by the connections of one process.

The session hands every codec the same ``CodecLimits`` (built by the composition root); a codec
made without one gets its own, so it still holds its per-connection bounds. Nothing here touches a
clock: ``now`` comes in with the bytes, as everywhere in the codecs.

Reassembly (JT/T 808 sub-packages): a split message is held until its last part arrives. Every
connection may hold ``per_connection`` bytes in at most ``max_messages`` messages of at most
``max_parts`` parts, all connections together ``total`` bytes, each message for at most
``max_age`` seconds. Over a bound the oldest incomplete message goes first (of the connection, or
of every connection for ``total``); each such drop is counted in ``evicted`` / ``expired``.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ReassemblyLimits:
    per_connection: int = 256 * 1024
    total: int = 32 * 1024 * 1024
    max_age: float = 120.0
    max_messages: int = 4
    max_parts: int = 128


class _Partial:
    __slots__ = ("bytes", "key", "owner", "parts", "started", "total")

    def __init__(self, owner: Reassembly, key: int, total: int, started: float) -> None:
        self.owner = owner
        self.key = key
        self.total = total
        self.started = started
        self.parts: dict[int, bytes] = {}
        self.bytes = 0


class ReassemblyPool:
    """The incomplete messages of every connection that shares it, oldest first."""

    def __init__(self, limits: ReassemblyLimits | None = None) -> None:
        self.limits = limits or ReassemblyLimits()
        self.bytes = 0
        self.evicted = 0  # incomplete messages dropped because a byte or count bound was reached
        self.expired = 0  # incomplete messages dropped because they were older than max_age
        self._order: OrderedDict[int, _Partial] = OrderedDict()  # id(partial) → partial, by start

    def __len__(self) -> int:
        return len(self._order)

    def _expire(self, now: float) -> None:
        limit = now - self.limits.max_age
        while self._order:
            partial = next(iter(self._order.values()))
            if partial.started >= limit:
                return
            partial.owner.drop(partial)
            self.expired += 1

    def _shrink(self) -> None:
        while self.bytes > self.limits.total and self._order:
            partial = next(iter(self._order.values()))
            partial.owner.drop(partial)
            self.evicted += 1


@dataclass(frozen=True, slots=True)
class CodecLimits:
    """What the session hands every codec of the process."""

    reassembly: ReassemblyPool = field(default_factory=ReassemblyPool)


class Reassembly:
    """The split messages of one connection."""

    def __init__(self, pool: ReassemblyPool | None = None) -> None:
        self.pool = pool if pool is not None else ReassemblyPool()
        self.partials: dict[int, _Partial] = {}  # by message key (the message id)
        self.bytes = 0

    def drop(self, partial: _Partial) -> None:
        if self.partials.get(partial.key) is partial:
            del self.partials[partial.key]
        if self.pool._order.pop(id(partial), None) is not None:
            self.pool.bytes -= partial.bytes
        self.bytes -= partial.bytes
        partial.bytes = 0

    def release(self) -> None:
        """The connection ended: what it held is freed."""
        for partial in list(self.partials.values()):
            self.drop(partial)

    def add(self, key: int, total: int, index: int, body: bytes, now: float, errors: list[str]) -> bytes | None:
        """Part ``index`` of ``total`` of message ``key``; the whole body once every part is
        there, else ``None``. What was dropped to stay within the bounds is said in ``errors``."""
        limits = self.pool.limits
        if not 1 <= index <= total or total > limits.max_parts:
            errors.append(f"bad sub-package numbers {index}/{total} (max {limits.max_parts}), packet ignored")
            return None
        self.pool._expire(now)
        partial = self.partials.get(key)
        if partial is not None and partial.total != total:
            self.drop(partial)
            partial = None
        if partial is None:
            while len(self.partials) >= limits.max_messages:
                oldest = next(iter(self.partials.values()))
                self.drop(oldest)
                self.pool.evicted += 1
                errors.append(f"incomplete split message 0x{oldest.key:04X} discarded "
                              f"(more than {limits.max_messages} at once)")
            partial = _Partial(self, key, total, now)
            self.partials[key] = partial
            self.pool._order[id(partial)] = partial
        old = partial.parts.get(index)
        grow = len(body) - (len(old) if old is not None else 0)
        while self.bytes + grow > limits.per_connection:
            others = [p for p in self.partials.values() if p is not partial]
            victim = others[0] if others else partial
            self.drop(victim)
            self.pool.evicted += 1
            errors.append(f"incomplete split message 0x{victim.key:04X} discarded "
                          f"(over {limits.per_connection} bytes held by the connection)")
            if victim is partial:
                return None
        partial.parts[index] = body
        partial.bytes += grow
        self.bytes += grow
        self.pool.bytes += grow
        self.pool._shrink()
        if self.partials.get(key) is not partial:
            errors.append(f"incomplete split message 0x{key:04X} discarded "
                          f"(over {limits.total} bytes held by all connections)")
            return None
        if len(partial.parts) < total:
            return None
        whole = b"".join(partial.parts[i] for i in range(1, total + 1))
        self.drop(partial)
        return whole
