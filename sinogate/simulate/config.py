"""Simulator configuration, deterministic idents and the run summary."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

Protocol = Literal["h02", "jt808", "mixed"]

DEFAULT_PORTS = {"h02": 5013, "jt808": 5015}


@dataclass(slots=True)
class SimConfig:
    host: str = "127.0.0.1"
    h02_port: int = DEFAULT_PORTS["h02"]
    jt808_port: int = DEFAULT_PORTS["jt808"]
    protocol: Protocol = "h02"
    devices: int = 10
    rate: float = 1.0  # position messages per second per device
    duration: float = 10.0  # seconds of sending; 0 = until cancelled
    binary_share: float = 0.0  # H02: share of positions sent as binary '$' frames
    binary_long_share: float = 0.5  # H02: share of devices whose '$' frames are 45 bytes (else 32)
    jt808_2019_share: float = 0.0  # JT808: share of devices using the 2019 header
    jt808_batch: int = 0  # JT808: send positions as 0x0704 batches of this many (0 = one 0x0200 each)
    seed: int = 1
    ident_offset: int = 0
    connect_concurrency: int = 200
    connect_timeout: float = 10.0
    reconnect_storm: float | None = None  # seconds into the run when every device drops and reconnects
    storm_offline: float = 2.0  # seconds the devices stay offline during the storm
    drain_timeout: float = 3.0  # seconds to wait for outstanding acks after the last message
    heartbeat: float = 60.0  # seconds between heartbeats on an otherwise idle connection
    alarm_rate: float = 0.002  # per position
    tick: float = 0.02  # scheduler resolution in seconds
    max_offline: int = 10_000  # positions buffered per device while disconnected
    record_sent: bool = True  # keep the (timestamp, seq) list per device
    # More servers (nodes of a cluster without a balancer in front): (h02 port, jt808 port) each;
    # device i talks to spread[i % len] (and h02_port/jt808_port are unused).
    spread: list[tuple[int, int]] = field(default_factory=list)
    handshake: bool = True  # JT808: wait for 0x8100/0x8001 before reporting (off for a server that never answers)


def h02_ident(seed: int, k: int) -> str:
    """10-digit Sinotrack-style id: ``734SS`` + 5 digits for the first 100,000 (``73400xxxxx`` for seed 0)."""
    return str(7_340_000_000 + (seed % 100) * 100_000 + k)


def jt808_phone(seed: int, k: int) -> str:
    """12-digit terminal number ``138SS`` + 7 digits, no leading zero, so the ident a server derives
    from the BCD field (zeros stripped) is the same string in 2013 and 2019 headers."""
    return str(138_000_000_000 + (seed % 100) * 10_000_000 + k)


def device_plan(cfg: SimConfig) -> list[tuple[str, str]]:
    """(protocol, ident) for each device index, deterministic from seed and ident offset."""
    plan: list[tuple[str, str]] = []
    for i in range(cfg.devices):
        proto = cfg.protocol if cfg.protocol != "mixed" else ("h02" if i % 2 == 0 else "jt808")
        k = cfg.ident_offset + i
        plan.append((proto, h02_ident(cfg.seed, k) if proto == "h02" else jt808_phone(cfg.seed, k)))
    return plan


@dataclass(slots=True)
class CommandRecord:
    time: float
    received: str  # text for H02, hex for JT808
    kind: str  # e.g. "S20", "RCONF", "0x8105"
    answers: list[str] = field(default_factory=list)
    answered: bool = False


@dataclass(slots=True)
class DeviceSummary:
    ident: str
    protocol: str
    variant: str  # "text", "text+bin32", "text+bin45", "2013", "2019"
    wire_ident: str
    sent: int
    acked: int
    sent_messages: list[tuple[int, int]]  # (device timestamp, seq)
    unacked_seqs: list[int]
    commands: list[CommandRecord]
    connects: int
    errors: int
    last_error: str | None = None


@dataclass(slots=True)
class Summary:
    config: dict[str, Any]
    started_at: float
    ended_at: float
    sending_seconds: float
    connected: int
    sent: int
    acked: int
    errors: int
    commands: int
    bytes_sent: int
    devices: list[DeviceSummary]

    @property
    def msgs_per_s(self) -> float:
        return self.sent / self.sending_seconds if self.sending_seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["msgs_per_s"] = round(self.msgs_per_s, 1)
        return d

    def write_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), separators=(",", ":")))


def load_summary(path: str | Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(Path(path).read_text())
    return data
