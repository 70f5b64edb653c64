"""A simulated JT/T 808 terminal: register/auth, 0x0200 / 0x0704 reports, answers to 0x8xxx."""

from __future__ import annotations

import asyncio

from sinogate.simulate import frames_jt808 as jt
from sinogate.simulate import texts
from sinogate.simulate.config import SimConfig
from sinogate.simulate.device import SimDevice, Stats
from sinogate.simulate.route import Fix

BLIND_BATCH = 20  # items per 0x0704 blind-area batch (42 bytes each, stays under the 1023-byte body limit)
OK_RESULTS = (0, 4)


class HandshakeError(Exception):
    pass


class Jt808Device(SimDevice):
    protocol_name = "jt808"

    def __init__(self, index: int, ident: str, cfg: SimConfig, stats: Stats, wall_start: int) -> None:
        super().__init__(index, ident, cfg, stats, wall_start)
        self.v2019 = self.rng.random() < cfg.jt808_2019_share
        self.header = jt.Header(ident, self.v2019)
        self.imei = ("86" + ident)[:15].ljust(15, "0")
        self.splitter = jt.Jt808Splitter()
        self.serial = 0
        self.auth_code: bytes | None = None
        self.reg_waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.auth_waiter: tuple[int, asyncio.Future[int]] | None = None
        self.pending: dict[int, list[int]] = {}  # frame serial -> seqs of the positions it carries
        self.batch_buf: list[Fix] = []
        self.params: dict[int, bytes] = {
            0x0001: (60).to_bytes(4, "big"),
            0x0013: cfg.host.encode(),
            0x0018: cfg.jt808_port.to_bytes(4, "big"),
            0x0027: (300).to_bytes(4, "big"),
            0x0029: max(1, round(self.ts_step)).to_bytes(4, "big"),
            0x0055: (120).to_bytes(4, "big"),
        }

    @property
    def port(self) -> int:
        return self._port(1, self.cfg.jt808_port)

    def variant(self) -> str:
        return "2019" if self.v2019 else "2013"

    def wire_ident(self) -> str:
        return self.ident.rjust(20, "0") if self.v2019 else self.ident

    def pending_acks(self) -> int:
        return len(self.pending)

    def next_serial(self) -> int:
        s = self.serial
        self.serial = (s + 1) & 0xFFFF
        return s

    def frame(self, msg_id: int, body: bytes) -> tuple[int, bytes]:
        s = self.next_serial()
        return s, self.header.frame(msg_id, s, body)

    def send(self, msg_id: int, body: bytes) -> int:
        s, data = self.frame(msg_id, body)
        self.write(data)
        return s

    # --- positions ----------------------------------------------------------------------------
    def _location(self, fix: Fix) -> bytes:
        seq = self.record(fix)
        s, data = self.frame(0x0200, jt.location_body(fix, self.relay_cut))
        self.pending[s] = [seq]
        return data

    def _batch(self, fixes: list[Fix], blind: bool) -> bytes:
        seqs = [self.record(f) for f in fixes]
        s, data = self.frame(0x0704, jt.batch_body([jt.location_body(f, self.relay_cut) for f in fixes], blind))
        self.pending[s] = seqs
        return data

    def encode_positions(self, fixes: list[Fix], backlog: bool) -> bytes:
        if backlog:
            return b"".join(
                self._batch(fixes[i : i + BLIND_BATCH], True) for i in range(0, len(fixes), BLIND_BATCH)
            )
        size = self.cfg.jt808_batch
        if size <= 1:
            return b"".join([self._location(f) for f in fixes])
        self.batch_buf.extend(fixes)
        out: list[bytes] = []
        while len(self.batch_buf) >= size:
            chunk, self.batch_buf = self.batch_buf[:size], self.batch_buf[size:]
            out.append(self._batch(chunk, False))
        return b"".join(out)

    def flush(self) -> None:
        if self.ready and self.batch_buf:
            chunk, self.batch_buf = self.batch_buf, []
            self.write(self._location(chunk[0]) if len(chunk) == 1 else self._batch(chunk, False))

    def heartbeat_frame(self) -> bytes:
        return self.frame(0x0002, b"")[1]

    # --- session --------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.splitter = jt.Jt808Splitter()
        self.pending.clear()  # answers to frames from the previous connection will not come

    async def handshake(self) -> None:
        loop = asyncio.get_running_loop()
        timeout = self.cfg.connect_timeout
        if not self.cfg.handshake:
            self.send(0x0102, jt.auth_body(self.auth_code or self.ident.encode(), self.v2019, imei=self.imei))
            return
        if self.auth_code is None:
            self.reg_waiter = loop.create_future()
            self.send(0x0100, jt.register_body(self.ident, self.v2019))
            try:
                result, code = await asyncio.wait_for(self.reg_waiter, timeout)
            except TimeoutError:
                raise HandshakeError("no 0x8100 to the registration") from None
            if result not in (0, 1, 3):
                raise HandshakeError(f"registration refused, result {result}")
            self.auth_code = code or self.ident.encode()
        fut: asyncio.Future[int] = loop.create_future()
        serial = self.send(0x0102, jt.auth_body(self.auth_code, self.v2019, imei=self.imei))
        self.auth_waiter = (serial, fut)
        try:
            result = await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise HandshakeError("no 0x8001 to the authentication") from None
        if result != 0:
            self.auth_code = None
            raise HandshakeError(f"authentication refused, result {result}")

    def on_data(self, data: bytes) -> None:
        for msg in self.splitter.feed(data):
            f = msg.fields
            if msg.msg_id == 0x8001 and "serial" in f:
                serial = f["serial"]
                aw = self.auth_waiter
                if aw is not None and aw[0] == serial and f.get("msg_id") == 0x0102:
                    if not aw[1].done():
                        aw[1].set_result(int(f["result"]))  # type: ignore[call-overload]
                    self.auth_waiter = None
                    continue
                seqs = self.pending.pop(serial, None)  # type: ignore[call-overload]
                if seqs is not None and f["result"] in OK_RESULTS:
                    for seq in seqs:
                        self.ack(seq)
            elif msg.msg_id == 0x8100:
                w = self.reg_waiter
                if w is not None and not w.done():
                    w.set_result((int(f.get("result", 2)), bytes(f.get("auth", b""))))  # type: ignore[call-overload]
            else:
                self.on_command(msg)

    # --- commands -------------------------------------------------------------------------------
    def on_command(self, msg: jt.Downlink) -> None:
        rec = self.new_command(msg.body.hex(), f"0x{msg.msg_id:04X}")
        f = msg.fields
        answers: list[tuple[int, bytes, str]] = []

        def general(result: int) -> None:
            answers.append((0x0001, jt.general_response_body(msg.serial, msg.msg_id, result), f"0x0001:{result}"))

        mid = msg.msg_id
        if mid == 0x8103:
            self.params.update(f.get("params", {}))  # type: ignore[call-overload]
            general(0)
        elif mid in (0x8104, 0x8106):
            if mid == 0x8104:
                general(0)
                chosen = self.params
            else:
                ids: list[int] = f.get("ids", [])  # type: ignore[assignment]
                chosen = {i: self.params.get(i, b"\0\0\0\0") for i in ids}
            answers.append((0x0104, jt.params_answer_body(msg.serial, chosen), f"0x0104:{len(chosen)}"))
        elif mid == 0x8105:
            cmd = int(f.get("command", 0))  # type: ignore[call-overload]
            if cmd in (0xF0, 0x64):
                self.relay_cut = True
            elif cmd in (0xF1, 0x65):
                self.relay_cut = False
            general(0)
        elif mid == 0x8300:
            general(0)
            text = texts.answer(str(f.get("text", "")), self.facts())
            answers.append((0x6006, jt.text_report_body(text), "0x6006:" + text))
        elif mid == 0x8201:
            body = msg.serial.to_bytes(2, "big") + jt.location_body(self.next_fix(), self.relay_cut)
            answers.append((0x0201, body, "0x0201"))
        else:
            general(3)  # not supported
        for answer_id, body, label in answers:
            self.send(answer_id, body)
            rec.answers.append(label)
        rec.answered = True
