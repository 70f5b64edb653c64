"""``sinogate console <ident|id>``: one device's conversation, live, with a command prompt.

Shows the raw traffic in and out (time, direction, hex and printable text), the decoded
messages, connection events and command status changes, from the API's Server-Sent Events
stream (``GET /gw/devices/{id}/stream``), so it works against a remote server with ``--url`` and
``--token``. Type at the prompt:

    S71,22,30               a custom command (H02 code: wrapped as *HQ,<id>,S71,<time>,22,30#)
    RCONF                   a custom command sent as raw text (answered by an SMS message)
    /interval.set seconds=30   a typed command with properties
    /commands   /help   /quit
"""

from __future__ import annotations

import asyncio
import base64
import json
import shlex
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import typer
from rich.console import Console
from rich.markup import escape

from sinogate.cli.client import (
    ClientError,
    config_option,
    find_token,
    normalize,
    one_line_errors,
    reason_of,
    server_url,
    token_option,
    url_option,
)
from sinogate.cli.command import parse_properties

PACKET_KINDS = {0: "connect", 1: "disconnect", 2: "in", 3: "out"}
MAX_HEX = 256
HELP = ("type a command: RCONF · CXZT · /interval.set seconds=30 · /commands · /help · /quit "
        "(a plain line is sent as the custom command's payload)")
_SKIP = frozenset({"ident", "server.timestamp", "peer", "channel.id", "protocol.id", "device.id", "device.name",
                   "transport", "timestamp", "message.type", "protocol.name", "command.response"})
_FIRST = ("position.latitude", "position.longitude", "position.speed", "engine.ignition.status")
CONFIRM_WORDS = frozenset({"y", "yes"})


def _clock(ts: Any) -> str:
    try:
        t = float(ts)
    except (TypeError, ValueError):
        t = time.time()
    return time.strftime("%H:%M:%S", time.localtime(t)) + f".{int(t * 1000) % 1000:03d}"


def printable(data: bytes) -> str:
    return "".join(chr(b) if 32 <= b < 127 else "." for b in data)


def packet_line(data: dict[str, Any]) -> str:
    kind = PACKET_KINDS.get(int(data.get("type", 2)) % 128, "?")
    raw = bytes.fromhex(data["hex"]) if "hex" in data else base64.b64decode(data.get("data") or "")
    when = _clock(data.get("timestamp"))
    if kind in ("connect", "disconnect"):
        return f"[dim]{when} ·· {kind} (conn {data.get('conn')})[/]"
    arrow, color = ("<<", "green") if kind == "in" else (">>", "yellow")
    shown = raw[:MAX_HEX]
    more = f" …(+{len(raw) - MAX_HEX} bytes)" if len(raw) > MAX_HEX else ""
    return (f"{when} [{color}]{arrow} {len(raw):4d} B[/] [cyan]{shown.hex()}[/]{more}\n"
            f"{' ' * len(when)}          [bold]{escape(printable(shown))}[/]")


def number(value: Any, digits: int = 2) -> str:
    """A number for display: floats rounded (``23.575960000000002`` → ``23.58``), no trailing zeros."""
    if isinstance(value, bool) or not isinstance(value, float):
        return str(value)
    text = f"{value:.{digits}f}".rstrip("0").rstrip(".")
    return text if text not in ("-0", "") else "0"


def _shown(value: Any) -> str:
    if isinstance(value, float):
        return number(value)
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def message_line(msg: dict[str, Any], width: int = 160) -> str:
    """Position, speed and ignition first (rounded), then the other parameters, cut to the width.

    A reply's ``command.response`` is left out: the command's result line shows it once."""
    head = []
    lat, lon = msg.get("position.latitude"), msg.get("position.longitude")
    if isinstance(lat, int | float) and isinstance(lon, int | float):
        head.append(f"{number(float(lat), 6)},{number(float(lon), 6)}")
    if isinstance(msg.get("position.speed"), int | float):
        head.append(f"{number(float(msg['position.speed']), 1)} km/h")
    ignition = msg.get("engine.ignition.status")
    if isinstance(ignition, bool):
        head.append(f"ignition {'on' if ignition else 'off'}")
    rest = [f"{k}={_shown(v)}" for k, v in msg.items() if k not in _SKIP and k not in _FIRST]
    kind = str(msg.get("message.type", "?")) + (" reply" if "command.response" in msg else "")
    prefix = f"{_clock(msg.get('server.timestamp'))} msg {kind} "
    text = "  ".join([*head, ", ".join(rest)]) if rest else "  ".join(head)
    room = max(40, width - len(prefix) - 1)
    if len(text) > room:
        text = text[:room - 1] + "…"
    return f"{_clock(msg.get('server.timestamp'))} [magenta]msg {escape(kind)}[/] {escape(text)}"


