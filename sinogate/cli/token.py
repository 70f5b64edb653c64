"""``sinogate token``: API tokens. Works on the store of ``--data-dir`` directly (the server need not
run), or through a running server's API with ``--url`` and ``--token`` (the master token)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import typer

T = TypeVar("T")

DataDir = typer.Option(None, "--data-dir", help="Data directory of the gateway (default ./data or SINOGATE_DATA_DIR)")
Url = typer.Option(None, "--url", help="Use a running server's API instead of the store, e.g. http://host:8080")
ApiToken = typer.Option(None, "--token", envvar="SINOGATE_TOKEN", help="Master token for --url")


def with_store(data_dir: Path | None, fn: Callable[[Any], Awaitable[T]]) -> T:
    """Runs ``fn(store)`` against the gateway's store (opened and closed around it)."""
    from sinogate.config import load_config
    from sinogate.runtime import open_store

    async def run() -> T:
        store = open_store(load_config(data_dir=data_dir))
        await store.open()
        try:
            return await fn(store)
        finally:
            await store.close()

    return asyncio.run(run())


def api_call(url: str, token: str | None, method: str, path: str, body: Any = None) -> list[Any]:
    import httpx

    if not token:
        raise typer.BadParameter("--url needs --token (the master token) or SINOGATE_TOKEN")
    r = httpx.request(method, url.rstrip("/") + path, json=body,
                      headers={"Authorization": f"FlespiToken {token}"}, timeout=30)
    try:
        payload = r.json()
    except ValueError:
        payload = {}
    if r.status_code != 200:
        reasons = "; ".join(e.get("reason", "") for e in payload.get("errors", [])) or r.text[:200]
        typer.echo(f"error {r.status_code}: {reasons}", err=True)
        raise typer.Exit(1)
    return payload.get("result", [])  # type: ignore[no-any-return]


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
        url: str | None = Url,
        token: str | None = ApiToken,
    ) -> None:
        """Create a limited token; the token is printed once and cannot be shown again."""
        from sinogate.api.selectors import Selector, SelectorError

        if devices is not None:
            try:
                Selector.parse(devices)
            except SelectorError as exc:
                raise typer.BadParameter(str(exc), param_hint="--devices") from exc
        if url:
            spec: dict[str, Any] = {"devices": devices, "read_only": read_only, "name": name}
            if expire is not None:
                spec["ttl"] = expire
            record = api_call(url, token, "POST", "/platform/tokens", [spec])[0]
            key = record.pop("key")
        else:
            from sinogate.runtime import token_service

            absolute = time.time() + expire if expire is not None else None
            key, record = with_store(
                data_dir, lambda store: token_service(store).create(devices, read_only, absolute, name)
            )
        if output_json:
            typer.echo(json.dumps({**record, "key": key}))
        else:
            typer.echo(key)
            typer.echo(_show(record), err=True)

    @tokens.command("list")
    def list_(data_dir: Path | None = DataDir, url: str | None = Url, token: str | None = ApiToken) -> None:
        """List limited tokens (their keys are never stored, only a hash)."""
        if url:
            records = api_call(url, token, "GET", "/platform/tokens")
        else:
            from sinogate.runtime import token_service

            records = with_store(data_dir, lambda store: token_service(store).list())
        for record in records:
            typer.echo(_show(record))
        if not records:
            typer.echo("no limited tokens", err=True)

    @tokens.command("delete")
    def delete(
        token_id: str = typer.Argument(..., help="Token id (as shown by 'token list')"),
        data_dir: Path | None = DataDir,
        url: str | None = Url,
        token: str | None = ApiToken,
    ) -> None:
        """Delete a limited token."""
        if url:
            api_call(url, token, "DELETE", f"/platform/tokens/{token_id}")
            return
        from sinogate.runtime import token_service

        if not with_store(data_dir, lambda store: token_service(store).delete(token_id)):
            typer.echo(f"token {token_id} not found", err=True)
            raise typer.Exit(1)

    @tokens.command("master")
    def master(data_dir: Path | None = DataDir) -> None:
        """Print the master token (from the config, SINOGATE_TOKEN or the data dir; generated if none)."""
        from sinogate.api.tokens import master_token
        from sinogate.config import load_config

        cfg = load_config(data_dir=data_dir)
        typer.echo(master_token(cfg.token, cfg.data_dir, announce=False))
