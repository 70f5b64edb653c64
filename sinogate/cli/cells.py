"""``sinogate cells``: the cell-tower database behind LBS positions (the ``lbs`` plugin)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    cells = typer.Typer(help="Cell-tower database for LBS positions (OpenCelliD / Mozilla Location Service CSV).",
                        no_args_is_help=True)
    app.add_typer(cells, name="cells")

    @cells.command("import")
    def import_(
        file: Path = typer.Argument(..., help="OpenCelliD or MLS export (.csv or .csv.gz)"),
        data_dir: Path | None = typer.Option(None, "--data-dir", help="Server data directory (default ./data)"),
    ) -> None:
        """Import (or refresh) cells into <data_dir>/cells.sqlite; a running server sees them at once."""
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

        from sinogate.analytics.cells import CellImportError
        from sinogate.config import load_config
        from sinogate.runtime import cell_database

        cfg = load_config(data_dir=data_dir)
        if not file.is_file():
            typer.echo(f"error: no file {file}", err=True)
            raise typer.Exit(2)
        database = cell_database(cfg)
        columns = (TextColumn("[bold]cells"), BarColumn(), DownloadColumn(), TimeRemainingColumn())
        try:
            with Progress(*columns, transient=True) as bar:
                task = bar.add_task("import", total=file.stat().st_size)
                count = database.import_csv(file, lambda done: bar.update(task, completed=done))
        except CellImportError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from exc
        typer.echo(f"imported {count:,} cells into {database.path} ({database.count():,} in total)")
