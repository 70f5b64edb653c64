"""UDP listeners: one datagram is one message; a session per peer address, kept while it is active."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from typing import TYPE_CHECKING

from sinogate.server.session import Session

if TYPE_CHECKING:
    from sinogate.server.gateway import Gateway

log = logging.getLogger("sinogate.udp")

MAX_UDP_PEERS = 10_000


class UdpSession(Session):
    transport_name = "udp"

    def __init__(self, gateway: Gateway, protocol: str, transport: asyncio.DatagramTransport, addr: tuple) -> None:
        super().__init__(gateway, protocol, f"{addr[0]}:{addr[1]}")
        self.transport = transport
        self.addr = addr

    def send(self, data: bytes) -> None:
        if self.closed:
            raise ConnectionError("udp peer is gone")
        self.transport.sendto(data, self.addr)
        self.record_sent(data)

    def close(self, reason: str) -> None:
        self.closed = True


class UdpListener(asyncio.DatagramProtocol):
    def __init__(self, gateway: Gateway, protocol: str) -> None:
        self.gateway = gateway
        self.protocol = protocol
        self.transport: asyncio.DatagramTransport | None = None
        self.sessions: OrderedDict[tuple, UdpSession] = OrderedDict()
        self._locks: dict[tuple, asyncio.Lock] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self.gateway.spawn(self._handle(data, addr))

    async def _handle(self, data: bytes, addr: tuple) -> None:
        assert self.transport is not None
        session = self.sessions.get(addr)
        if session is None or session.closed:
            session = UdpSession(self.gateway, self.protocol, self.transport, addr)
            self.sessions[addr] = session
            await self.gateway.store.ingest(session.connect_records())
            while len(self.sessions) > MAX_UDP_PEERS:
                _, old = self.sessions.popitem(last=False)
                self._forget(old, f"udp peer table full ({MAX_UDP_PEERS} peers)")
        self.sessions.move_to_end(addr)
        lock = self._locks.setdefault(addr, asyncio.Lock())
        async with lock:  # datagrams of one peer are processed in arrival order
            try:
                replies = await session.process(data, time.time())
                for reply in replies:
                    session.send(reply)
            except Exception:
                log.exception("udp %s %s: failed on datagram %s", self.protocol, addr, data[:512].hex())

    def expire(self, idle_timeout: float) -> None:
        now = time.time()
        for addr, session in list(self.sessions.items()):
            if now - session.last_active > idle_timeout:
                del self.sessions[addr]
                self._forget(session, f"udp idle for {idle_timeout:g} s")

    def _forget(self, session: UdpSession, reason: str) -> None:
        self._locks.pop(session.addr, None)
        self.gateway.detach(session)
        self.gateway.store_later(session.close_records(reason))
