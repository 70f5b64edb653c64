"""Drives N simulated devices: bounded connects, one scheduler for all sends, storm, drain, summary.

``await run(config)`` returns a ``Summary``; ``stats`` (optional) is updated live so a caller can
display progress without any per-message callback.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from dataclasses import asdict

from sinogate.simulate.config import SimConfig, Summary, device_plan
from sinogate.simulate.device import SimDevice, Stats
from sinogate.simulate.device_h02 import H02Device
from sinogate.simulate.device_jt808 import HandshakeError, Jt808Device

PER_SOURCE = 20_000  # connections per loopback source address


def raise_fd_limit(wanted: int) -> int:
    """Lift the soft RLIMIT_NOFILE towards ``wanted`` (bounded by the hard limit); returns the new soft limit."""
    try:
        import resource
    except ImportError:  # not on POSIX
        return wanted
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return int(soft)


class Runner:
    def __init__(self, cfg: SimConfig, stats: Stats | None = None) -> None:
        if cfg.rate <= 0:
            raise ValueError("rate must be > 0")
        self.cfg = cfg
        self.stats = stats or Stats()
        wall = int(time.time())
        self.devices: list[SimDevice] = []
        for i, (proto, ident) in enumerate(device_plan(cfg)):
            cls = H02Device if proto == "h02" else Jt808Device
            self.devices.append(cls(i, ident, cfg, self.stats, wall))
        self.stats.devices = len(self.devices)
        raise_fd_limit(len(self.devices) + 1024)
        self.heap: list[tuple[float, int]] = []
        self.stopping = False
        self.storm_until = 0.0
        self.t0 = 0.0
        self.end = float("inf")

    def local_addr(self, dev: SimDevice) -> tuple[str, int] | None:
        """Spread loopback connections over 127.0.0.x sources: one source address has only ~28,000
        ephemeral ports per server port, and the idle-connection benchmark wants 100,000."""
        if len(self.devices) <= PER_SOURCE or not self.cfg.host.startswith("127."):
            return None
        return (f"127.0.{dev.index // PER_SOURCE // 250}.{1 + dev.index // PER_SOURCE % 250}", 0)

    def stop(self) -> None:
        """End the sending phase now (e.g. on Ctrl-C); drain and summary follow."""
        self.end = 0.0

    # --- per-device lifecycle ---------------------------------------------------------------
    async def lifecycle(self, dev: SimDevice, sem: asyncio.Semaphore) -> None:
        loop = asyncio.get_running_loop()
        cfg = self.cfg
        backoff = 1.0
        while not self.stopping:
            wait = self.storm_until - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            dev.lost = loop.create_future()
            try:
                async with sem:
                    if self.stopping:
                        return
                    await asyncio.wait_for(
                        loop.create_connection(lambda d=dev: d, cfg.host, dev.port, local_addr=self.local_addr(dev)),
                        cfg.connect_timeout,
                    )
                    await dev.handshake()
            except (OSError, TimeoutError, HandshakeError) as exc:
                dev.error(f"connect: {exc!r}")
                dev.abort()
                await asyncio.sleep(backoff * (0.5 + dev.rng.random()))
                backoff = min(backoff * 2, 10.0)
                continue
            backoff = 1.0
            if dev.transport is None:  # lost during the handshake
                continue
            dev.ready = True
            if dev.start is None:
                now = loop.time()
                dev.start = now + dev.rng.uniform(0.0, min(1.0, 1.0 / cfg.rate))
                heapq.heappush(self.heap, (dev.start, dev.index))
            dev.send_backlog()
            await dev.lost
            if not self.stopping and self.storm_until <= loop.time():
                await asyncio.sleep(backoff * (0.5 + dev.rng.random()))

    # --- scheduler ---------------------------------------------------------------------------
    async def schedule(self) -> None:
        loop = asyncio.get_running_loop()
        heap = self.heap
        devices = self.devices
        tick = self.cfg.tick
        while True:
            now = loop.time()
            if now >= self.end:
                return
            while heap and heap[0][0] <= now:
                _, i = heapq.heappop(heap)
                dev = devices[i]
                n = dev.due(now)
                if n > 0:
                    dev.emit(n)
                nxt = dev.next_due()
                heapq.heappush(heap, (nxt if nxt > now else now + tick, i))
            await asyncio.sleep(tick)

    async def heartbeats(self) -> None:
        interval = self.cfg.heartbeat
        if interval <= 0:
            return
        while True:
            await asyncio.sleep(interval / 4)
            limit = time.monotonic() - interval
            for dev in self.devices:
                if dev.ready and dev.last_write < limit:
                    dev.write(dev.heartbeat_frame())

    async def storm(self) -> None:
        cfg = self.cfg
        assert cfg.reconnect_storm is not None
        loop = asyncio.get_running_loop()
        await asyncio.sleep(cfg.reconnect_storm)
        self.storm_until = loop.time() + cfg.storm_offline
        for dev in self.devices:
            dev.abort()

    async def drain(self) -> None:
        for dev in self.devices:
            dev.flush()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.cfg.drain_timeout
        while loop.time() < deadline:
            if not any(d.ready and d.pending_acks() for d in self.devices):
                return
            await asyncio.sleep(0.05)

    async def run(self) -> Summary:
        loop = asyncio.get_running_loop()
        cfg = self.cfg
        started = time.time()
        self.t0 = loop.time()
        self.end = self.t0 + cfg.duration if cfg.duration > 0 else float("inf")
        sem = asyncio.Semaphore(max(1, cfg.connect_concurrency))
        lifecycles = [asyncio.create_task(self.lifecycle(d, sem)) for d in self.devices]
        helpers = [asyncio.create_task(self.heartbeats())]
        if cfg.reconnect_storm is not None:
            helpers.append(asyncio.create_task(self.storm()))
        try:
            await self.schedule()
            sending = loop.time() - self.t0
            for h in helpers:
                h.cancel()
            await self.drain()
        finally:
            self.stopping = True
            for h in helpers:
                h.cancel()
            for d in self.devices:
                d.close()
            for t in lifecycles:
                t.cancel()
            await asyncio.gather(*lifecycles, *helpers, return_exceptions=True)
            await asyncio.sleep(0)
        s = self.stats
        return Summary(
            config=asdict(cfg),
            started_at=started,
            ended_at=time.time(),
            sending_seconds=round(sending, 3),
            connected=sum(1 for d in self.devices if d.connects > 0),
            sent=s.sent,
            acked=s.acked,
            errors=s.errors,
            commands=s.commands,
            bytes_sent=s.bytes_sent,
            devices=[d.summary() for d in self.devices],
        )


async def run(config: SimConfig, stats: Stats | None = None) -> Summary:
    """Run the simulation described by ``config`` and return its summary."""
    return await Runner(config, stats).run()
