"""``sinogate decode``: paste captures from any server's log, get sinogate's messages and replies."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import typer


def decode_line(line: str, protocol: str, now: float, time_offset: float | None = None) -> dict[str, Any]:
    """One capture line as a fresh connection. ``time_offset``: hours the device clock is ahead of
    UTC, applied the way the server applies a device's fixed ``time_offset`` setting (``None``: the
    protocol's zone, as for a device left at ``auto`` before any offset is detected)."""
    from sinogate.codecs import DeviceSettings, connection_class
    from sinogate.imports.logs import capture_bytes

    out: dict[str, Any] = {"messages": [], "replies": [], "errors": []}
    try:
        data = capture_bytes(line, protocol)
    except ValueError as exc:
        out["errors"].append(str(exc))
        return out
    settings = DeviceSettings(time_offset=time_offset)
    conn = connection_class(protocol)(settings=lambda _ident: settings)
    try:
        frames = conn.feed(data, now)
    except Exception as exc:  # the codec promises not to raise; if it does, report, don't crash
        out["errors"].append(f"decoder failure: {type(exc).__name__}: {exc}")
        return out
    for frame in [*frames, *conn.close(now)]:  # each line is a whole connection: flush what is held
        out["messages"].extend(frame.messages)
        out["replies"].extend(r.hex() for r in frame.replies)
        out["errors"].extend(frame.errors)
    return out


def _pretty(result: dict[str, Any], line: str, out: TextIO) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(file=out)
    console.rule(line.strip()[:100])
    for i, message in enumerate(result["messages"]):
        table = Table(title=f"message {i + 1}: {message.get('message.type', '?')}", show_header=False)
        for key, value in message.items():
            table.add_row(key, json.dumps(value, ensure_ascii=False))
        console.print(table)
    for reply in result["replies"]:
        raw = bytes.fromhex(reply)
        shown = raw.decode("latin-1") if raw[:1] == b"*" else reply
        console.print(f"[green]reply[/green] {shown}")
    for error in result["errors"]:
        console.print(f"[red]error[/red] {error}")


def register(app: typer.Typer) -> None:
    @app.command()
    def decode(
        file: Path | None = typer.Argument(None, help="File with one capture per line (stdin when omitted)"),
        protocol: str = typer.Option(..., "--protocol", "-p", help="h02 or jt808"),
        pretty: bool = typer.Option(False, "--pretty", help="Tables for humans instead of JSON lines"),
        time_offset: float | None = typer.Option(
            None, "--time-offset", help="Hours the device clock is ahead of UTC (e.g. 8 for a unit set to "
                                        "GMT+8), applied as the server applies a device's time_offset setting; "
                                        "default: the protocol's zone (H02 UTC, JT/T 808 GMT+8)"),
    ) -> None:
        """Decode captures: one JSON line {"messages", "replies", "errors"} per input line."""
        from sinogate.codecs import PROTOCOLS

        if protocol not in PROTOCOLS:
            typer.echo(f"unknown protocol {protocol!r}; use one of {', '.join(PROTOCOLS)}", err=True)
            raise typer.Exit(2)
        try:
            source = open(file, encoding="utf-8", errors="replace") if file else sys.stdin  # noqa: SIM115
        except OSError as exc:
            typer.echo(f"error: cannot read {file}: {exc.strerror or exc}", err=True)
            raise typer.Exit(2) from exc
        with source:
            for line in source:
                if not line.strip():
                    continue
                result = decode_line(line, protocol, time.time(), time_offset)
                if pretty:
                    _pretty(result, line, sys.stdout)
                else:
                    sys.stdout.write(json.dumps(result, ensure_ascii=False) + "\n")
                    sys.stdout.flush()
