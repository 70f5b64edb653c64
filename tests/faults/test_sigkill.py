"""SIGKILL under load from several H02 and JT/T 808 devices at once, then a restart on the same data
dir: everything any device got an acknowledgement for is stored, and the server serves again."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.faults._support import ServerProcess, h02_v1, jt808_acked_serials, jt808_frame, location_body

pytestmark = pytest.mark.timeout(30)

PER_DEVICE = 4000
CHUNK = 40  # frames per write


@dataclass
class Device:
    protocol: str
    ident: str  # as stored (JT808: the BCD phone without leading zeros)
    base: int
    acked: list[int] = field(default_factory=list)  # indexes; message i has device time base + i
    written: int = 0

    def frame(self, i: int) -> bytes:
        if self.protocol == "h02":
            return h02_v1(self.ident, self.base + i, 22.5 + i / 1e5, 114.0)
        return jt808_frame(0x0200, self.ident.rjust(12, "0"), i, location_body(self.base + i, 30.0 + i / 1e5, 120.0))


async def drive(dev: Device, port: int, stop: asyncio.Event) -> None:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return

    async def read_acks() -> None:
        buf = b""
        with contextlib.suppress(OSError):
            while chunk := await reader.read(65536):
                if dev.protocol == "h02":  # one "V4,V1" per V1, in order
                    buf += chunk
                    *replies, buf = buf.split(b"#")
                    for reply in replies:
                        if b",V4,V1," in reply:
                            dev.acked.append(len(dev.acked))
                else:
                    serials, buf = jt808_acked_serials(buf + chunk)
                    dev.acked.extend(serials)  # serial == index (< 65536)

    acks = asyncio.create_task(read_acks())
    try:
        while dev.written < PER_DEVICE and not stop.is_set():
            n = min(CHUNK, PER_DEVICE - dev.written)
            writer.write(b"".join(dev.frame(dev.written + k) for k in range(n)))
            dev.written += n
            await writer.drain()
            await asyncio.sleep(0.005)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 10)
    except OSError:
        pass
    finally:
        await asyncio.sleep(0.2)  # let the last acks that made it out be read
        acks.cancel()
        writer.close()


def test_acknowledged_messages_from_many_devices_survive_sigkill(tmp_path: Path) -> None:
    base = int(time.time()) - 100_000
    devices = [Device("h02", str(7_352_000_000 + k), base) for k in range(3)]
    devices += [Device("jt808", str(13_952_000_000 + k), base) for k in range(3)]
    server = ServerProcess(tmp_path / "data").start()
    try:

        async def load_then_kill() -> None:
            stop = asyncio.Event()
            tasks = [asyncio.create_task(drive(d, server.h02_port if d.protocol == "h02" else server.jt808_port,
                                                stop)) for d in devices]
            deadline = time.time() + 15
            # Kill mid-stream: every device has been acknowledged a good deal and is still sending.
            while time.time() < deadline and min(len(d.acked) for d in devices) < 600:
                await asyncio.sleep(0.01)
            server.kill()
            stop.set()
            await asyncio.gather(*tasks)

        asyncio.run(load_then_kill())
    finally:
        server.kill()
    for d in devices:
        assert len(d.acked) >= 600, f"{d.protocol} {d.ident}: only {len(d.acked)} acked before the kill"
    assert any(d.written > len(d.acked) for d in devices), "nothing was in flight at the kill"

    restarted = ServerProcess(tmp_path / "data")
    with restarted:
        restarted.check_device_works()  # serves again on the same data dir
        for d in devices:
            stored = restarted.stored_ts(d.protocol, d.ident)
            missing = [i for i in d.acked if d.base + i not in stored]
            assert not missing, (
                f"{d.protocol} {d.ident}: {len(missing)} of {len(d.acked)} acknowledged messages lost, "
                f"e.g. {missing[:10]}"
            )
        assert restarted.alive