def command_line(cmd: dict[str, Any]) -> str:
    when = _clock(cmd.get("timestamp"))
    if cmd.get("unmatched"):
        return f"{when} [red]reply matching no command:[/] {escape(str(cmd.get('response')))}"
    status = cmd.get("status")
    color = {"processed": "bold green", "sent": "yellow", "queued": "blue"}.get(str(status), "red")
    done = cmd.get("executed")
    executed = "" if done is None else " executed" if done else " NOT executed"
    line = f"{when} [{color}]cmd #{cmd.get('id')} {escape(str(cmd.get('name')))} {status}{executed}[/]"
    if status == "sent" and cmd.get("payload") and not cmd.get("acknowledged"):
        line += f" payload {escape(str(cmd['payload']))}"
    if cmd.get("acknowledged"):
        line += " (acknowledged, waiting for the text answer)"
    if cmd.get("response") is not None and status != "sent":
        line += f"\n{' ' * len(when)} [bold green]reply:[/] {escape(str(cmd['response']))}"
    if cmd.get("reason"):
        line += f" — {escape(str(cmd['reason']))}"
    return line


def log_line(data: dict[str, Any]) -> str:
    extra = f" from {data['peer']}" if data.get("peer") else ""
    return f"{_clock(data.get('timestamp'))} [dim]-- {escape(str(data.get('event')))}{escape(extra)}[/]"


def parse_input(line: str) -> tuple[str, dict[str, Any]] | None:
    """A prompt line → (command name, properties); ``None`` for an empty line."""
    line = line.strip()
    if not line:
        return None
    if line.startswith("/"):
        words = shlex.split(line[1:])
        if not words:
            return None
        return words[0], parse_properties(words[0], words[1:])
    return "custom", {"payload": line}


