"""``sinogate command send`` and ``sinogate commands list``: commands through the HTTP API.

    sinogate command send --device 4210051415 engine.stop --wait --confirm
    sinogate command send --device 7 interval.set seconds=30
    sinogate command send --device 4210051415 custom RCONF --wait
    sinogate commands list --device 4210051415

The server and the token are found as every client command finds them (``sinogate.cli.client``):
``--url``, ``SINOGATE_URL``, the config file's http settings; ``--token``, ``SINOGATE_TOKEN``, the
data directory's token file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

from sinogate.cli.client import (
    DEFAULT_URL,
    Api,
    ClientError,
    config_option,
    data_dir_option,
    find_token,
    normalize,
    one_line_errors,
    reason_of,
    server_url,
    terminal_width,
    token_option,
    url_option,
)

__all__ = ["DEFAULT_URL", "Api", "ClientError", "connect", "describe", "find_token", "normalize", "parse_properties",
           "parse_value", "reason_of", "support_cell"]


def parse_value(text: str) -> Any:
    """``30`` → 30, ``true`` → True, ``{"a":1}`` → dict; anything else stays a string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_properties(name: str, args: list[str]) -> dict[str, Any]:
    """``k=v`` pairs; for ``custom``, words without ``=`` form the payload."""
    props: dict[str, Any] = {}
    words: list[str] = []
    for arg in args:
        key, eq, value = arg.partition("=")
        if eq and key and key.replace(".", "").replace("_", "").isalnum() and not (name == "custom" and words):
            props[key] = parse_value(value) if key not in ("payload", "text") else value
        else:
            words.append(arg)
    if words:
        if name != "custom":
            raise ClientError(f"expected key=value, got {' '.join(words)!r}")
        props["payload"] = " ".join(words)
    return props


def describe(cmd: dict[str, Any]) -> str:
    done = cmd.get("executed")
    executed = "" if done is None else " (executed)" if done else " (NOT executed)"
    line = f"command #{cmd.get('id')} {cmd.get('name')}: {cmd.get('status')}{executed}"
    if cmd.get("reason"):
        line += f" — {cmd['reason']}"
    return line


def connect(url: str | None, token: str | None, data_dir: Path | None, selector: str,
            config: Path | None = None) -> tuple[Api, dict[str, Any]]:
    """The API client and the device ``selector`` names (ident or id)."""
    api = Api(server_url(url, config), find_token(token, data_dir, config))
    return api, api.device(selector)


def support_cell(entry: dict[str, Any] | None) -> str:
    """What the gateway learned about a command on this device: ``answered 5/5``, ``ignored 3/3``…"""
    if not entry or not entry.get("sent"):
        return "never tried"
    text = str(entry.get("verdict") or "")
    alt = entry.get("alternative")
    if alt:
        text += f" → try {alt.get('name')}" + (f" ({alt['verdict']})" if alt.get("verdict") else "")
    return text


def support_column(entries: list[dict[str, Any]]) -> str:
    """The ``support`` cell of one catalog name from its learned entries (one per raw code)."""
    tried = [e for e in entries if e.get("sent")]
    if not tried:
        return "never tried"
    return "; ".join((f"{e['code']}: " if e.get("code") else "") + support_cell(e) for e in tried)


def _send(api: Api, dev: dict[str, Any], item: dict[str, Any], wait: bool, as_json: bool) -> dict[str, Any]:
    if not wait:
        return api.ok("POST", f"/gw/devices/{dev['id']}/commands-queue", json=[item])[0]
    resp = api.call("POST", f"/gw/devices/{dev['id']}/commands", json=[item])
    try:
        body = resp.json()
    except ValueError as exc:
        raise ClientError(reason_of(resp)) from exc
    results = body.get("result") or []
    if results:
        return dict(results[0])
    errors = body.get("errors") or [{}]
    if as_json:
        typer.echo(json.dumps(errors[0], indent=2))
    cmd = errors[0].get("command")
    if cmd and not as_json:
        typer.echo(describe(cmd))
    raise ClientError(reason_of(resp))


