"""``sinogate migrate --from sqlite:///data/sinogate.sqlite --to postgresql://user@host/db``: copies
a SQLite store into an empty PostgreSQL one (devices with their ids, messages as stored, telemetry,
packets, logs, idents, events, commands, tokens and settings, handler states), with a progress bar
and a count per table at the end. Stop the gateway first; the SQLite file is only read."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import typer


class UsageError(Exception):
    """A wrong option value."""


def _source_path(url: str) -> Path:
    if not url.startswith("sqlite:///") or url == "sqlite:///":
        raise UsageError("--from must be sqlite:///relative/path or sqlite:////absolute/path")
    return Path(url.removeprefix("sqlite:///"))


async def _migrate(source_url: str, target_url: str, chunk: int) -> dict[str, tuple[int, int]]:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from sinogate.config import Config
    from sinogate.runtime import open_store
    from sinogate.store.postgres import PostgresStore
    from sinogate.store.transfer import SQLiteSource, check_empty, copy_sqlite, totals

    path = _source_path(source_url)
    if not target_url.startswith(("postgresql://", "postgres://")):
        raise UsageError("--to must be postgresql://user@host/database")
    source = SQLiteSource(path)
    try:
        target = open_store(Config(store_url=target_url))
        assert isinstance(target, PostgresStore)
        await target.open()
        try:
            await check_empty(target)
            progress = Progress(
                TextColumn("[bold]{task.description:<12}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                console=Console(stderr=True),
            )
            with progress:
                tasks = {name: progress.add_task(name, total=n) for name, n in totals(source).items()}

                def advance(table: str, rows: int) -> None:
                    progress.advance(tasks[table], rows)

                return await copy_sqlite(source, target, advance, chunk)
        finally:
            await target.close()
    finally:
        source.close()


def _report(counts: dict[str, tuple[int, int]]) -> list[str]:
    from rich.console import Console
    from rich.table import Table

    table = Table("table", "source", "copied", "check")
    wrong = []
    for name, (expected, copied) in counts.items():
        ok = expected == copied
        if not ok:
            wrong.append(name)
        table.add_row(name, str(expected), str(copied), "ok" if ok else "MISMATCH")
    Console().print(table)
    return wrong


def register(app: typer.Typer) -> None:
    @app.command("migrate")
    def migrate(
        source: str = typer.Option(..., "--from", help="The SQLite store: sqlite:///data/sinogate.sqlite"),
        target: str = typer.Option(
            ..., "--to", help="An empty PostgreSQL database: postgresql://user@host/db[?schema=NAME]"
        ),
        chunk: int = typer.Option(5000, "--chunk", min=1, help="Rows per COPY"),
    ) -> None:
        """Copy a SQLite store into an empty PostgreSQL database, then count every table on both sides."""
        try:
            counts = asyncio.run(_migrate(source, target, chunk))
        except Exception as exc:  # one line, never a traceback
            typer.echo(f"error: {_one_line(exc)}", err=True)
            raise typer.Exit(1) from None
        wrong = _report(counts)
        if wrong:
            typer.echo(f"error: the counts differ for {', '.join(wrong)}", err=True)
            raise typer.Exit(1)
        typer.echo(f"migrated {sum(c for _, c in counts.values())} rows to {_safe(target)}")


def _one_line(exc: Any) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if type(exc).__module__.startswith("sinogate") else f"{type(exc).__name__}: {text}"


def _safe(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")))
    return url
