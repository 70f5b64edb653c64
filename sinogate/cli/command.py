"""``sinogate command send`` and ``sinogate commands list``: commands through the HTTP API.

    sinogate command send --device 4210051415 engine.stop --wait
    sinogate command send --device 7 interval.set seconds=30
    sinogate command send --device 4210051415 custom RCONF --wait
    sinogate commands list --device 4210051415

The API is reached at ``--url`` (default http://127.0.0.1:8080) with ``--token`` (default: the
``SINOGATE_TOKEN`` variable, else ``<data-dir>/token``, the master token the server wrote).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx
import typer

DEFAULT_URL = "http://127.0.0.1:8080"


class ClientError(Exception):
    pass


def find_token(token: str | None, data_dir: Path | None) -> str:
    if token:
        return token
    env = os.environ.get("SINOGATE_TOKEN")
    if env:
        return env
    path = (data_dir or Path(os.environ.get("SINOGATE_DATA_DIR", "data"))) / "token"
    try:
        text = path.read_text().strip()
    except OSError:
        text = ""
    if not text:
        raise ClientError(f"no API token: pass --token, set SINOGATE_TOKEN or run next to {path}")
    return text


def reason_of(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return f"HTTP {resp.status_code}: {resp.text[:200]}"
    errors = body.get("errors") if isinstance(body, dict) else None
    if errors:
        return "; ".join(f"{e.get('reason')} (code {e.get('code')})" for e in errors)
    return f"HTTP {resp.status_code}"


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


def normalize(device: dict[str, Any]) -> dict[str, Any]:
    """The API's device view keeps the ident under ``configuration``; lift it up."""
    conf = device.get("configuration") or {}
    return {**device, "ident": device.get("ident", conf.get("ident")), "phone": device.get("phone", conf.get("phone"))}


class Api:
    """A small synchronous client for the command routes."""

    def __init__(self, url: str, token: str, timeout: float = 75.0) -> None:
        self.client = httpx.Client(base_url=url.rstrip("/"), headers={"Authorization": f"FlespiToken {token}"},
                                   timeout=timeout)

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self.client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ClientError(f"cannot reach the API at {self.client.base_url}: {exc}") from exc

    def ok(self, method: str, path: str, **kwargs: Any) -> list[dict[str, Any]]:
        resp = self.call(method, path, **kwargs)
        if resp.status_code != 200:
            raise ClientError(reason_of(resp))
        return list(resp.json().get("result", []))

    def device(self, selector: str) -> dict[str, Any]:
        """A device by ident (tried first) or id."""
        resp = self.call("GET", f"/gw/devices/ident={selector}")
        if resp.status_code == 200 and resp.json().get("result"):
            return normalize(resp.json()["result"][0])
        if selector.isdigit():
            resp = self.call("GET", f"/gw/devices/{selector}")
            if resp.status_code == 200 and resp.json().get("result"):
                return normalize(resp.json()["result"][0])
        raise ClientError(f"no device with ident or id {selector!r}")


def describe(cmd: dict[str, Any]) -> str:
    done = cmd.get("executed")
    executed = "" if done is None else " (executed)" if done else " (NOT executed)"
    line = f"command #{cmd.get('id')} {cmd.get('name')}: {cmd.get('status')}{executed}"
    if cmd.get("reason"):
        line += f" — {cmd['reason']}"
    return line


def connect(url: str, token: str | None, data_dir: Path | None, selector: str) -> tuple[Api, dict[str, Any]]:
    """The API client and the device ``selector`` names (ident or id)."""
    api = Api(url, find_token(token, data_dir))
    return api, api.device(selector)


def _options_help() -> dict[str, Any]:
    return {
        "url": typer.Option(DEFAULT_URL, "--url", envvar="SINOGATE_URL", help="API base URL"),
        "token": typer.Option(None, "--token", help="API token (default SINOGATE_TOKEN or <data-dir>/token)"),
        "data_dir": typer.Option(None, "--data-dir", help="Where the server keeps its token (default ./data)"),
    }


def register(app: typer.Typer) -> None:
    command_app = typer.Typer(help="Send commands to devices.", no_args_is_help=True)
    commands_app = typer.Typer(help="What commands a device supports.", no_args_is_help=True)
    opts = _options_help()

    @command_app.command("send")
    def send(
        name: str = typer.Argument(..., help="Command name, e.g. engine.stop, interval.set, custom"),
        args: list[str] = typer.Argument(None, help="Properties as key=value; for custom the payload text"),
        device: str = typer.Option(..., "--device", "-d", help="Device ident or id"),
        wait: bool = typer.Option(False, "--wait", "-w", help="Real-time: wait for the device's reply"),
        timeout: float = typer.Option(15.0, "--timeout", help="With --wait: seconds to wait (5-60)"),
        ttl: float | None = typer.Option(None, "--ttl", help="Without --wait: seconds the command stays queued"),
        as_json: bool = typer.Option(False, "--json", help="Print the command object as JSON"),
        url: str = opts["url"],
        token: str | None = opts["token"],
        data_dir: Path | None = opts["data_dir"],
    ) -> None:
        """Send a command; with --wait, wait for the reply and print it."""
        try:
            api, dev = connect(url, token, data_dir, device)
            item: dict[str, Any] = {"name": name, "properties": parse_properties(name, args or [])}
            if wait:
                item["timeout"] = timeout
                resp = api.call("POST", f"/gw/devices/{dev['id']}/commands", json=[item])
                body = resp.json()
                results = body.get("result") or []
                if not results:
                    errors = body.get("errors") or [{}]
                    if as_json:
                        typer.echo(json.dumps(errors[0], indent=2))
                    cmd = errors[0].get("command")
                    if cmd and not as_json:
                        typer.echo(describe(cmd))
                    raise ClientError(reason_of(resp))
                cmd = results[0]
            else:
                if ttl is not None:
                    item["ttl"] = ttl
                cmd = api.ok("POST", f"/gw/devices/{dev['id']}/commands-queue", json=[item])[0]
        except ClientError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from exc
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
        url: str = opts["url"],
        token: str | None = opts["token"],
        data_dir: Path | None = opts["data_dir"],
    ) -> None:
        """List the commands a device supports, with their properties and an example."""
        try:
            api, dev = connect(url, token, data_dir, device)
            catalog = api.ok("GET", f"/gw/devices/{dev['id']}/commands")[0]["commands"]
        except ClientError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from exc
        if as_json:
            typer.echo(json.dumps(catalog, indent=2, ensure_ascii=False))
            return
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"{dev['protocol']} device {dev['ident']} (id {dev['id']})")
        for col in ("command", "properties", "via", "example", "description"):
            table.add_column(col, overflow="fold")
        for entry in catalog:
            schema = entry.get("schema", {})
            required = set(schema.get("required", ()))
            props = ", ".join(f"{k}{'*' if k in required else ''}:{v.get('type', '?')}"
                              for k, v in schema.get("properties", {}).items())
            example = entry["examples"][0]["properties"] if entry.get("examples") else {}
            ex = " ".join(f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in example.items())
            table.add_row(entry["name"], props, ",".join(entry.get("address", [])), ex, entry.get("description", ""))
        Console(file=sys.stdout).print(table)

    app.add_typer(command_app, name="command")
    app.add_typer(commands_app, name="commands")
