"""``sinogate import traccar --db …`` and ``sinogate import log --protocol … FILE``: history from elsewhere.

Client commands like the others: they write through the running server's REST API (server and token
found by ``--url``/``SINOGATE_URL``/the config file and ``--token``/``SINOGATE_TOKEN``/the data
directory's token file), so imported messages take the one ingest path: pipeline, dedup by device
content, events.

``import traccar`` reads a Traccar database (PostgreSQL or MySQL/MariaDB): devices (``tc_devices``,
protocol from their positions: ``h02``, ``huabao`` = JT/T 808), geofences (``tc_geofences``, before the
positions so sinogate computes the enter/exit events), positions (``tc_positions`` with attributes,
per device in id order), the events that carry what a device said (``tc_events`` command results
and texts; the others sinogate computes itself), and pending commands (``tc_commands_queue``;
destructive ones are listed, never queued). It is resumable: a state file (``--state``, default under
``$XDG_STATE_HOME/sinogate``) keeps the last position id sent per device, written after every batch
the server stored; and idempotent: a row always gives the same message, which the server stores
once, so ``--restart`` (ignore the state file) adds nothing either.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import typer

from sinogate.cli.client import (
    ClientError,
    config_option,
    find_token,
    one_line_errors,
    reason_of,
    server_url,
    token_option,
    unreachable,
    url_option,
)

BATCH = 1000


class AsyncApi:
    """The few API calls an import makes."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.client = httpx.AsyncClient(base_url=url, headers={"Authorization": f"FlespiToken {token}"},
                                        timeout=httpx.Timeout(120.0, connect=10.0))

    async def call(self, method: str, path: str, **kwargs: Any) -> list[dict[str, Any]]:
        try:
            resp = await self.client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise unreachable(self.url, exc) from exc
        if resp.status_code != 200:
            raise ClientError(f"{method} {path}: {reason_of(resp)}")
        return list(resp.json().get("result", []))

    async def close(self) -> None:
        await self.client.aclose()


def _progress(enabled: bool) -> Any:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = Console(stderr=True)
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=console, disable=not (enabled and console.is_terminal))


# --- state (resume) ----------------------------------------------------------------------------------

def default_state_path(db_url: str, server: str) -> Path:
    from sinogate.imports.database import redact

    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "sinogate"
    digest = hashlib.sha1(f"{redact(db_url)} {server}".encode()).hexdigest()[:12]
    return base / f"import-traccar-{digest}.json"


def load_state(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ClientError(f"cannot read the import state {path}: {exc}; use --restart to start over") from exc
    return data if isinstance(data, dict) else {}


def save_state(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, sort_keys=True))
    tmp.replace(path)


# --- traccar -------------------------------------------------------------------------------------------

@dataclass
class Summary:
    devices: Counter[str] = field(default_factory=Counter)  # created, existing, skipped
    skipped_devices: list[str] = field(default_factory=list)
    geofences: Counter[str] = field(default_factory=Counter)
    geofence_errors: list[str] = field(default_factory=list)
    positions_read: int = 0
    positions_sent: int = 0
    positions_unusable: int = 0
    event_types: Counter[str] = field(default_factory=Counter)
    events_sent: int = 0
    commands: Counter[str] = field(default_factory=Counter)
    command_notes: list[str] = field(default_factory=list)
    stopped_early: bool = False

    def lines(self) -> list[str]:
        from sinogate.imports.traccar import MESSAGE_EVENTS, RECOMPUTED_EVENTS

        d, g, c = self.devices, self.geofences, self.commands
        out = [f"devices: {d['created']} created, {d['existing']} already there, {d['skipped']} skipped",
               *(f"  skipped {s}" for s in self.skipped_devices),
               f"geofences: {g['created']} created, {g['existing']} already there, {g['skipped']} skipped",
               *(f"  skipped {s}" for s in self.geofence_errors),
               f"positions: {self.positions_read} read, {self.positions_sent} sent "
               f"({self.positions_unusable} without a time left out; the server stores each once)"]
        recomputed = sum(n for t, n in self.event_types.items() if t in RECOMPUTED_EVENTS)
        carried = sum(n for t, n in self.event_types.items() if t in MESSAGE_EVENTS)
        other = sum(self.event_types.values()) - recomputed - carried
        out.append(f"events: {sum(self.event_types.values())} in Traccar: {recomputed} recomputed by sinogate from "
                   f"the positions and geofences, {self.events_sent} of {carried} command results/texts sent as "
                   f"messages, {other} of other types not imported")
        out.append(f"queued commands: {c['queued']} queued, {c['existing']} already queued, {c['skipped']} skipped")
        out.extend(f"  {n}" for n in self.command_notes)
        if self.stopped_early:
            out.append("stopped early (--stop-after): run the same command again to go on")
        return out


