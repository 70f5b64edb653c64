"""One simulated tracker: an ``asyncio.Protocol`` plus the state a real device keeps.

The device does not run its own send loop. The runner's scheduler calls ``emit(n)`` when ``n``
positions are due, so 100,000 idle devices cost nothing between reports. Positions generated while
the device is offline go into a buffer and are uploaded after reconnecting (JT808: 0x0704 blind-area
batches; H02: a burst of V1). Protocol specifics live in ``device_h02`` and ``device_jt808``.
"""

from __future__ import annotations

import asyncio
import random
import time
from array import array
from dataclasses import dataclass
from typing import cast

from sinogate.simulate.config import CommandRecord, DeviceSummary, SimConfig
from sinogate.simulate.route import Fix, Route
from sinogate.simulate.texts import DeviceFacts

WRITE_CAP = 1000  # positions per emit() call


@dataclass(slots=True)
class Stats:
    """Counters shared by all devices; read by the progress display."""

    devices: int = 0
    connected: int = 0
    sent: int = 0
    acked: int = 0
    errors: int = 0
    commands: int = 0
    bytes_sent: int = 0
    connects: int = 0


class SimDevice(asyncio.Protocol):
    protocol_name = "?"

    def __init__(self, index: int, ident: str, cfg: SimConfig, stats: Stats, wall_start: int) -> None:
        self.index = index
        self.ident = ident
        self.cfg = cfg
        self.stats = stats
        self.rng = random.Random(f"{cfg.seed}:{index}:{ident}")
        self.route = Route(self.rng, alarm_rate=cfg.alarm_rate)
        # Device clock: strictly increasing whole seconds, >= 1 s per message whatever the real rate;
        # back-dated so that the last report lands near "now" when the rate exceeds 1/s.
        self.ts_step = max(1.0, 1.0 / cfg.rate) if cfg.rate > 0 else 1.0
        expected = cfg.duration * cfg.rate if cfg.duration > 0 else 0.0
        self.clock0 = wall_start - max(0, int(expected * self.ts_step - cfg.duration))
        self.clock_k = 0
        self.relay_cut = False
        # scheduling
        self.start: float | None = None
        self.generated = 0
        # connection
        self.transport: asyncio.Transport | None = None
        self.ready = False
        self.paused = False
        self.lost: asyncio.Future[None] | None = None
        self.last_write = 0.0
        self.connects = 0
        self.errors = 0
        self.last_error: str | None = None
        # accounting
        self.sent_ts = array("q")
        self.acked_flags = bytearray()
        self.n_acked = 0
        self.offline: list[Fix] = []
        self.commands: list[CommandRecord] = []

    # --- protocol-specific hooks ----------------------------------------------------------
    @property
    def port(self) -> int:
        raise NotImplementedError

    def _port(self, which: int, default: int) -> int:
        """The port of server ``which`` (0 H02, 1 JT/T 808) this device talks to: with ``spread``
        (several servers), device i takes pair i modulo their number."""
        spread = self.cfg.spread
        return spread[self.index % len(spread)][which] if spread else default

    def encode_positions(self, fixes: list[Fix], backlog: bool) -> bytes:
        """Frames for ``fixes``; must call ``self.record(fix)`` once per position, in order."""
        raise NotImplementedError

    def on_data(self, data: bytes) -> None:
        raise NotImplementedError

    async def handshake(self) -> None:
        """Wait until the device may report (JT808 register/auth); H02 has none."""

    def heartbeat_frame(self) -> bytes:
        raise NotImplementedError

    def pending_acks(self) -> int:
        return 0

    def variant(self) -> str:
        return ""

    def wire_ident(self) -> str:
        return self.ident

    def flush(self) -> None:
        """Send anything held back (e.g. a partial JT808 batch) at the end of the run."""

    # --- clock and accounting -------------------------------------------------------------
    def next_fix(self) -> Fix:
        ts = int(self.clock0 + self.clock_k * self.ts_step)
        self.clock_k += 1
        return self.route.advance(ts, self.ts_step)

    def record(self, fix: Fix) -> int:
        seq = len(self.acked_flags)
        self.acked_flags.append(0)
        self.stats.sent += 1
        if self.cfg.record_sent:
            self.sent_ts.append(fix.ts)
        return seq

    def ack(self, seq: int) -> None:
        if 0 <= seq < len(self.acked_flags) and not self.acked_flags[seq]:
            self.acked_flags[seq] = 1
            self.n_acked += 1
            self.stats.acked += 1

    def facts(self) -> DeviceFacts:
        return DeviceFacts(
            ident=self.ident,
            server=self.cfg.host,
            port=self.port,
            valid=True,
            satellites=self.route.satellites,
            rssi=self.route.rssi,
            relay_cut=self.relay_cut,
            interval=max(1, round(self.ts_step)),
        )

    def new_command(self, received: str, kind: str) -> CommandRecord:
        rec = CommandRecord(time=time.time(), received=received, kind=kind)
        self.commands.append(rec)
        self.stats.commands += 1
        return rec

    # --- sending ----------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        tr = self.transport
        if tr is None or not data:
            return
        tr.write(data)
        self.stats.bytes_sent += len(data)
        self.last_write = time.monotonic()

    def due(self, now: float) -> int:
        if self.start is None:
            return 0
        return int((now - self.start) * self.cfg.rate) + 1 - self.generated

    def next_due(self) -> float:
        assert self.start is not None
        return self.start + self.generated / self.cfg.rate

    def emit(self, n: int) -> None:
        """Generate ``n`` due positions and send them (or buffer them while offline)."""
        if self.ready and self.paused:
            return  # socket buffer full: they stay due and go out as a burst later
        n = min(n, WRITE_CAP)
        self.generated += n
        fixes = [self.next_fix() for _ in range(n)]
        if not self.ready:
            room = self.cfg.max_offline - len(self.offline)
            if room > 0:
                self.offline.extend(fixes[:room])
            return
        data = b""
        if self.offline:
            backlog, self.offline = self.offline, []
            data = self.encode_positions(backlog, backlog=True)
        data += self.encode_positions(fixes, backlog=False)
        self.write(data)

    def send_backlog(self) -> None:
        if self.ready and self.offline:
            backlog, self.offline = self.offline, []
            self.write(self.encode_positions(backlog, backlog=True))

    # --- asyncio.Protocol -----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses
        self.paused = False
        self.connects += 1
        self.stats.connects += 1
        self.stats.connected += 1

    def data_received(self, data: bytes) -> None:
        self.on_data(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self.stats.connected -= 1
        self.transport = None
        self.ready = False
        if exc is not None:
            self.error(f"connection lost: {exc!r}")
        if self.lost is not None and not self.lost.done():
            self.lost.set_result(None)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False

    def error(self, reason: str) -> None:
        self.errors += 1
        self.stats.errors += 1
        self.last_error = reason

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    # --- summary ----------------------------------------------------------------------------
    def summary(self) -> DeviceSummary:
        flags = self.acked_flags
        return DeviceSummary(
            ident=self.ident,
            protocol=self.protocol_name,
            variant=self.variant(),
            wire_ident=self.wire_ident(),
            sent=len(flags),
            acked=self.n_acked,
            sent_messages=[(ts, i) for i, ts in enumerate(self.sent_ts)],
            unacked_seqs=[i for i, f in enumerate(flags) if not f],
            commands=self.commands,
            connects=self.connects,
            errors=self.errors,
            last_error=self.last_error,
        )
