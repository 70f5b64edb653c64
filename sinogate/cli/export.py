"""``sinogate export``: write a device's track to a KML, GPX or CSV file, with a progress bar.

A client command: it reads the running server's API, found like every client command finds it
(``--url``, ``SINOGATE_URL``, the config's http settings; see ``sinogate.cli.client``). ``--data-dir``
is the admin mode for a stopped server: it reads the store in that directory directly (never
creating one) and says so. Memory stays constant however long the range is.
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

from sinogate.cli.client import (
    ClientError,
    config_option,
    find_token,
    one_line_errors,
    reason_of,
    server_url,
    token_option,
    url_option,
)


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

    console = Console(stderr=True)
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.percentage:>5.1f}%"),
        TextColumn("{task.fields[points]} msgs"), TimeElapsedColumn(), TimeRemainingColumn(),
        console=console, disable=not console.is_terminal,
    )


async def _from_store(
    config: Any, device_ref: str, t_from: float | None, t_to: float | None, fmt: str, out: Any,
    stop_minutes: float, accept: Any, fields: list[str] | None,
) -> int:
    from sinogate.api.export import export_track
    from sinogate.runtime import open_store
    from sinogate.store.base import TimeQuery

    store = open_store(config)
    await store.open()
    try:
        devices = await store.list_devices()
        device = next((d for d in devices if device_ref.isdigit() and d["id"] == int(device_ref)), None)
        device = device or next((d for d in devices if d["ident"] == device_ref or d["name"] == device_ref), None)
        if device is None:
            typer.echo(f"error: no device {device_ref!r} (by id, ident or name) in {config.store_location()}",
                       err=True)
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
    url: str, token: str, device_ref: str, t_from: float | None, t_to: float | None, fmt: str, out: Any,
    stop_minutes: float, filter_text: str | None, fields: list[str] | None,
) -> int:
    import httpx
    from rich.console import Console
    from rich.progress import DownloadColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

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
    console = Console(stderr=True)
    with Progress(*columns, console=console, disable=not console.is_terminal) as p:
        task = p.add_task(f"device {device_ref} → {fmt}", total=None)
        with httpx.stream("GET", f"{url.rstrip('/')}/gw/devices/{selector}/track", params=params,
                          headers={"Authorization": f"FlespiToken {token}"}, timeout=None) as r:
            if r.status_code != 200:
                r.read()
                raise ClientError(reason_of(r))
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
        data_dir: Path | None = typer.Option(None, "--data-dir", help="Admin mode: read the store in this data "
                                                                      "directory directly (server stopped)"),
        url: str | None = url_option(),
        token: str | None = token_option(),
        config: Path | None = config_option(),
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
        with one_line_errors():
            if data_dir is None:
                base, key = server_url(url, config), find_token(token, None, config)
            else:
                from sinogate.cli.token import existing_store_url

                store_config = existing_store_url(data_dir, config)
                typer.echo(f"admin mode: reading the store at {store_config.store_location()} directly", err=True)
            out = open(output, "wb") if output else sys.stdout.buffer  # noqa: SIM115
            try:
                if data_dir is None:
                    n = _from_api(base, key, device, t_from, t_to, fmt, out, stop_minutes, filter_text, names)
                    what = f"{n} bytes"
                else:
                    n = asyncio.run(_from_store(store_config, device, t_from, t_to, fmt, out, stop_minutes, accept,
                                                names))
                    what = f"{n} messages"
            finally:
                if output:
                    out.close()
        if output:
            typer.echo(f"wrote {output} ({what})", err=True)