class TraccarImport:
    def __init__(self, api: AsyncApi, db: Any, state: dict[str, Any], state_path: Path | None, batch: int,
                 default_protocol: str | None, stop_after: int | None, commands: bool, progress: bool) -> None:
        self.api = api
        self.db = db
        self.state = state
        self.state_path = state_path
        self.batch = batch
        self.default_protocol = default_protocol
        self.stop_after = stop_after
        self.with_commands = commands
        self.progress = progress
        self.summary = Summary()

    def save(self) -> None:
        if self.state_path is not None:
            save_state(self.state_path, self.state)

    async def run(self) -> Summary:
        tables = {t: await self.db.columns(t) for t in ("tc_devices", "tc_positions", "tc_events", "tc_geofences",
                                                          "tc_commands_queue")}
        for needed in ("tc_devices", "tc_positions"):
            if tables[needed] is None:
                raise ClientError(f"no {needed} table: is this a Traccar database?")
        devices = await self.devices(tables["tc_devices"] or set())
        if tables["tc_geofences"] is not None:
            await self.geofences()
        await self.positions(devices, tables["tc_events"])
        if tables["tc_commands_queue"] is not None and self.with_commands and not self.summary.stopped_early:
            await self.commands(devices)
        return self.summary

    async def devices(self, columns: set[str]) -> dict[int, dict[str, Any]]:
        """Traccar device id → the sinogate device (created when missing)."""
        from sinogate.imports.traccar import PROTOCOLS

        wanted = [c for c in ("id", "name", "uniqueid", "phone", "model", "disabled") if c in columns]
        rows = await self.db.rows(f"SELECT {', '.join(wanted)} FROM tc_devices ORDER BY id")
        latest = await self.db.rows("SELECT p.deviceid, p.protocol FROM tc_positions p JOIN (SELECT deviceid, "
                                    "MAX(id) AS id FROM tc_positions GROUP BY deviceid) last ON p.id = last.id")
        protocol_of = {int(r["deviceid"]): str(r["protocol"] or "") for r in latest}
        existing = {(d.get("protocol"), str((d.get("configuration") or {}).get("ident"))): d
                    for d in await self.api.call("GET", "/gw/devices")}
        mapped: dict[int, dict[str, Any]] = {}
        for row in rows:
            traccar_protocol = protocol_of.get(int(row["id"]))
            protocol = PROTOCOLS.get(traccar_protocol or "", None) if traccar_protocol else self.default_protocol
            ident = str(row.get("uniqueid") or "").strip()
            label = f"{row.get('name')!r} ({ident})"
            if not ident:
                self.summary.devices["skipped"] += 1
                self.summary.skipped_devices.append(f"{label}: no unique id")
                continue
            if protocol is None:
                self.summary.devices["skipped"] += 1
                why = (f"protocol {traccar_protocol!r} (sinogate speaks h02 and jt808)" if traccar_protocol
                       else "no positions, so no protocol (pass --protocol h02|jt808 to create it anyway)")
                self.summary.skipped_devices.append(f"{label}: {why}")
                continue
            device = existing.get((protocol, ident))
            if device is not None:
                self.summary.devices["existing"] += 1
            else:
                body: dict[str, Any] = {"name": str(row.get("name") or ident)[:256], "protocol": protocol,
                                        "configuration": {"ident": ident}}
                if row.get("phone"):
                    body["configuration"]["phone"] = str(row["phone"])[:64]
                if row.get("model"):
                    body["model"] = str(row["model"])[:128]
                device = (await self.api.call("POST", "/gw/devices", json=[body]))[0]
                self.summary.devices["created"] += 1
            mapped[int(row["id"])] = device
        self.state.setdefault("devices", {}).update({str(k): v["id"] for k, v in mapped.items()})
        self.save()
        return mapped

    async def geofences(self) -> None:
        from sinogate.imports.traccar import WktError, geofence

        existing = {(g.get("name"), json.dumps(g.get("geometry"), sort_keys=True))
                    for g in await self.api.call("GET", "/gw/geofences")}
        for row in await self.db.rows("SELECT * FROM tc_geofences ORDER BY id"):
            try:
                fence = geofence(row)
            except WktError as exc:
                self.summary.geofences["skipped"] += 1
                self.summary.geofence_errors.append(f"{row.get('name')!r}: {exc}")
                continue
            key = (fence["name"], json.dumps(fence["geometry"], sort_keys=True))
            if key in existing:
                self.summary.geofences["existing"] += 1
                continue
            try:
                await self.api.call("POST", "/gw/geofences", json=[fence])
            except ClientError as exc:
                self.summary.geofences["skipped"] += 1
                self.summary.geofence_errors.append(f"{row.get('name')!r}: {exc}")
                continue
            existing.add(key)
            self.summary.geofences["created"] += 1

    async def positions(self, devices: dict[int, dict[str, Any]], event_columns: set[str] | None) -> None:
        from sinogate.imports.traccar import MESSAGE_EVENTS, event_message, position_message

        cursors: dict[str, int] = self.state.setdefault("positions", {})
        event_cursors: dict[str, int] = self.state.setdefault("events", {})
        total = 0
        for tid in devices:
            found = await self.db.rows("SELECT COUNT(*) AS n FROM tc_positions WHERE deviceid = ? AND id > ?",
                                       tid, int(cursors.get(str(tid), 0)))
            total += int(found[0]["n"])
        if event_columns is not None:
            for row in await self.db.rows("SELECT type, COUNT(*) AS n FROM tc_events GROUP BY type"):
                self.summary.event_types[str(row["type"])] += int(row["n"])
        time_column = "eventtime" if event_columns and "eventtime" in event_columns else "servertime"
        budget = self.stop_after
        with _progress(self.progress) as bar:
            task = bar.add_task("positions", total=total)
            for tid, device in devices.items():
                while True:
                    limit = self.batch if budget is None else min(self.batch, budget)
                    if limit <= 0:
                        self.summary.stopped_early = True
                        return
                    rows = await self.db.rows(
                        "SELECT * FROM tc_positions WHERE deviceid = ? AND id > ? ORDER BY id LIMIT ?",
                        tid, int(cursors.get(str(tid), 0)), limit)
                    if not rows:
                        break
                    messages = []
                    for row in rows:
                        message = position_message(row)
                        if message is None:
                            self.summary.positions_unusable += 1
                        else:
                            messages.append(message)
                    if messages:
                        await self.api.call("POST", f"/gw/devices/{device['id']}/messages", json=messages)
                    self.summary.positions_read += len(rows)
                    self.summary.positions_sent += len(messages)
                    cursors[str(tid)] = int(rows[-1]["id"])
                    self.save()  # only after the server stored the batch
                    bar.advance(task, len(rows))
                    if budget is not None:
                        budget -= len(rows)
                if event_columns is None:
                    continue
                types = sorted(MESSAGE_EVENTS)
                rows = await self.db.rows(
                    f"SELECT id, type, {time_column}, attributes FROM tc_events WHERE deviceid = ? AND id > ? "
                    f"AND type IN ({', '.join('?' for _ in types)}) ORDER BY id",
                    tid, int(event_cursors.get(str(tid), 0)), *types)
                messages = [m for m in (event_message(r) for r in rows) if m is not None]
                for start in range(0, len(messages), self.batch):
                    await self.api.call("POST", f"/gw/devices/{device['id']}/messages",
                                        json=messages[start:start + self.batch])
                self.summary.events_sent += len(messages)
                if rows:
                    event_cursors[str(tid)] = int(rows[-1]["id"])
                    self.save()

    async def commands(self, devices: dict[int, dict[str, Any]]) -> None:
        from sinogate.commands.catalog import destructive
        from sinogate.imports.traccar import command

        done: list[int] = self.state.setdefault("commands", [])
        for row in await self.db.rows("SELECT * FROM tc_commands_queue ORDER BY id"):
            device = devices.get(int(row["deviceid"]))
            label = f"#{row['id']} {row.get('type')} for {device['name'] if device else row['deviceid']}"
            if int(row["id"]) in done:
                self.summary.commands["existing"] += 1
                continue
            mapped = command(row)
            if device is None or mapped is None:
                self.summary.commands["skipped"] += 1
                self.summary.command_notes.append(f"skipped {label}: " + ("device not imported" if device is None
                                                                           else "no such sinogate command"))
                continue
            name, props = mapped
            why = destructive(device["protocol"], name, props)
            if why is not None:
                self.summary.commands["skipped"] += 1
                self.summary.command_notes.append(f"not queued {label}: {name} {why}; queue it yourself with "
                                                  f"\"confirm\": true if it is still wanted")
                continue
            pending = await self.api.call("GET", f"/gw/devices/{device['id']}/commands-queue")
            if any(p["name"] == name and (p.get("properties") or {}) == props for p in pending):
                self.summary.commands["existing"] += 1
            else:
                await self.api.call("POST", f"/gw/devices/{device['id']}/commands-queue",
                                    json=[{"name": name, "properties": props}])
                self.summary.commands["queued"] += 1
            done.append(int(row["id"]))
            self.save()


