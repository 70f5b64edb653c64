"""A tiny H02 + JT/T 808 server for the simulator tests: acks like the real server, counts positions,
records what the devices answer, and can push commands. Deliberately independent of sinogate.codecs."""

from __future__ import annotations

import asyncio
import struct
import time
from collections import defaultdict
from dataclasses import dataclass, field


def _xor(data: bytes) -> int:
    x = 0
    for b in data:
        x ^= b
    return x


def jt_frame(msg_id: int, phone_raw: bytes, v2019: bool, serial: int, body: bytes) -> bytes:
    if v2019:
        head = struct.pack(">HHB", msg_id, len(body) | 0x4000, 1) + phone_raw + struct.pack(">H", serial)
    else:
        head = struct.pack(">HH", msg_id, len(body)) + phone_raw + struct.pack(">H", serial)
    raw = head + body
    raw += bytes((_xor(raw),))
    return b"\x7e" + raw.replace(b"\x7d", b"\x7d\x01").replace(b"\x7e", b"\x7d\x02") + b"\x7e"


@dataclass
class FakeServer:
    r12: bool = False  # answer binary H02 frames with R12
    positions: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    timestamps: dict[str, list[bytes]] = field(default_factory=lambda: defaultdict(list))
    answers: dict[str, list[bytes]] = field(default_factory=lambda: defaultdict(list))
    bad_checksums: int = 0
    conns: dict[str, tuple[asyncio.StreamWriter, str, bytes, bool]] = field(default_factory=dict)
    h02_port: int = 0
    jt808_port: int = 0
    _servers: list[asyncio.Server] = field(default_factory=list)
    _serial: int = 0

    async def start(self) -> None:
        h = await asyncio.start_server(self._h02, "127.0.0.1", 0)
        j = await asyncio.start_server(self._jt808, "127.0.0.1", 0)
        self._servers = [h, j]
        self.h02_port = h.sockets[0].getsockname()[1]
        self.jt808_port = j.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        for s in self._servers:
            s.close()
        for w, *_ in self.conns.values():
            w.close()

    # --- commands ------------------------------------------------------------------------
    def send_h02(self, ident: str, data: bytes) -> None:
        self.conns[ident][0].write(data)

    def send_jt808(self, ident: str, msg_id: int, body: bytes) -> None:
        w, _, phone_raw, v2019 = self.conns[ident]
        self._serial += 1
        w.write(jt_frame(msg_id, phone_raw, v2019, self._serial, body))

    # --- H02 ---------------------------------------------------------------------------------
    async def _h02(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buf = b""
        blen: int | None = None
        try:
            while data := await reader.read(65536):
                buf += data
                out: list[bytes] = []
                while buf:
                    c = buf[:1]
                    if c == b"*":
                        end = buf.find(b"#")
                        if end < 0:
                            break
                        text, buf = buf[1:end].decode("latin-1"), buf[end + 1 :]
                        f = text.split(",")
                        ident, kind = f[1], f[2]
                        self.conns[ident] = (writer, "h02", b"", False)
                        if kind == "V1":
                            self.positions[ident] += 1
                            self.timestamps[ident].append((f[3] + f[11]).encode())
                            out.append(f"*HQ,{ident},V4,V1,{time.strftime('%Y%m%d%H%M%S', time.gmtime())}#".encode())
                        elif kind == "HTBT":
                            out.append(f"*HQ,{ident},HTBT#".encode())
                        else:
                            self.answers[ident].append(b"*" + text.encode("latin-1") + b"#")
                    elif c == b"$":
                        if blen is None:
                            if len(buf) >= 33 and buf[32:33] in (b"*", b"$"):
                                blen = 32
                            elif len(buf) >= 45:
                                blen = 45
                            else:
                                break
                        if len(buf) < blen:
                            break
                        frame, buf = buf[:blen], buf[blen:]
                        ident = frame[1:6].hex()
                        self.positions[ident] += 1
                        self.timestamps[ident].append(frame[6:12])
                        if self.r12:
                            out.append(f"*HQ,{ident},R12,{time.strftime('%H%M%S', time.gmtime())}#".encode())
                    else:
                        buf = buf[1:]
                if out:
                    writer.write(b"".join(out))
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    # --- JT/T 808 ------------------------------------------------------------------------------
    async def _jt808(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buf = b""
        try:
            while data := await reader.read(65536):
                buf += data
                out: list[bytes] = []
                while True:
                    s = buf.find(b"\x7e")
                    e = buf.find(b"\x7e", s + 1) if s >= 0 else -1
                    if e < 0:
                        break
                    raw = buf[s + 1 : e].replace(b"\x7d\x02", b"\x7e").replace(b"\x7d\x01", b"\x7d")
                    buf = buf[e + 1 :]
                    if len(raw) < 13:
                        continue
                    if _xor(raw[:-1]) != raw[-1]:
                        self.bad_checksums += 1
                    msg_id, props = struct.unpack_from(">HH", raw)
                    v2019 = bool(props & 0x4000)
                    phone_raw = raw[5:15] if v2019 else raw[4:10]
                    off = 17 if v2019 else 12
                    serial = struct.unpack_from(">H", raw, off - 2)[0]
                    body = raw[off:-1]
                    ident = phone_raw.hex().lstrip("0").rjust(12, "0")
                    self.conns[ident] = (writer, "jt808", phone_raw, v2019)

                    def reply(
                        mid: int, b: bytes, phone_raw: bytes = phone_raw, v2019: bool = v2019, out: list[bytes] = out
                    ) -> None:
                        self._serial += 1
                        out.append(jt_frame(mid, phone_raw, v2019, self._serial, b))

                    if msg_id == 0x0100:
                        reply(0x8100, struct.pack(">HB", serial, 0) + b"AUTH" + ident.encode())
                    elif msg_id == 0x0001:
                        self.answers[ident].append(raw)
                    else:
                        if msg_id == 0x0200:
                            self.positions[ident] += 1
                            self.timestamps[ident].append(body[22:28])
                        elif msg_id == 0x0704:
                            count = struct.unpack_from(">H", body)[0]
                            self.positions[ident] += count
                            pos = 3
                            for _ in range(count):
                                ln = struct.unpack_from(">H", body, pos)[0]
                                self.timestamps[ident].append(body[pos + 2 + 22 : pos + 2 + 28])
                                pos += 2 + ln
                        elif msg_id in (0x0104, 0x6006):
                            self.answers[ident].append(raw)
                        reply(0x8001, struct.pack(">HHB", serial, msg_id, 0))
                if out:
                    writer.write(b"".join(out))
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
