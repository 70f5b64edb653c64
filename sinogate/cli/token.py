"""``sinogate token``: API tokens.

A client command like the others: it talks to the running server's API, found by ``--url``, then
``SINOGATE_URL``, then the config file's http settings (``sinogate.cli.client``), with the master
token (``--token``, ``SINOGATE_TOKEN``, the config's ``token``, else the data directory's token file).

``--data-dir`` is the admin mode for a stopped server: it reads and writes the store in that
directory directly, says so, and refuses to run where no database exists (it never creates one).
``token master`` only reads: the config, ``SINOGATE_TOKEN`` or ``<data-dir>/token``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import typer

from sinogate.cli.client import (
    ClientError,
    config_option,
    connect,
    load,
    one_line_errors,
    token_option,
    url_option,
)

T = TypeVar("T")

DataDir = typer.Option(None, "--data-dir", help="Admin mode: use the store in this data directory directly "
                                                "(the server should be stopped); never creates one")


def existing_store_url(data_dir: Path, config: Path | None = None) -> Any:
    """The config for the store in ``data_dir``; ``ClientError`` when no database is there."""
    cfg = load(config)
    cfg = cfg.model_copy(update={"data_dir": data_dir})
    url = cfg.store_location()
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        if not path.is_file():
            raise ClientError(f"no sinogate database at {path}: refusing to create one. Point --data-dir at the "
                              f"server's data directory, or leave --data-dir out to use the running server's API")
    elif url == "memory://":
        raise ClientError("the store is memory://: nothing to read outside the server; use its API")
    return cfg


def with_store(data_dir: Path, fn: Callable[[Any], Awaitable[T]], config: Path | None = None) -> T:
    """Admin mode: runs ``fn(store)`` against the existing store of ``data_dir``."""
    from sinogate.runtime import open_store
    from sinogate.store.base import StoreError

    cfg = existing_store_url(data_dir, config)
    typer.echo(f"admin mode: using the store at {cfg.store_location()} directly", err=True)

    async def run() -> T:
        store = open_store(cfg)
        await store.open()
        try:
            return await fn(store)
        finally:
            await store.close()

    try:
        return asyncio.run(run())
    except StoreError as exc:
        raise ClientError(str(exc)) from exc


def api_call(url: str | None, token: str | None, method: str, path: str, body: Any = None,
             config: Path | None = None) -> list[Any]:
    api = connect(url, token, None, config)
    try:
        return api.ok(method, path, json=body) if body is not None else api.ok(method, path)
    finally:
        api.close()


def _show(record: dict[str, Any]) -> str:
    expire = record.get("expire")
    left = "never" if expire is None else time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(expire))
    return (
        f"{record.get('id')}  devices={record.get('devices') or 'all'}  "
        f"{'read-only' if record.get('read_only') else 'read-write'}  expires={left}"
        + (f"  name={record['name']}" if record.get("name") else "")
    )


def register(app: typer.Typer) -> None:
    tokens = typer.Typer(help="Create, list and delete API tokens.", no_args_is_help=True)
    app.add_typer(tokens, name="token")

    @tokens.command("create")
    def create(
        devices: str | None = typer.Option(
            None, "--devices", help="Limit the token to these devices: 1,2,3 | configuration.ident=35* | ..."
        ),
        read_only: bool = typer.Option(False, "--read-only", help="Only GET requests"),
        expire: float | None = typer.Option(None, "--expire", min=1, help="Seconds until the token stops working"),
        name: str | None = typer.Option(None, "--name", help="A note to recognise the token by"),
        output_json: bool = typer.Option(False, "--json", help="Print the token record as JSON"),
        data_dir: Path | None = DataDir,
        url: str | None = url_option(),
        token: str | None = token_option(),
        config: Path | None = config_option(),
    ) -> None:
        """Create a limited token; the token is printed once and cannot be shown again."""
        from sinogate.api.selectors import Selector, SelectorError

        if devices is not None:
            try:
                Selector.parse(devices)
            except SelectorError as exc:
                raise typer.BadParameter(str(exc), param_hint="--devices") from exc
        with one_line_errors():
            if data_dir is None:
                spec: dict[str, Any] = {"devices": devices, "read_only": read_only, "name": name}
                if expire is not None:
                    spec["ttl"] = expire
                record = api_call(url, token, "POST", "/platform/tokens", [spec], config)[0]
                key = record.pop("key")
            else:
                from sinogate.runtime import token_service

                absolute = time.time() + expire if expire is not None else None
                key, record = with_store(
                    data_dir, lambda store: token_service(store).create(devices, read_only, absolute, name), config
                )
        if output_json:
            typer.echo(json.dumps({**record, "key": key}))
        else:
            typer.echo(key)
            typer.echo(_show(record), err=True)

    @tokens.command("list")
    def list_(data_dir: Path | None = DataDir, url: str | None = url_option(), token: str | None = token_option(),
              config: Path | None = config_option()) -> None:
        """List limited tokens (their keys are never stored, only a hash)."""
        with one_line_errors():
            if data_dir is None:
                records = api_call(url, token, "GET", "/platform/tokens", config=config)
            else:
                from sinogate.runtime import token_service

                records = with_store(data_dir, lambda store: token_service(store).list(), config)
        for record in records:
            typer.echo(_show(record))
        if not records:
            typer.echo("no limited tokens", err=True)

    @tokens.command("delete")
    def delete(
        token_id: str = typer.Argument(..., help="Token id (as shown by 'token list')"),
        data_dir: Path | None = DataDir,
        url: str | None = url_option(),
        token: str | None = token_option(),
        config: Path | None = config_option(),
    ) -> None:
        """Delete a limited token."""
        with one_line_errors():
            if data_dir is None:
                api_call(url, token, "DELETE", f"/platform/tokens/{token_id}", config=config)
                return
            from sinogate.runtime import token_service

            if not with_store(data_dir, lambda store: token_service(store).delete(token_id), config):
                raise ClientError(f"token {token_id} not found")

    @tokens.command("master")
    def master(data_dir: Path | None = typer.Option(None, "--data-dir", help="The server's data directory"),
               config: Path | None = config_option()) -> None:
        """Print the master token the server uses (the config, SINOGATE_TOKEN or <data-dir>/token); never
        generates one."""
        with one_line_errors():
            cfg = load(config)
            if cfg.token:
                typer.echo(cfg.token)
                return
            path = Path(data_dir or cfg.data_dir) / "token"
            try:
                text = path.read_text().strip()
            except OSError:
                text = ""
            if not text:
                raise ClientError(f"no master token in {path}: the server writes it there on its first start "
                                  f"(pass --data-dir with the server's data directory)")
            typer.echo(text)
