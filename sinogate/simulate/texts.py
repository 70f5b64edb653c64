"""What a Sinotrack answers to SMS-style command text (raw over GPRS, or in a JT808 0x8300)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class DeviceFacts:
    ident: str
    server: str
    port: int
    valid: bool
    satellites: int
    rssi: int
    relay_cut: bool
    interval: int = 30
    apn: str = "internet"


def config_text(f: DeviceFacts) -> str:
    return "\n".join(
        (
            "ST901(70SACD)_TQ_V_2.0 2024/06/07",
            f"ID:{f.ident}",
            f"IP:{f.server} {f.port}",
            f"UT:{f.interval},{f.interval},300",
            "VOLT:12.9V",
            f"APN:{f.apn}",
            f"GPS:{'A' if f.valid else 'V'}-{f.satellites}-{min(f.satellites + 7, 30)}",
            f"GSM:{f.rssi}",
            f"RELAY:{1 if f.relay_cut else 0}",
        )
    )


def answer(text: str, f: DeviceFacts) -> str:
    """The reply text for one command string such as ``RCONF``, ``8040000 1.2.3.4 5013``, ``RELAY,1#``."""
    cmd = text.strip().rstrip("#").strip()
    upper = cmd.upper()
    if upper in ("RCONF", "CXZT", "C10", "PARAM", "STATUS", "CONFIG"):
        return config_text(f)
    if upper in ("RESTART", "CQ", "RESET", "REBOOT"):
        return "RESTART OK!"
    if upper.startswith("WHERE") or upper.startswith("669"):
        return f"ID:{f.ident}\nGPS:{'A' if f.valid else 'V'}\n{config_text(f).splitlines()[-3]}"
    if upper.startswith("RELAY"):
        return "RELAY OK!"
    if upper.startswith("804"):
        parts = cmd.split()
        if len(parts) >= 3:
            return f"SET OK\nIP:{parts[1]} {parts[2]}"
        return "SET ERROR"
    if upper[:3].isdigit():
        return "SET OK"
    return f"UNKNOWN COMMAND:{cmd[:40]}"
