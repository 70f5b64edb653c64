"""A simulated Sinotrack speaking H02: V1 text and ``$`` binary positions, V4/SMS/LINK answers."""

from __future__ import annotations

import asyncio
import time
from collections import deque

from sinogate.simulate import frames_h02 as h02
from sinogate.simulate import texts
from sinogate.simulate.clock import hhmmss
from sinogate.simulate.config import SimConfig
from sinogate.simulate.device import SimDevice, Stats
from sinogate.simulate.route import Fix

FULL_V4 = frozenset({"S71", "S32", "SCF", "S14", "S17", "S23", "S24", "D1", "S1"})


class H02Device(SimDevice):
    protocol_name = "h02"

    def __init__(self, index: int, ident: str, cfg: SimConfig, stats: Stats, wall_start: int) -> None:
        super().__init__(index, ident, cfg, stats, wall_start)
        self.binary_long = self.rng.random() < cfg.binary_long_share
        self.splitter = h02.H02Splitter()
        self.v1_fifo: deque[int] = deque()  # seqs of V1 frames waiting for "V4,V1"
        self.bin_fifo: deque[int] = deque()  # seqs of '$' frames waiting for an R12 (if the server acks)

    @property
    def port(self) -> int:
        return self._port(0, self.cfg.h02_port)

    def variant(self) -> str:
        if self.cfg.binary_share <= 0:
            return "text"
        return "text+bin45" if self.binary_long else "text+bin32"

    def pending_acks(self) -> int:
        return len(self.v1_fifo)

    def encode_positions(self, fixes: list[Fix], backlog: bool) -> bytes:
        out: list[bytes] = []
        share = self.cfg.binary_share
        rnd = self.rng.random
        ident = self.ident
        cut = self.relay_cut
        for fix in fixes:
            seq = self.record(fix)
            if share > 0 and rnd() < share:
                out.append(h02.binary(ident, fix, long=self.binary_long, relay_cut=cut, seq=seq))
                self.bin_fifo.append(seq)
            else:
                out.append(h02.v1(ident, fix, cut))
                self.v1_fifo.append(seq)
        return b"".join(out)

    def heartbeat_frame(self) -> bytes:
        return h02.htbt(self.ident, 100)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.splitter = h02.H02Splitter()
        # Frames written on the previous connection will never be answered now.
        self.v1_fifo.clear()
        self.bin_fifo.clear()

    def on_data(self, data: bytes) -> None:
        for inc in self.splitter.feed(data):
            kind = inc.kind
            if kind == "V4" and len(inc.fields) > 3 and inc.fields[3] == "V1":
                if self.v1_fifo:
                    self.ack(self.v1_fifo.popleft())
            elif kind == "R12":
                if self.bin_fifo:
                    self.ack(self.bin_fifo.popleft())
            elif kind in ("HTBT", "V0", "V4"):
                pass  # heartbeat echo / other confirmations
            else:
                self.on_command(inc)

    def on_command(self, inc: h02.Incoming) -> None:
        rec = self.new_command(inc.text if not inc.fields else "*" + inc.text + "#", inc.kind or "text")
        f = inc.fields
        if not f:
            rec.kind = inc.text.split()[0][:16] if inc.text.split() else "text"
            reply = h02.sms(self.ident, texts.answer(inc.text, self.facts()))
        else:
            cmd = f[2]
            cmd_time = f[3] if len(f) > 3 and f[3] else hhmmss(int(time.time()))
            args = f[4:]
            if cmd == "S20":
                if len(args) >= 2:
                    self.relay_cut = args[1] == "1"
                fix = self.next_fix()
                reply = h02.v4_full(self.ident, "S20", ["DONE"], cmd_time, fix, self.relay_cut)
            elif cmd in FULL_V4:
                reply = h02.v4_full(self.ident, cmd, args, cmd_time, self.next_fix(), self.relay_cut)
            elif cmd == "S26":
                reply = h02.link(self.ident, self.next_fix())
            else:  # anything else: the short acknowledgement
                reply = h02.v4_short(self.ident, cmd, cmd_time, args)
        rec.answers.append(reply.decode("latin-1"))
        rec.answered = True
        self.write(reply)
