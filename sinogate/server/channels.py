"""A channel is a listener: one protocol on one port (TCP, and UDP when enabled).

flespi's word: a device connects to a channel. Several channels may speak the same protocol
(one port per customer, say). Ids are stable: the default channels keep the protocol's id
(H02 1, JT/T 808 2), configured ones take theirs from the ``listeners`` list.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Channel:
    id: int
    name: str
    protocol: str
    protocol_id: int
    host: str
    port: int  # as configured; 0 asks the system for a free port
    udp: bool = True
    auto_register: bool = True
    bound: int | None = field(default=None)  # the port actually bound, once listening
    # A frame naming another ident on an identified connection: refused (False), or the connection
    # follows the new ident (True; e.g. a concentrator forwarding several devices on one socket).
    follow_ident: bool = False
    # New devices one connection may auto-register (more for a concentrator that follows idents).
    register_per_connection: int = 1

    @property
    def transports(self) -> list[str]:
        return ["tcp", "udp"] if self.udp else ["tcp"]