async def import_traccar(api: AsyncApi, db_url: str, state_path: Path | None, restart: bool, batch: int,
                         default_protocol: str | None, stop_after: int | None, commands: bool,
                         progress: bool) -> Summary:
    from sinogate.imports.database import open_database

    state = {} if restart or state_path is None else load_state(state_path)
    db = await open_database(db_url)
    try:
        job = TraccarImport(api, db, state, state_path, batch, default_protocol, stop_after, commands, progress)
        return await job.run()
    finally:
        await db.close()
        await api.close()


# --- logs ----------------------------------------------------------------------------------------------

async def import_log(api: AsyncApi, protocol: str, lines: list[str], create: bool, batch: int) -> list[str]:
    from sinogate.imports.logs import decode

    decoded = decode(lines, protocol, time.time())
    existing = {(d.get("protocol"), str((d.get("configuration") or {}).get("ident"))): d
                for d in await api.call("GET", "/gw/devices")}
    sent, created, unknown = 0, 0, []
    try:
        for ident, messages in sorted(decoded.messages.items()):
            device = existing.get((protocol, ident))
            if device is None:
                if not create:
                    unknown.append(ident)
                    continue
                device = (await api.call("POST", "/gw/devices", json=[{"name": ident, "protocol": protocol,
                                                                        "configuration": {"ident": ident}}]))[0]
                created += 1
            for start in range(0, len(messages), batch):
                await api.call("POST", f"/gw/devices/{device['id']}/messages", json=messages[start:start + batch])
            sent += len(messages)
    finally:
        await api.close()
    out = [f"lines: {decoded.lines} read, {decoded.skipped} skipped (other protocols, data sent to devices, "
           f"other log lines), {len(decoded.errors)} with errors",
           f"messages: {sent} sent for {len(decoded.messages) - len(unknown)} devices ({created} created); the server "
           f"stores each once"]
    if unknown:
        out.append(f"not imported: {len(unknown)} unknown idents (without --create): {', '.join(unknown[:10])}")
    out.extend(f"  {e}" for e in decoded.errors[:20])
    return out


