"""UDP listeners: one datagram is one message; a session per peer address, kept while it is active."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict

from sinogate.interfaces import TaskRunner
from sinogate.server.channels import Channel
from sinogate.server.session import Session, SessionServices

log = logging.getLogger("sinogate.udp")

MAX_UDP_PEERS = 10_000


class UdpSession(Session):
    transport_name = "udp"

    def __init__(self, services: SessionServices, channel: Channel, transport: asyncio.DatagramTransport,
                 addr: tuple[str, int]) -> None:
        super().__init__(services, channel, f"{addr[0]}:{addr[1]}")
        self.transport = transport
        self.addr = addr
        self.close_reason = "closed by the server"

    def send(self, data: bytes) -> None:
        if self.closed:
            raise ConnectionError("udp peer is gone")
        self.transport.sendto(data, self.addr)
        self.record_sent(data)

    def close(self, reason: str) -> None:
        self.closed = True
        self.close_reason = reason


class UdpListener(asyncio.DatagramProtocol):
    def __init__(self, services: SessionServices, channel: Channel, tasks: TaskRunner) -> None:
        self.services = services
        self.channel = channel
        self.tasks = tasks
        self.transport: asyncio.DatagramTransport | None = None
        self.sessions: OrderedDict[tuple[str, int], UdpSession] = OrderedDict()
        self._locks: dict[tuple[str, int], asyncio.Lock] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.tasks.spawn(self._handle(data, addr))

    async def _handle(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        session = self.sessions.get(addr)
        if session is not None and session.closed:  # closed by the server (garbage, refused ident…)
            del self.sessions[addr]
            self._forget(session, session.close_reason)
            session = None
        if session is None:
            guard = self.services.guard
            refused = guard.admit_udp(addr[0])
            if refused is not None:  # the datagram is dropped unanswered
                guard.hit("max_connections_per_peer", "udp %s datagram from %s:%s dropped: %s", self.channel.protocol,
                          addr[0], addr[1], refused)
                return
            session = UdpSession(self.services, self.channel, self.transport, addr)
            self.sessions[addr] = session
            self.services.registry.opened(session)
            await session.store_records(session.connect_records())
            while len(self.sessions) > MAX_UDP_PEERS:
                _, old = self.sessions.popitem(last=False)
                self._forget(old, f"udp peer table full ({MAX_UDP_PEERS} peers)")
        self.sessions.move_to_end(addr)
        lock = self._locks.setdefault(addr, asyncio.Lock())
        async with lock:  # datagrams of one peer are processed in arrival order
            try:
                replies = await session.process(data, time.time())
                if not session.closed:  # (closed meanwhile: garbage, a refused ident)
                    for reply in replies:
                        session.send(reply)
            except Exception:
                log.exception("udp %s %s: failed on datagram %s", self.channel.protocol, addr, data[:512].hex())

    def expire(self, idle_timeout: float, unidentified_timeout: float | None = None) -> None:
        """Forgets peers silent for ``idle_timeout`` s, and those that named no device within
        ``unidentified_timeout`` s."""
        now = time.time()
        for addr, session in list(self.sessions.items()):
            if now - session.last_active > idle_timeout:
                del self.sessions[addr]
                self._forget(session, f"udp idle for {idle_timeout:g} s")
            elif (unidentified_timeout is not None and session.ident is None
                  and now - session.opened > unidentified_timeout):
                del self.sessions[addr]
                self.services.guard.hit("unidentified_timeout", "udp %s peer %s named no device within %g s",
                                        self.channel.protocol, session.peer, unidentified_timeout)
                self._forget(session, f"udp peer named no device within {unidentified_timeout:g} s")

    def _forget(self, session: UdpSession, reason: str) -> None:
        self._locks.pop(session.addr, None)
        session.closed = True
        self.services.guard.release_udp(session.addr[0])
        session.codec.close(time.time())  # frees what the codec held (split messages)
        self.services.registry.detach(session)
        self.services.later.store_later(session.close_records(reason))
