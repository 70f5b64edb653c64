"""JT/T 808 terminal parameters (0x8103 / 0x8104 / 0x0104): value types and message names."""

from __future__ import annotations

DWORD, WORD, BYTE, STRING = "DWORD", "WORD", "BYTE", "STRING"

# param id → (type, message name or None)
PARAMS: dict[int, tuple[str, str | None]] = {
    0x0001: (DWORD, "config.heartbeat.interval"),
    0x0002: (DWORD, None),  # TCP reply timeout
    0x0003: (DWORD, None),  # TCP retransmissions
    0x0004: (DWORD, None),
    0x0005: (DWORD, None),
    0x0006: (DWORD, None),
    0x0007: (DWORD, None),
    0x0010: (STRING, "config.apn"),
    0x0011: (STRING, None),
    0x0012: (STRING, None),
    0x0013: (STRING, "config.server.host"),
    0x0014: (STRING, None),
    0x0015: (STRING, None),
    0x0016: (STRING, None),
    0x0017: (STRING, None),  # backup server
    0x0018: (DWORD, "config.server.port"),
    0x0019: (DWORD, None),  # UDP port
    0x001A: (STRING, None),
    0x001B: (DWORD, None),
    0x001C: (DWORD, None),
    0x001D: (STRING, None),
    0x0020: (DWORD, None),  # reporting strategy
    0x0021: (DWORD, None),  # reporting scheme
    0x0022: (DWORD, None),
    0x0027: (DWORD, "config.report.sleep.interval"),
    0x0028: (DWORD, "config.report.alarm.interval"),
    0x0029: (DWORD, "config.report.interval"),
    0x002C: (DWORD, None),
    0x002D: (DWORD, None),
    0x002E: (DWORD, None),
    0x002F: (DWORD, None),
    0x0030: (DWORD, None),
    0x0031: (WORD, None),
    **{i: (STRING, None) for i in range(0x0040, 0x0045)},
    0x0045: (DWORD, None),
    0x0046: (DWORD, None),
    0x0047: (DWORD, None),
    0x0048: (STRING, None),
    0x0049: (STRING, None),
    **{i: (DWORD, None) for i in range(0x0050, 0x005B)},
    0x0055: (DWORD, "config.speed.limit"),
    0x005B: (WORD, None),
    0x005C: (WORD, None),
    0x005D: (WORD, None),
    0x005E: (WORD, None),
    0x0064: (DWORD, None),
    0x0065: (DWORD, None),
    **{i: (DWORD, None) for i in range(0x0070, 0x0075)},
    0x0080: (DWORD, None),
    0x0081: (WORD, None),
    0x0082: (WORD, None),
    0x0083: (STRING, None),
    0x0084: (BYTE, None),
    0x0090: (BYTE, None),
    0x0091: (BYTE, None),
    0x0092: (BYTE, None),
    0x0093: (DWORD, None),
    0x0094: (BYTE, None),
    0x0095: (DWORD, None),
    0x0100: (DWORD, None),
    0x0101: (WORD, None),
    0x0102: (DWORD, None),
    0x0103: (WORD, None),
}

SIZES = {DWORD: 4, WORD: 2, BYTE: 1}


def param_type(pid: int) -> str | None:
    entry = PARAMS.get(pid)
    return entry[0] if entry else None