def register(app: typer.Typer) -> None:
    imports = typer.Typer(help="Import history: a Traccar database, raw captures. Through the server's API.",
                          no_args_is_help=True)
    app.add_typer(imports, name="import")

    @imports.command("traccar")
    def traccar(
        db: str = typer.Option(..., "--db", help="Traccar's database: postgresql://user:pass@host/traccar or "
                                                 "mysql://user:pass@host:3306/traccar"),
        state: Path | None = typer.Option(None, "--state", help="Resume file (default under $XDG_STATE_HOME/"
                                                                "sinogate, one per database and server)"),
        restart: bool = typer.Option(False, "--restart", help="Ignore the resume file (nothing is stored twice)"),
        batch: int = typer.Option(BATCH, "--batch", min=1, max=10000, help="Positions per API call"),
        protocol: str | None = typer.Option(None, "--protocol", help="Protocol for devices without positions "
                                                                     "(h02 or jt808; default: skip them)"),
        stop_after: int | None = typer.Option(None, "--stop-after", min=1, help="Stop after this many positions "
                                                                               "(a trial; run again to go on)"),
        commands: bool = typer.Option(True, "--commands/--no-commands", help="Queue Traccar's pending commands "
                                                                             "(never destructive ones)"),
        progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bar on a terminal"),
        url: str | None = url_option(),
        token: str | None = token_option(),
        config: Path | None = config_option(),
    ) -> None:
        """Import devices, geofences, positions, device events and pending commands from a Traccar database."""
        from sinogate.imports.database import DatabaseError

        if protocol not in (None, "h02", "jt808"):
            raise typer.BadParameter("must be h02 or jt808", param_hint="--protocol")
        with one_line_errors():
            base = server_url(url, config)
            api = AsyncApi(base, find_token(token, None, config))
            state_path = state or default_state_path(db, base)
            try:
                summary = asyncio.run(import_traccar(api, db, state_path, restart, batch, protocol, stop_after,
                                                     commands, progress))
            except DatabaseError as exc:
                raise ClientError(str(exc)) from exc
        for line in summary.lines():
            typer.echo(line)
        typer.echo(f"resume state: {state_path}", err=True)

    @imports.command("log")
    def log(
        file: Path = typer.Argument(..., help="Traccar's tracker-server.log, or one capture (hex or H02 text) a line"),
        protocol: str = typer.Option(..., "--protocol", "-p", help="h02 or jt808 (other protocols' lines are "
                                                                   "skipped)"),
        create: bool = typer.Option(True, "--create/--no-create", help="Create devices for idents not yet known"),
        batch: int = typer.Option(BATCH, "--batch", min=1, max=10000, help="Messages per API call"),
        url: str | None = url_option(),
        token: str | None = token_option(),
        config: Path | None = config_option(),
    ) -> None:
        """Replay raw captures as messages of the devices they name, with their own device times."""
        if protocol not in ("h02", "jt808"):
            raise typer.BadParameter("must be h02 or jt808", param_hint="--protocol")
        with one_line_errors():
            try:
                text = sys.stdin.read() if str(file) == "-" else file.read_text(encoding="utf-8", errors="replace")
            except OSError as exc:
                raise ClientError(f"cannot read {file}: {exc.strerror or exc}") from exc
            api = AsyncApi(server_url(url, config), find_token(token, None, config))
            lines = asyncio.run(import_log(api, protocol, text.splitlines(), create, batch))
        for line in lines:
            typer.echo(line)
