"""``sinogate export``: write a device's track to a KML, GPX or CSV file, with a progress bar.

Reads the store of ``--data-dir`` directly (the server need not run), or a running server's API
with ``--url`` and ``--token``. Memory stays constant however long the range is.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer


def parse_time(value: str | None, name: str) -> float | None:
    """UNIX seconds, or an ISO date/date-time (UTC unless it carries an offset)."""
    if value is None:
        return None
    text = value.strip()
    if re.fullmatch(r"-?\d+(\.\d+)?", text):
        return float(text)
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise typer.BadParameter(f"{value!r} is neither UNIX seconds nor an ISO date", param_hint=name) from exc
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def _progress() -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.percentage:>5.1f}%"),
        TextColumn("{task.fields[points]} msgs"), TimeElapsedColumn(), TimeRemainingColumn(),
        console=Console(stderr=True),
    )


async def _from_store(
    data_dir: Path | None, device_ref: str, t_from: float | None, t_to: float | None, fmt: str, out: Any,
    stop_minutes: float, accept: Any, fields: list[str] | None,
) -> int:
    from sinogate.api.export import export_track
    from sinogate.config import load_config
    from sinogate.runtime import open_store
    from sinogate.store.base import TimeQuery

    store = open_store(load_config(data_dir=data_dir))
    await store.open()
    try:
        devices = await store.list_devices()
        device = next((d for d in devices if device_ref.isdigit() and d["id"] == int(device_ref)), None)
        device = device or next((d for d in devices if d["ident"] == device_ref or d["name"] == device_ref), None)
        if device is None:
            typer.echo(f"no device {device_ref!r} in {store!r}", err=True)
            raise typer.Exit(1)
        # bounds for the progress bar
        first = await store.messages([device["id"]], TimeQuery(t_from, t_to, 1, False))
        last = await store.messages([device["id"]], TimeQuery(t_from, t_to, 1, True))
        start = first[0]["timestamp"] if first else 0.0
        end = last[0]["timestamp"] if last else 0.0
        progress = _progress()
        total = max(end - start, 1e-9)
        count = 0
        with progress:
            task = progress.add_task(f"{device['name']} → {fmt}", total=total, points=0)

            def advance(ts: float) -> None:
                nonlocal count
                count += 1
                if count % 500 == 0:
                    progress.update(task, completed=min(total, ts - start), points=count)

            async for chunk in export_track(
                store.iter_messages(device["id"], TimeQuery(t_from, t_to)), fmt, str(device["name"]),
                stop_minutes, fields=fields, accept=accept, progress=advance,
            ):
                out.write(chunk)
            progress.update(task, completed=total, points=count)
        return count
    finally:
        await store.close()


def _from_api(
    url: str, token: str | None, device_ref: str, t_from: float | None, t_to: float | None, fmt: str, out: Any,
    stop_minutes: float, filter_text: str | None, fields: list[str] | None,
) -> int:
    import httpx
    from rich.console import Console
    from rich.progress import DownloadColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    if not token:
        raise typer.BadParameter("--url needs --token or SINOGATE_TOKEN")
    selector = device_ref if device_ref.isdigit() and len(device_ref) < 10 else f"configuration.ident={device_ref}"
    data: dict[str, Any] = {}
    if t_from is not None:
        data["from"] = t_from
    if t_to is not None:
        data["to"] = t_to
    if filter_text:
        data["filter"] = filter_text
    if fields:
        data["fields"] = fields
    params: dict[str, str | float] = {"format": fmt, "stop_minutes": stop_minutes, "data": json.dumps(data)}
    size = 0
    columns = (SpinnerColumn(), TextColumn("[bold]{task.description}"), DownloadColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True)) as p:
        task = p.add_task(f"device {device_ref} → {fmt}", total=None)
        with httpx.stream("GET", f"{url.rstrip('/')}/gw/devices/{selector}/track", params=params,
                          headers={"Authorization": f"FlespiToken {token}"}, timeout=None) as r:
            if r.status_code != 200:
                r.read()
                try:
                    reasons = "; ".join(e["reason"] for e in r.json()["errors"])
                except Exception:
                    reasons = r.text[:200]
                typer.echo(f"error {r.status_code}: {reasons}", err=True)
                raise typer.Exit(1)
            for chunk in r.iter_bytes():
                out.write(chunk)
                size += len(chunk)
                p.update(task, completed=size)
    return size


def register(app: typer.Typer) -> None:
    @app.command()
    def export(
        device: str = typer.Option(..., "--device", "-d", help="Device id, ident or name"),
        from_: str | None = typer.Option(None, "--from", help="Start: UNIX seconds or ISO date/time (UTC)"),
        to: str | None = typer.Option(None, "--to", help="End: UNIX seconds or ISO date/time (UTC)"),
        fmt: str = typer.Option("kml", "--format", "-f", help="kml, gpx or csv"),
        output: Path | None = typer.Option(None, "--output", "-o", help="Output file (default: stdout)"),
        stop_minutes: float = typer.Option(5.0, "--stop-minutes", min=0, help="Stop = speed ~0 at least this long"),
        filter_text: str | None = typer.Option(None, "--filter", help="Only messages matching this expression"),
        fields: str | None = typer.Option(None, "--fields", help="CSV columns (message parameter names)"),
        data_dir: Path | None = typer.Option(None, "--data-dir", help="Data directory to read (default ./data)"),
        url: str | None = typer.Option(None, "--url", help="Read from a running server's API instead"),
        token: str | None = typer.Option(None, "--token", envvar="SINOGATE_TOKEN", help="API token for --url"),
    ) -> None:
        """Export a device's track (KML with stops, GPX or CSV)."""
        from sinogate.api.export import FORMATS
        from sinogate.api.filter import Filter, FilterSyntaxError

        fmt = fmt.lower()
        if fmt not in FORMATS:
            raise typer.BadParameter(f"must be one of {', '.join(FORMATS)}", param_hint="--format")
        t_from, t_to = parse_time(from_, "--from"), parse_time(to, "--to")
        accept = None
        if filter_text:
            try:
                accept = Filter(filter_text).matches
            except FilterSyntaxError as exc:
                raise typer.BadParameter(str(exc), param_hint="--filter") from exc
        names = [f.strip() for f in fields.split(",") if f.strip()] if fields else None
        out = open(output, "wb") if output else sys.stdout.buffer  # noqa: SIM115
        try:
            if url:
                n = _from_api(url, token, device, t_from, t_to, fmt, out, stop_minutes, filter_text, names)
                what = f"{n} bytes"
            else:
                n = asyncio.run(_from_store(data_dir, device, t_from, t_to, fmt, out, stop_minutes, accept, names))
                what = f"{n} messages"
        finally:
            if output:
                out.close()
        if output:
            typer.echo(f"wrote {output} ({what})", err=True)