def register(app: typer.Typer) -> None:
    command_app = typer.Typer(help="Send commands to devices.", no_args_is_help=True)
    commands_app = typer.Typer(help="What commands a device supports.", no_args_is_help=True)

    @command_app.command("send")
    def send(
        name: str = typer.Argument(..., help="Command name, e.g. engine.stop, interval.set, custom"),
        args: list[str] = typer.Argument(None, help="Properties as key=value; for custom the payload text"),
        device: str = typer.Option(..., "--device", "-d", help="Device ident or id"),
        wait: bool = typer.Option(False, "--wait", "-w", help="Real-time: wait for the device's reply"),
        timeout: float = typer.Option(15.0, "--timeout", help="With --wait: seconds to wait (5-60)"),
        ttl: float | None = typer.Option(None, "--ttl", help="Without --wait: seconds the command stays queued"),
        confirm: bool = typer.Option(False, "--confirm", "--yes", help="Send a destructive command (engine.stop, "
                                                                       "server.set, reboot, factory.reset...)"),
        force: bool = typer.Option(False, "--force", help="engine.stop even while the vehicle moves faster than "
                                                          "engine_stop_max_speed"),
        as_json: bool = typer.Option(False, "--json", help="Print the command object as JSON"),
        url: str | None = url_option(),
        token: str | None = token_option(),
        data_dir: Path | None = data_dir_option(),
        config: Path | None = config_option(),
    ) -> None:
        """Send a command; with --wait, wait for the reply and print it."""
        with one_line_errors():
            api, dev = connect(url, token, data_dir, device, config)
            item: dict[str, Any] = {"name": name, "properties": parse_properties(name, args or [])}
            if confirm:
                item["confirm"] = True
            if force:
                item["force"] = True
            if wait:
                item["timeout"] = timeout
            elif ttl is not None:
                item["ttl"] = ttl
            cmd = _send(api, dev, item, wait, as_json)
        if as_json:
            typer.echo(json.dumps(cmd, indent=2, ensure_ascii=False))
            return
        typer.echo(describe(cmd))
        if cmd.get("payload"):
            typer.echo(f"sent: {cmd['payload']}")
        if cmd.get("response") is not None:
            typer.echo(f"reply: {cmd['response']}")
        if cmd.get("status") not in ("processed", "queued", "sent"):
            raise typer.Exit(2)

    @commands_app.command("list")
    def list_commands(
        device: str = typer.Option(..., "--device", "-d", help="Device ident or id"),
        as_json: bool = typer.Option(False, "--json", help="Print the catalog as JSON"),
        url: str | None = url_option(),
        token: str | None = token_option(),
        data_dir: Path | None = data_dir_option(),
        config: Path | None = config_option(),
    ) -> None:
        """List the commands a device supports: properties, example, and what the device answered so far."""
        with one_line_errors():
            api, dev = connect(url, token, data_dir, device, config)
            catalog = api.ok("GET", f"/gw/devices/{dev['id']}/commands")[0]["commands"]
            found = api.ok("GET", f"/gw/devices/{dev['id']}/command-support")
        learned = found[0] if found else {}
        by_name: dict[str, list[dict[str, Any]]] = {}
        for entry in learned.get("commands", []):
            by_name.setdefault(entry["name"], []).append(entry)
        if as_json:
            typer.echo(json.dumps([{**c, "support": by_name.get(c["name"], [])} for c in catalog], indent=2,
                                  ensure_ascii=False))
            return
        from rich.console import Console
        from rich.table import Table

        model = " ".join(str(v) for v in (learned.get("model"), learned.get("firmware")) if v)
        title = f"{dev['protocol']} device {dev['ident']} (id {dev['id']})" + (f", {model}" if model else "")
        table = Table(title=title)
        for col in ("command", "properties", "via", "support", "example", "description"):
            table.add_column(col, overflow="fold")
        for entry in catalog:
            schema = entry.get("schema", {})
            required = set(schema.get("required", ()))
            props = ", ".join(f"{k}{'*' if k in required else ''}:{v.get('type', '?')}"
                              for k, v in schema.get("properties", {}).items() if k != "password")
            example = entry["examples"][0]["properties"] if entry.get("examples") else {}
            ex = " ".join(f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in example.items())
            name = entry["name"] + (" [red]![/]" if entry.get("destructive") else "")
            support = support_column(by_name.get(entry["name"], []))
            table.add_row(name, props, ",".join(entry.get("address", [])), support, ex, entry.get("description", ""))
        Console(file=sys.stdout, width=terminal_width()).print(table)
        typer.echo("! destructive: needs --confirm", err=True)

    app.add_typer(command_app, name="command")
    app.add_typer(commands_app, name="commands")
