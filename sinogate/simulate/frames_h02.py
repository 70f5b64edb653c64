"""H02 frames as a Sinotrack device sends them, and a splitter for what the server sends back.

Device → server: text ``V1`` positions, binary ``$`` positions (32 or 45 bytes), ``V4`` command
confirmations (full, with a position, and short, without), ``SMS`` text replies, ``LINK`` status,
``HTBT`` heartbeats. Server → device: ``V4,V1`` replies, ``R12`` acks, ``HTBT`` echoes, ``*HQ``
commands and raw SMS-style command text (``RCONF``, ``CXZT``, ``8040000 1.2.3.4 5013``, ...).
"""

from __future__ import annotations

from dataclasses import dataclass

from sinogate.simulate.clock import civil
from sinogate.simulate.route import Fix

KNOTS_PER_KMH = 1 / 1.852

# Status word bits (active low: a cleared bit means the condition is active).
BIT_SOS = 18
BIT_ACC = 10  # cleared = ACC off
BIT_POWER_CUT = 19
BIT_RELAY = 27  # cleared = oil/power cut relay engaged
ALL_ONES = 0xFFFFFFFF


def status_word(fix: Fix, relay_cut: bool = False) -> int:
    st = ALL_ONES
    if not fix.ignition:
        st &= ~(1 << BIT_ACC)
    if fix.sos:
        st &= ~(1 << BIT_SOS)
    if fix.power_cut:
        st &= ~(1 << BIT_POWER_CUT)
    if relay_cut:
        st &= ~(1 << BIT_RELAY)
    return st & ALL_ONES


def _dm(value: float) -> tuple[int, int, int]:
    """|value| degrees → (degrees, whole minutes, 1/10000 minutes)."""
    total = round(abs(value) * 600_000)
    deg, rem = divmod(total, 600_000)
    return deg, rem // 10_000, rem % 10_000


def lat_text(lat: float) -> str:
    d, m, f = _dm(lat)
    return f"{d:02d}{m:02d}.{f:04d},{'N' if lat >= 0 else 'S'}"


def lon_text(lon: float) -> str:
    d, m, f = _dm(lon)
    return f"{d:03d}{m:02d}.{f:04d},{'E' if lon >= 0 else 'W'}"


def position_tail(fix: Fix, relay_cut: bool = False) -> str:
    """``HHMMSS,A,lat,N,lon,E,speed,course,DDMMYY,STATUS`` — the part every position shares."""
    y, mo, d, hh, mi, ss = civil(fix.ts)
    return (
        f"{hh:02d}{mi:02d}{ss:02d},{'A' if fix.valid else 'V'},{lat_text(fix.lat)},{lon_text(fix.lon)},"
        f"{fix.speed_kmh * KNOTS_PER_KMH:06.2f},{fix.course:03d},{d:02d}{mo:02d}{y % 100:02d},"
        f"{status_word(fix, relay_cut):08X}"
    )


def v1(ident: str, fix: Fix, relay_cut: bool = False) -> bytes:
    return f"*HQ,{ident},V1,{position_tail(fix, relay_cut)}#".encode()


def v4_full(ident: str, cmd: str, args: list[str], cmd_time: str, fix: Fix, relay_cut: bool = False) -> bytes:
    """``*HQ,id,V4,CMD,args...,hhmmss,<position>#`` — confirmation that carries a position."""
    mid = ",".join([cmd, *args, cmd_time])
    return f"*HQ,{ident},V4,{mid},{position_tail(fix, relay_cut)}#".encode()


def v4_short(ident: str, cmd: str, cmd_time: str, args: list[str]) -> bytes:
    """``*HQ,id,V4,CMD,hhmmss,args...#`` — the short ack some firmwares send (no position)."""
    return ("*HQ," + ",".join([ident, "V4", cmd, cmd_time, *args]) + "#").encode()


def sms(ident: str, text: str) -> bytes:
    return f"*HQ,{ident},SMS,{text.replace('#', ' ')}#".encode()


def htbt(ident: str, battery: int = 100) -> bytes:
    return f"*HQ,{ident},HTBT,{battery}#".encode()


def link(ident: str, fix: Fix, battery: int = 100, steps: int = 0, turnovers: int = 0) -> bytes:
    y, mo, d, hh, mi, ss = civil(fix.ts)
    return (
        f"*HQ,{ident},LINK,{hh:02d}{mi:02d}{ss:02d},{fix.rssi},{fix.satellites},{battery},{steps},"
        f"{turnovers},{d:02d}{mo:02d}{y % 100:02d},{status_word(fix):08X}#"
    ).encode()


def binary(ident: str, fix: Fix, *, long: bool = False, relay_cut: bool = False, seq: int = 0) -> bytes:
    """A ``$`` frame: 32 bytes, or 45 with the CSQ/satellites/mileage/cell trailer."""
    y, mo, d, hh, mi, ss = civil(fix.ts)
    ld, lm, lf = _dm(fix.lat)
    od, om, of = _dm(fix.lon)
    flags = (0x8 if fix.lon >= 0 else 0) | (0x4 if fix.lat >= 0 else 0) | (0x2 if fix.valid else 0)
    knots = min(999, round(fix.speed_kmh * KNOTS_PER_KMH))
    hexs = (
        f"{ident[-10:]:0>10}{hh:02d}{mi:02d}{ss:02d}{d:02d}{mo:02d}{y % 100:02d}"
        f"{ld:02d}{lm:02d}{lf:04d}06{od:03d}{om:02d}{of:04d}{flags:x}"
        f"{knots:03d}{fix.course:03d}{status_word(fix, relay_cut):08x}ff"
    )
    if long:
        hexs += (
            f"00{fix.rssi:02x}{fix.satellites if fix.valid else 0:02x}"
            f"{int(fix.odometer_m / 1000) & 0xFFFFFFFF:08x}01cc00262b0f17{seq & 0xFF:02x}"
        )
    else:
        hexs += "0000"
    return b"$" + bytes.fromhex(hexs)


# --- server → device -------------------------------------------------------------------------


@dataclass(slots=True)
class Incoming:
    """One server → device unit: a ``*XX,...#`` sentence (``fields``) or raw command text."""

    text: str
    fields: list[str]  # empty for raw text

    @property
    def kind(self) -> str:
        return self.fields[2] if len(self.fields) > 2 else ""


class H02Splitter:
    """Splits the server's byte stream into sentences and raw text commands."""

    __slots__ = ("buf",)

    def __init__(self) -> None:
        self.buf = b""

    def feed(self, data: bytes) -> list[Incoming]:
        buf = self.buf + data
        out: list[Incoming] = []
        while buf:
            if buf[:1] == b"*":
                end = buf.find(b"#")
                if end < 0:
                    if len(buf) > 4096:  # no terminator in sight: drop it
                        buf = b""
                    break
                text = buf[1:end].decode("latin-1").strip()
                buf = buf[end + 1 :]
                out.append(Incoming(text=text, fields=text.split(",")))
                continue
            # Raw command text: runs to '#', the next '*', or the end of this read.
            stops = [i for i in (buf.find(b"#"), buf.find(b"*")) if i >= 0]
            end = min(stops) if stops else len(buf)
            text = buf[:end].decode("latin-1").strip(" \r\n\t\0")
            buf = buf[end + 1 :] if end < len(buf) and buf[end : end + 1] == b"#" else buf[end:]
            if text:
                out.append(Incoming(text=text, fields=[]))
        self.buf = buf
        return out