class ConsoleApp:
    def __init__(self, url: str, token: str, selector: str, history: int, out: Console) -> None:
        self.shown: set[tuple[Any, Any]] = set()  # (command id, final status) already printed
        self.client = httpx.AsyncClient(base_url=url.rstrip("/"), timeout=httpx.Timeout(30.0, read=None),
                                        headers={"Authorization": f"FlespiToken {token}"})
        self.selector = selector
        self.history = history
        self.out = out
        self.device: dict[str, Any] = {}
        self.lines: asyncio.Queue[str | None] = asyncio.Queue()
        self.ready = asyncio.Event()

    async def _get(self, path: str, **kwargs: Any) -> list[dict[str, Any]]:
        resp = await self.client.get(path, **kwargs)
        if resp.status_code != 200:
            raise ClientError(reason_of(resp))
        return list(resp.json().get("result", []))

    async def resolve(self) -> dict[str, Any]:
        try:
            found = await self._get(f"/gw/devices/configuration.ident={self.selector}")
        except ClientError:
            found = []
        if not found and self.selector.isdigit():
            found = await self._get(f"/gw/devices/{self.selector}")
        if not found:
            raise ClientError(f"no device with ident or id {self.selector!r}")
        return normalize(found[0])

    async def show_history(self) -> None:
        if self.history <= 0:
            return
        query = json.dumps({"count": self.history, "reverse": True})
        try:
            packets = await self._get(f"/gw/devices/{self.device['id']}/packets", params={"data": query})
        except ClientError:
            return
        for p in reversed(packets):
            self.out.print(packet_line(p), highlight=False)

    async def stream(self) -> None:
        path = f"/gw/devices/{self.device['id']}/stream"
        while True:
            try:
                async with self.client.stream("GET", path) as resp:
                    if resp.status_code != 200:
                        await resp.aread()
                        raise ClientError(reason_of(resp))
                    self.ready.set()
                    event, data = "", ""
                    async for raw in resp.aiter_lines():
                        if raw.startswith("event:"):
                            event = raw[6:].strip()
                        elif raw.startswith("data:"):
                            data += raw[5:].strip()
                        elif raw == "":
                            if data:
                                self.show(event, data)
                            event, data = "", ""
            except httpx.HTTPError as exc:
                self.out.print(f"[red]stream interrupted ({exc}); reconnecting…[/]")
                await asyncio.sleep(2)

    def show(self, event: str, data: str) -> None:
        try:
            payload = json.loads(data)
        except ValueError:
            return
        body = payload.get("data", payload) if isinstance(payload, dict) else {}
        if event == "packet":
            self.out.print(packet_line(body), highlight=False)
        elif event == "message":
            self.out.print(message_line(body, self.out.width), highlight=False)
        elif event == "command":
            status = body.get("status")
            if status in ("processed", "canceled", "expired"):  # a result prints once
                key = (body.get("id"), status)
                if key in self.shown:
                    return
                self.shown.add(key)
            self.out.print(command_line(body), highlight=False)
        elif event == "log":
            self.out.print(log_line(body), highlight=False)
        elif event == "dropped":
            self.out.print(f"[red]{body.get('dropped')} events dropped (console too slow)[/]")

    async def submit(self, line: str) -> bool:
        """Handles one prompt line; ``False`` to quit."""
        stripped = line.strip()
        if stripped in ("/quit", "/exit", "/q"):
            return False
        if stripped in ("/help", "/?"):
            self.out.print(HELP)
            return True
        if stripped == "/commands":
            entries = await self._get(f"/gw/devices/{self.device['id']}/commands")
            for c in entries[0]["commands"] if entries else []:
                self.out.print(f"  /{c['name']}  {escape(c.get('description', ''))}", highlight=False)
            return True
        try:
            parsed = parse_input(line)
        except (ClientError, ValueError) as exc:
            self.out.print(f"[red]{escape(str(exc))}[/]")
            return True
        if parsed is None:
            return True
        name, props = parsed
        item: dict[str, Any] = {"name": name, "properties": props}
        resp = await self.client.post(f"/gw/devices/{self.device['id']}/commands-queue", json=[item])
        reason = reason_of(resp) if resp.status_code != 200 else ""
        if "is destructive (" in reason:  # ask before sending it
            why = reason.split("is destructive (", 1)[1].split("):", 1)[0]
            self.out.print(f"[bold red]{escape(name)} {escape(why)}.[/] Send it? type yes to confirm: ", end="")
            answer = await self.lines.get()
            if answer is None or answer.strip().lower() not in CONFIRM_WORDS:
                self.out.print("[yellow]not sent[/]")
                return answer is not None
            item["confirm"] = True
            resp = await self.client.post(f"/gw/devices/{self.device['id']}/commands-queue", json=[item])
            reason = reason_of(resp) if resp.status_code != 200 else ""
        if reason:
            self.out.print(f"[red]not sent: {escape(reason)}[/]")
        return True

    def _reader(self, loop: asyncio.AbstractEventLoop) -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(self.lines.put_nowait, line)
        loop.call_soon_threadsafe(self.lines.put_nowait, None)

    async def run(self) -> None:
        self.device = await self.resolve()
        d = self.device
        state = "[green]connected[/]" if d.get("connected") else "[red]not connected[/]"
        self.out.print(f"[bold]{d['protocol']} device {escape(str(d['ident']))}[/] (id {d['id']}, "
                       f"{escape(str(d.get('name') or ''))}) {state}")
        await self.show_history()
        streaming = asyncio.get_running_loop().create_task(self.stream())
        try:
            await asyncio.wait_for(self.ready.wait(), 10)
        except TimeoutError:
            self.out.print("[red]the live stream did not open[/]")
        self.out.print(f"[dim]{HELP}[/]")
        threading.Thread(target=self._reader, args=(asyncio.get_running_loop(),), daemon=True).start()
        try:
            while True:
                line = await self.lines.get()
                if line is None or not await self.submit(line):
                    break
        finally:
            streaming.cancel()
            await self.client.aclose()


def register(app: typer.Typer) -> None:
    @app.command()
    def console(
        device: str = typer.Argument(..., help="Device ident or id"),
        url: str | None = url_option(),
        token: str | None = token_option(),
        data_dir: Path | None = typer.Option(None, "--data-dir", help="Where the server keeps its token"),
        config: Path | None = config_option(),
        history: int = typer.Option(10, "--history", help="Show this many recent packets first"),
    ) -> None:
        """Live view of one device's traffic and messages, with a command prompt."""
        out = Console(highlight=False, soft_wrap=True)
        with one_line_errors():
            base, key = server_url(url, config), find_token(token, data_dir, config)
            try:
                asyncio.run(ConsoleApp(base, key, device, history, out).run())
            except httpx.HTTPError as exc:
                raise ClientError(f"cannot reach the sinogate API at {base}: {exc}") from exc
            except KeyboardInterrupt:
                pass
