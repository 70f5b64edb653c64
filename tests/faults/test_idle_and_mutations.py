"""1,000 connections that never send are all closed by the idle timeout while a device keeps
working; a barrage of mutated shared vectors never kills the server."""

from __future__ import annotations

import json
import random
import socket
import time
from pathlib import Path

import pytest

from tests.codecs.vectors import vectors_dir
from tests.faults._support import ServerProcess, raise_nofile
from tests.faults.test_slow_and_garbage import GoodDevice

IDLE = 2.0


@pytest.mark.timeout(30)
def test_thousand_silent_connections_are_closed(tmp_path: Path) -> None:
    assert raise_nofile() > 2200
    with ServerProcess(tmp_path / "data", idle_timeout=IDLE) as server:
        good = GoodDevice(server)
        good.start()
        socks: list[socket.socket] = []
        try:
            for i in range(1000):
                protocol = "h02" if i % 2 else "jt808"
                socks.append(server.connect(protocol))
            opened = time.time()
            for s in socks:
                s.setblocking(False)
            open_socks = set(range(len(socks)))
            while open_socks and time.time() - opened < 4 * IDLE + 4:
                for i in list(open_socks):
                    try:
                        if socks[i].recv(1) == b"":
                            open_socks.discard(i)
                    except BlockingIOError:
                        pass
                    except OSError:
                        open_socks.discard(i)
                time.sleep(0.1)
            took = time.time() - opened
        finally:
            for s in socks:
                s.close()
        assert not open_socks, f"{len(open_socks)} of 1000 silent connections still open after {took:.1f} s"
        good.finish()  # the reporting device was served all along, on its own connection
        assert server.alive


def _vectors() -> dict[str, list[bytes]]:
    out: dict[str, list[bytes]] = {"h02": [], "jt808": []}
    for path in sorted(vectors_dir().glob("*.json")):
        stack: list[object] = [json.loads(path.read_text())]
        while stack:
            item = stack.pop()
            if isinstance(item, dict):
                hex_value = item.get("hex")
                proto = str(item.get("protocol", path.stem.split("_")[0]))
                if isinstance(hex_value, str) and proto in out:
                    try:
                        out[proto].append(bytes.fromhex(hex_value))
                    except ValueError:
                        pass
                stack.extend(item.values())
            elif isinstance(item, list):
                stack.extend(item)
    return out


def mutate(rnd: random.Random, data: bytes, pool: list[bytes]) -> bytes:
    buf = bytearray(data)
    kind = rnd.randrange(6)
    if kind == 0 and buf:  # bit flips
        for _ in range(rnd.randint(1, 8)):
            i = rnd.randrange(len(buf))
            buf[i] ^= 1 << rnd.randrange(8)
    elif kind == 1 and buf:  # truncation
        buf = buf[: rnd.randrange(len(buf))]
    elif kind == 2 and buf:  # duplication of a slice
        i, j = sorted(rnd.randrange(len(buf) + 1) for _ in range(2))
        buf[j:j] = buf[i:j] * rnd.randint(1, 4)
    elif kind == 3:  # splice with another vector (maybe the other protocol)
        other = rnd.choice(pool)
        buf = buf[: rnd.randrange(len(buf) + 1)] + other[rnd.randrange(len(other) + 1) :]
    elif kind == 4 and buf:  # random bytes overwritten
        for _ in range(rnd.randint(1, 16)):
            buf[rnd.randrange(len(buf))] = rnd.randrange(256)
    else:  # length / count fields blown up: byte-swap and set high bits at random
        for _ in range(rnd.randint(1, 4)):
            if buf:
                buf[rnd.randrange(len(buf))] |= 0xF0
    return bytes(buf)


@pytest.mark.timeout(30)
def test_mutated_vectors_never_kill_the_server(tmp_path: Path) -> None:
    vectors = _vectors()
    assert len(vectors["h02"]) > 20 and len(vectors["jt808"]) > 20
    pool = vectors["h02"] + vectors["jt808"]
    rnd = random.Random(20240808)
    with ServerProcess(tmp_path / "data") as server:
        sent = 0
        deadline = time.time() + 12
        for round_ in range(400):
            if time.time() > deadline:
                break
            protocol = rnd.choice(("h02", "jt808"))
            frames = [mutate(rnd, rnd.choice(vectors[protocol]), pool) for _ in range(rnd.randint(1, 30))]
            if rnd.random() < 0.3:  # a valid frame in between, so decoding goes on after the damage
                frames.insert(rnd.randrange(len(frames) + 1), rnd.choice(vectors[protocol]))
            try:
                with server.connect(protocol, timeout=2) as sock:
                    blob = b"".join(frames)
                    if rnd.random() < 0.5:  # arbitrary read boundaries
                        for k in range(0, len(blob), 7):
                            sock.sendall(blob[k : k + 7])
                    else:
                        sock.sendall(blob)
                    sent += len(frames)
                    sock.settimeout(0.05)
                    try:
                        sock.recv(65536)
                    except (TimeoutError, OSError):
                        pass
            except OSError:
                pass
            assert server.alive, f"the server died after round {round_}: {server.log()}"
        assert sent > 1000
        server.check_device_works(ident="7356666666")
        assert server.alive
        crashes = [line for line in server.log().splitlines() if "session" in line and "failed" in line]
        assert not crashes, f"sessions died on an exception (a codec bug): {crashes[:5]}"
