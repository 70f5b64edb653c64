"""The command service: real-time commands, the persistent queue, reply matching and expiry.

Lifecycle of a command (all persisted in the store's ``commands`` table)::

    queued ──(written to the device)──▶ sent ──(reply matched)──▶ processed
       │                                 │
       └──────────(ttl)──────────────────┴──▶ expired / canceled (user, attempts, encode error)

A queued command is written as soon as its device is connected (on the next connection
otherwise). A sent command whose connection drops before the reply is written again on the next
connection, up to ``max_attempts`` (10) times. On startup, ``sent`` commands go back to
``queued`` and commands whose TTL passed while the server was down become ``expired``.

Real-time commands are written only to a connected device and their caller waits for the reply;
no reply within the timeout leaves the command ``expired`` (the reason says why).

Commands a device reads one per packet (``EncodedCommand.one_at_a_time``: H02 raw SMS-style text
such as ``RCONF``, ``RESTART``) are kept to one on the wire per device: the next one stays queued
(a real-time one waits) until the previous one is answered, finished, or ``raw_reply_timeout``
seconds (30) passed without its reply; the previous one then stays ``sent`` (its reply may still
come) until its TTL.

Every status change is published on the event bus as a ``command`` event; a reply that matches
no pending command is published with ``"unmatched": true`` and logged, and stays stored as a
message like any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from sinogate.codecs import CodecError
from sinogate.commands import catalog, lifecycle, matching
from sinogate.commands.catalog import CommandError
from sinogate.commands.lifecycle import CommandStatus, InvalidTransition
from sinogate.commands.matching import Pending
from sinogate.commands.settings import SettingsShadow
from sinogate.commands.sms import DEFAULT_PASSWORD, password_of
from sinogate.ingest import Committed
from sinogate.interfaces import (
    Clock,
    CommandRouting,
    DeviceConnection,
    EventSink,
    LaterWriter,
    SessionLookup,
    TaskRunner,
)
from sinogate.store.base import (
    CommandStore,
    IngestBatch,
    KeyValueStore,
    LogRecord,
    NotFound,
    StoreError,
    TelemetryStore,
)

log = logging.getLogger("sinogate.commands")

ACTIVE: tuple[str, ...] = tuple(str(s) for s in lifecycle.ACTIVE)
FINAL: tuple[str, ...] = tuple(str(s) for s in lifecycle.FINAL)
TTL_MIN, TTL_MAX, TTL_DEFAULT = 60.0, 2592000.0, 86400.0
DESTRUCTIVE_TTL_DEFAULT = 600.0  # a queued destructive command must not go out a day later by surprise
ENGINE_STOP_MAX_SPEED = 20.0  # km/h: engine.stop is held while the device reports more
MAX_ATTEMPTS = 10
REPLY_TYPES = frozenset({"V4", "SMS", "LINK", "0x0001", "0x0104"}) | matching.JT808_TEXT_TYPES
REBOOT_TEXTS = frozenset({"RESTART", "CQ", "RESET", "REBOOT"})


class CommandFailed(Exception):
    """A command that could not be delivered or got no reply: API error code 2."""

    def __init__(self, reason: str, command: dict[str, Any] | None = None, code: int = 2) -> None:
        super().__init__(reason)
        self.reason = reason
        self.command = command
        self.code = code


def public(row: dict[str, Any]) -> dict[str, Any]:
    """The API/event shape of a stored command."""
    payload = row.get("payload")
    text: str | None = None
    if isinstance(payload, bytes | bytearray):
        raw = bytes(payload)
        text = raw.decode("ascii") if raw.isascii() and raw.decode("ascii").isprintable() else raw.hex()
    return {
        "id": row["id"],
        "device_id": row.get("device_id"),
        "ident": row.get("ident"),
        "protocol": row.get("protocol"),
        "name": row["name"],
        "properties": row.get("properties") or {},
        "status": row["status"],
        "realtime": bool(row.get("realtime")),
        "created": row.get("created"),
        "expire": row.get("expire"),
        "attempts": row.get("attempts", 0),
        "max_attempts": row.get("max_attempts", MAX_ATTEMPTS),
        "sent": row.get("sent"),
        "finished": row.get("finished"),
        "executed": row.get("executed"),
        "response": row.get("response"),
        "reply": row.get("reply"),
        "reason": row.get("reason"),
        "payload": text,
        "timestamp": row.get("finished") or row.get("sent") or row.get("created"),
    }


def _options(row: dict[str, Any]) -> dict[str, Any]:
    """Options of the request kept with the command (in its ``match`` column): ``force``."""
    match = row.get("match") or {}
    return {"force": True} if isinstance(match, dict) and match.get("force") else {}


def _is_reboot(row: dict[str, Any]) -> bool:
    if row["name"] == "reboot":
        return True
    if row["name"] == "custom":
        props = row.get("properties") or {}
        text = props.get("payload", props.get("text"))
        return isinstance(text, str) and text.strip().upper() in REBOOT_TEXTS
    return False


class CommandService:
    """The operations behind the command API; a session listener (delivery on attach, requeue on
    detach) and an after-commit publisher (replies matched once they are durable)."""

    name = "commands"

    def __init__(self, store: CommandStore, kv: KeyValueStore, sessions: SessionLookup, tasks: TaskRunner,
                 events: EventSink, later: LaterWriter, clock: Clock = time.time,
                 telemetry: TelemetryStore | None = None,
                 engine_stop_max_speed: float = ENGINE_STOP_MAX_SPEED,
                 routing: CommandRouting | None = None) -> None:
        self.store = store
        self.kv = kv  # the settings shadow's values
        self.sessions = sessions
        self.tasks = tasks
        self.events = events
        self.later = later
        self.clock = clock
        self.telemetry = telemetry  # the latest speed, for holding engine.stop while the vehicle moves
        self.engine_stop_max_speed = engine_stop_max_speed
        # Several nodes: a node keeps in memory only the commands of devices connected to it; the
        # rest stay in the store until the node that gets the device adopts them.
        self.routing = routing
        self.sweep_every = 5.0  # s: how often a cluster node expires the commands nobody holds
        self._last_sweep = 0.0
        self.observers: list[Callable[[dict[str, Any]], None]] = []  # see every status change (command support)
        self._held: dict[int, str] = {}  # command id → why it is held (engine.stop while moving)
        self.settings = SettingsShadow(self, kv)
        self.tick = 1.0  # how often TTLs are checked, s
        self.text_grace = 30.0  # how long an acknowledged JT/T 808 text command waits for its text, s
        self.attach_delay = 0.1  # let the protocol's own replies (registration, auth) go out first, s
        self.raw_reply_timeout = 30.0  # a one-at-a-time command blocks the next this long without a reply, s
        self._on_wire: dict[int, tuple[int, float]] = {}  # device id → (one-at-a-time command id, sent at)
        self._rows: dict[int, dict[str, Any]] = {}  # active commands by id
        self._queued: dict[int, list[dict[str, Any]]] = {}  # device id → rows waiting to be written
        self._sent: dict[int, list[Pending]] = {}  # device id → written, waiting for the reply
        self._conn: dict[int, int] = {}  # command id → connection it was written on
        self._waiters: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ready = asyncio.Event()
        self._closed = False
        self._loop_task: asyncio.Task[Any] | None = None

    def start(self) -> None:
        """Loads the active commands (recovery after a restart), then starts the expiry loop."""
        self.tasks.spawn(self._recover())

    # startup, expiry -------------------------------------------------------------------------
    async def _recover(self) -> None:
        if self.routing is not None:
            # Other nodes hold their devices' commands: a starting node adopts a device's commands
            # when the device connects to it, and expires only those no live node holds (_sweep).
            self._ready.set()
            self._loop_task = asyncio.get_running_loop().create_task(self._expiry_loop())
            return
        store = self.store
        now = self.clock()
        try:
            rows = await store.commands(statuses=ACTIVE)
        except StoreError:
            rows = []
        for row in rows:
            if row["id"] in self._rows:  # created through the API while we were loading
                continue
            if row.get("expire") is not None and row["expire"] <= now:
                await self._finish(row, "expired", reason="ttl passed while the server was down")
            elif row.get("realtime"):
                await self._finish(row, "expired", reason="server restarted before the reply")
            else:
                if row["status"] == "sent":
                    status = lifecycle.transition(row["status"], lifecycle.CommandEvent.REQUEUE)
                    row.update(await store.update_command(row["id"], {"status": str(status)}))
                self._remember_queued(row)
        self._ready.set()
        self._loop_task = asyncio.get_running_loop().create_task(self._expiry_loop())

    def close(self) -> None:
        """Stops the expiry loop (the runtime's ``stop`` calls this)."""
        self._closed = True
        if self._loop_task is not None:
            self._loop_task.cancel()

    async def _expiry_loop(self) -> None:
        while not self._closed:
            await asyncio.sleep(self.tick)
            try:
                await self.expire_now()
            except StoreError:
                return
            except Exception:
                log.exception("command expiry failed")

    async def expire_now(self, now: float | None = None) -> int:
        """Expires commands whose TTL passed; closes acknowledged text commands after the grace time."""
        now = self.clock() if now is None else now
        count = 0
        for row in list(self._rows.values()):
            if row.get("realtime"):
                continue
            expire = row.get("expire")
            if expire is not None and expire <= now:
                await self._finish(row, "expired", reason="ttl expired")
                count += 1
        if self.routing is not None and now - self._last_sweep >= self.sweep_every:
            self._last_sweep = now
            count += await self._sweep(now)
        for pendings in list(self._sent.values()):
            for p in list(pendings):
                if p.acked_at is not None and p.acked_at + self.text_grace <= now:
                    acked = self._rows.get(p.id)
                    if acked is not None and not acked.get("realtime"):
                        await self._finish(acked, "processed", executed=True, response=p.acked)
        for device_id, (_, sent) in list(self._on_wire.items()):
            if sent + self.raw_reply_timeout <= now:  # no reply in time: the next one may go
                del self._on_wire[device_id]
                await self._deliver_queued(device_id)
        return count

    # several nodes -----------------------------------------------------------------------------
    async def _sweep(self, now: float) -> int:
        """Expires active commands past their TTL whose device no live node holds (a node that
        holds one expires it itself)."""
        assert self.routing is not None
        count = 0
        for row in await self.store.commands(statuses=ACTIVE):
            expire = row.get("expire")
            if row["id"] in self._rows or expire is None or expire > now:
                continue
            try:
                if await self.routing.owner(row["device_id"]) is not None:
                    continue
            except Exception:
                return count  # the device map is away: try again later
            reason = "ttl expired" if not row.get("realtime") else "the node that sent it stopped before the reply"
            await self._finish(row, "expired", reason=reason)
            count += 1
        return count

    async def adopt(self, device_id: int) -> int:
        """Takes over the device's active commands from the store (it just connected here, or
        another node queued one for it): a ``sent`` one goes back to the queue, as after a restart.
        Returns how many were new here."""
        adopted = 0
        for row in await self.store.commands([device_id], statuses=ACTIVE):
            if row["id"] in self._rows or row.get("realtime"):
                continue  # known, or waited for by the node that sent it
            if row["status"] == "sent":
                status = lifecycle.transition(row["status"], lifecycle.CommandEvent.REQUEUE)
                row.update(await self.store.update_command(row["id"], {"status": str(status)}))
            self._remember_queued(row)
            adopted += 1
        queue = self._queued.get(device_id)
        if queue:
            queue.sort(key=lambda r: r["id"])
        return adopted

    async def hand_over(self, device_id: int) -> None:
        """Several nodes, after ``on_detach``: the device left this node, so its queued commands
        (those ``on_detach`` put back too) are dropped from memory and stored as queued, for
        whichever node it connects to next — unless it came back here meanwhile."""
        if self.sessions.session_for(device_id) is not None:
            return
        rows = self._queued.pop(device_id, [])  # at once: a second call finds nothing to write
        for row in rows:
            self._rows.pop(row["id"], None)
            self._held.pop(row["id"], None)
        for row in rows:
            try:
                await self.store.update_command(row["id"], {"status": row["status"]})
            except StoreError as exc:
                log.warning("command %s: could not store status %s: %s", row["id"], row["status"], exc)

    async def _forward(self, node: str, op: str, payload: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Runs ``op`` on ``node``; its errors come back as this service's exceptions."""
        assert self.routing is not None
        try:
            answer = await self.routing.request(node, "command", {**payload, "op": op}, timeout)
        except Exception as exc:
            raise CommandFailed(f"the device is connected to node {node}, which did not answer: {exc}") from exc
        error = answer.get("error")
        if isinstance(error, dict):
            reason = str(error.get("reason") or "failed")
            if error.get("kind") == "command":
                raise CommandError(reason)
            raise CommandFailed(reason, error.get("command"), int(error.get("code") or 2))
        result = answer.get("ok")
        return result if isinstance(result, dict) else {}

    async def serve_request(self, op: str, payload: dict[str, Any], device: dict[str, Any] | None) -> dict[str, Any]:
        """Runs a request another node forwarded (``realtime``, ``adopt``, ``cancel``); the answer
        is ``{"ok": ...}`` or ``{"error": {"kind", "reason", "command", "code"}}``."""
        try:
            if op == "adopt":
                if device is None:
                    raise CommandFailed("no such device")
                adopted = await self.adopt(device["id"])
                session = self.sessions.session_for(device["id"])
                if session is not None and self._ready.is_set():
                    for row in list(self._queued.get(device["id"], [])):
                        await self._deliver(session, row)
                return {"ok": {"adopted": adopted}}
            if op == "cancel":
                found = await self.cancel(int(payload["command_id"]), str(payload.get("reason") or "canceled"))
                return {"ok": found}
            if op == "realtime":
                if device is None:
                    raise CommandFailed("no such device")
                return {"ok": await self.send_realtime(
                    device, str(payload["name"]), payload.get("properties"), float(payload.get("timeout", 15.0)),
                    confirm=bool(payload.get("confirm")), force=bool(payload.get("force")), forwarded=True)}
            raise CommandError(f"unknown operation {op!r}")
        except CommandError as exc:
            return {"error": {"kind": "command", "reason": str(exc)}}
        except CommandFailed as exc:
            return {"error": {"kind": "failed", "reason": exc.reason, "command": exc.command, "code": exc.code}}

    # one-at-a-time commands ------------------------------------------------------------------
    def _wire_busy(self, device_id: int, now: float) -> bool:
        """Is a one-at-a-time command of this device still on the wire (no reply, no timeout)?"""
        busy = self._on_wire.get(device_id)
        return busy is not None and busy[1] + self.raw_reply_timeout > now and busy[0] in self._rows

    def _wire_freed(self, device_id: int | None, command_id: int) -> None:
        """The command is finished or back in the queue: if it held the wire, the next one may go."""
        busy = self._on_wire.get(device_id) if device_id is not None else None
        if busy is not None and busy[0] == command_id:
            del self._on_wire[device_id]  # type: ignore[arg-type]
            self.tasks.spawn(self._deliver_queued(device_id))  # type: ignore[arg-type]

    async def _deliver_queued(self, device_id: int) -> None:
        session = self.sessions.session_for(device_id)
        if session is None or session.closed or not self._ready.is_set():
            return
        for row in list(self._queued.get(device_id, [])):
            if session.closed:
                return
            await self._deliver(session, row)

    # bookkeeping -----------------------------------------------------------------------------
    def _remember_queued(self, row: dict[str, Any]) -> None:
        self._rows[row["id"]] = row
        self._queued.setdefault(row["device_id"], []).append(row)

    def _forget(self, command_id: int) -> None:
        self._held.pop(command_id, None)
        row = self._rows.pop(command_id, None)
        self._conn.pop(command_id, None)
        if row is None:
            return
        device_id = row.get("device_id")
        self._wire_freed(device_id, command_id)
        queued = self._queued.get(device_id)  # type: ignore[arg-type]
        if queued:
            queued[:] = [r for r in queued if r["id"] != command_id]
        sent = self._sent.get(device_id)  # type: ignore[arg-type]
        if sent:
            sent[:] = [p for p in sent if p.id != command_id]

    def _event(self, device_id: int | None, protocol: str | None, ident: str | None,
               data: Callable[[], dict[str, Any]]) -> None:
        """Publishes a ``command`` event; ``data`` is only built when someone listens."""
        bus = self.events
        if bus.wants("command"):
            bus.publish({"type": "command", "device_id": device_id, "protocol": protocol, "ident": ident,
                         "data": data()})

    def _store_log(self, record: LogRecord) -> None:
        with contextlib.suppress(RuntimeError):
            self.later.store_later(IngestBatch(logs=[record]))

    def _publish(self, row: dict[str, Any], **extra: Any) -> None:
        for observe in self.observers:
            try:
                observe(row)
            except Exception:
                log.exception("command observer failed on command %s", row.get("id"))
        self._event(row.get("device_id"), row.get("protocol"), row.get("ident"), lambda: {**public(row), **extra})

    def _log(self, row: dict[str, Any], text: str) -> None:
        self._store_log(LogRecord(self.clock(), "command", row.get("protocol") or "", self._conn.get(row["id"]),
                                  row.get("ident"), row.get("device_id"), reason=text))

    async def _update(self, row: dict[str, Any], fields: dict[str, Any]) -> None:
        row.update(fields)
        await self.store.update_command(row["id"], fields)

    async def _finish(self, row: dict[str, Any], status: str, *, executed: bool | None = None,
                      response: str | None = None, reply: dict[str, Any] | None = None,
                      reason: str | None = None) -> dict[str, Any]:
        if row["status"] in FINAL and row["id"] not in self._rows:
            return row
        try:
            new = lifecycle.transition(row["status"], lifecycle.EVENT_FOR[CommandStatus(status)])
        except InvalidTransition as exc:
            log.warning("command %s: %s", row["id"], exc)
            self._forget(row["id"])
            return row
        self._forget(row["id"])
        fields: dict[str, Any] = {"status": str(new), "finished": self.clock()}
        if executed is not None:
            fields["executed"] = executed
        if response is not None:
            fields["response"] = response
        if reply is not None:
            fields["reply"] = reply
        if reason is not None:
            fields["reason"] = reason
        try:
            await self._update(row, fields)
        except StoreError as exc:
            log.warning("command %s: could not store status %s: %s", row["id"], status, exc)
        self._publish(row)
        self._log(row, f"{row['name']} #{row['id']} {status}" + (f": {response or reason}" if response or reason
                                                                 else ""))
        try:
            await self.settings.on_finished(row)
        except StoreError:
            pass
        waiter = self._waiters.pop(row["id"], None)
        if waiter is not None and not waiter.done():
            waiter.set_result(row)
        return row

    def _prepare(self, device: dict[str, Any], name: str, props: dict[str, Any]) -> dict[str, Any]:
        """Fills in per-device defaults (the SMS password for H02 raw commands that need one)."""
        schema = catalog.schema_for(device["protocol"], name)
        if "password" in schema.get("properties", {}) and "password" not in props:
            pwd = password_of(device)
            if pwd != DEFAULT_PASSWORD:
                return {**props, "password": pwd}
        return props

    # engine.stop while moving ------------------------------------------------------------------
    async def speed_of(self, device_id: int) -> float | None:
        """The device's latest reported speed (km/h), ``None`` when unknown."""
        if self.telemetry is None:
            return None
        try:
            found = await self.telemetry.telemetry(device_id, ["position.speed"])
        except StoreError:
            return None
        value = (found.get("position.speed") or {}).get("value")
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None

    async def _moving(self, device_id: int) -> str | None:
        """Why an engine stop must wait now (the speed), or ``None``."""
        speed = await self.speed_of(device_id)
        if speed is None or speed <= self.engine_stop_max_speed:
            return None
        return (f"device is moving at {speed:.1f} km/h, above engine_stop_max_speed "
                f"{self.engine_stop_max_speed:g} km/h")

    async def _hold(self, row: dict[str, Any]) -> bool:
        """Keeps an engine stop queued while the vehicle moves (unless forced); publishes why once."""
        if _options(row).get("force") or not catalog.stops_engine(row.get("protocol") or "", row["name"],
                                                                   row.get("properties")):
            return False
        why = await self._moving(row["device_id"])
        if why is None:
            return False
        reason = f"held: {why}; sent once it drops"
        if self._held.get(row["id"]) != reason:
            self._held[row["id"]] = reason
            row["reason"] = reason
            with contextlib.suppress(StoreError):
                await self.store.update_command(row["id"], {"reason": reason})
            self._publish(row, held=True)
        return True

    async def _release(self, device_id: int) -> None:
        """A device with held commands reported: deliver what may go now."""
        session = self.sessions.session_for(device_id)
        if session is None or session.closed:
            return
        for row in list(self._queued.get(device_id, [])):
            if row["id"] in self._held:
                await self._deliver(session, row)

    # delivery --------------------------------------------------------------------------------
    def _register_sent(self, session: DeviceConnection, row: dict[str, Any], match: dict[str, Any],
                       expects: tuple[str, ...]) -> None:
        pending = Pending(row["id"], match, expects)
        self._rows[row["id"]] = row
        self._sent.setdefault(row["device_id"], []).append(pending)
        self._conn[row["id"]] = session.conn_id

    async def _deliver(self, session: DeviceConnection, row: dict[str, Any]) -> None:
        """Writes one queued command to the device (the row must be in the queue)."""
        device_id = row["device_id"]
        queued = self._queued.get(device_id, [])
        if row not in queued:
            return  # someone else delivered or finished it
        if row.get("attempts", 0) >= row.get("max_attempts", MAX_ATTEMPTS):
            await self._finish(row, "canceled", reason=f"no reply after {row['attempts']} attempts")
            return
        if await self._hold(row) or row not in queued:
            return
        now = self.clock()
        try:
            encoded = session.encode_command(row["name"], row.get("properties") or {}, now)
        except CodecError as exc:
            await self._finish(row, "canceled", reason=f"cannot encode: {exc.reason}")
            return
        if encoded.one_at_a_time and self._wire_busy(device_id, now):
            return  # stays queued: goes out after the previous one's reply or its reply timeout
        try:
            session.send(encoded.data)
        except (ConnectionError, OSError) as exc:
            log.info("command %s not written to %s: %s", row["id"], session.ident, exc)
            return
        queued.remove(row)
        self._register_sent(session, row, encoded.match, encoded.expects)
        if encoded.one_at_a_time:
            self._on_wire[device_id] = (row["id"], now)
        status = lifecycle.transition(row["status"], lifecycle.CommandEvent.WRITTEN)
        fields = {"status": str(status), "sent": now, "attempts": row.get("attempts", 0) + 1,
                  "match": {**encoded.match, "expects": list(encoded.expects), **_options(row)},
                  "payload": encoded.data}
        if row.get("reason") and row["id"] in self._held:
            del self._held[row["id"]]
            fields["reason"] = None
        try:
            await self._update(row, fields)
        except StoreError:
            return
        self._publish(row)

    async def _deliver_all(self, session: DeviceConnection) -> None:
        await self._ready.wait()
        device_id = session.device_id
        if self.routing is not None and device_id is not None:
            try:
                await self.adopt(device_id)
            except StoreError as exc:
                log.warning("could not take over the commands of device %s: %s", device_id, exc)
        await asyncio.sleep(self.attach_delay)
        if device_id is None or session.closed or self.sessions.session_for(device_id) is not session:
            return
        for row in list(self._queued.get(device_id, [])):
            if session.closed:
                return
            await self._deliver(session, row)

    # hooks: session listener, after-commit publisher --------------------------------------------
    def on_attach(self, session: DeviceConnection) -> None:
        if session.device_id is not None:
            self.tasks.spawn(self._deliver_all(session))

    def on_detach(self, session: DeviceConnection) -> None:
        device_id = session.device_id
        if device_id is None:
            return
        for p in list(self._sent.get(device_id, [])):
            if self._conn.get(p.id) != session.conn_id:
                continue
            row = self._rows.get(p.id)
            if row is None:
                continue
            if _is_reboot(row):
                self.tasks.spawn(self._finish(row, "processed", executed=True,
                                                response="connection closed after the reboot command"))
            elif row.get("realtime"):
                self.tasks.spawn(self._finish(row, "canceled", reason="connection closed before the reply"))
            else:  # written again on the next connection
                try:
                    status = lifecycle.transition(row["status"], lifecycle.CommandEvent.REQUEUE)
                except InvalidTransition as exc:
                    log.warning("command %s: %s", row["id"], exc)
                    continue
                row["status"] = str(status)
                self._sent[device_id].remove(p)
                self._conn.pop(p.id, None)
                self._queued.setdefault(device_id, []).append(row)
                self._queued[device_id].sort(key=lambda r: r["id"])
        busy = self._on_wire.get(device_id)
        if busy is not None and self._conn.get(busy[0]) in (None, session.conn_id):
            del self._on_wire[device_id]  # the next connection starts with a free wire

    def committed(self, batch: Committed) -> None:
        """Matches durable replies to the commands waiting for them."""
        device_id = batch.device_id
        if device_id is None:
            return
        protocol = batch.source.protocol
        if self._held and batch.messages and any(
                r["id"] in self._held for r in self._queued.get(device_id, ())):
            self.tasks.spawn(self._release(device_id))
        pending = self._sent.get(device_id, [])  # only async code adds a device's list; none runs in here
        for message in batch.messages:
            if message.get("message.type") not in REPLY_TYPES:
                continue
            found = matching.find(protocol, pending, message)
            if found is None:
                if matching.is_reply(protocol, message):
                    self._unmatched(batch, message)
                continue
            row = self._rows.get(found.pending.id)
            if row is None:
                continue
            if not found.final:
                found.pending.acked = found.response
                found.pending.acked_at = self.clock()
                row["response"] = found.response
                self._publish(row, acknowledged=True)
                continue
            pending.remove(found.pending)
            self.tasks.spawn(self._finish(row, "processed", executed=found.executed, response=found.response,
                                            reply=message))

    def _unmatched(self, batch: Committed, message: dict[str, Any]) -> None:
        response = message.get("command.response") or matching.summary(message)
        source = batch.source
        log.info("%s %s: reply matches no pending command: %s", source.protocol, batch.ident, response)
        self._event(batch.device_id, source.protocol, batch.ident,
                    lambda: {"unmatched": True, "status": "unmatched", "response": response, "reply": message,
                             "timestamp": self.clock()})
        self._store_log(LogRecord(self.clock(), "command", source.protocol, source.conn_id, batch.ident,
                                  batch.device_id, source.peer, source.transport,
                                  reason=f"unmatched reply: {response}"))

    # operations --------------------------------------------------------------------------------
    def _new_row(self, device: dict[str, Any], name: str, props: dict[str, Any]) -> dict[str, Any]:
        return {"device_id": device["id"], "ident": device.get("ident"), "protocol": device["protocol"],
                "name": name, "properties": props, "max_attempts": MAX_ATTEMPTS, "created": self.clock()}

    async def send_realtime(self, device: dict[str, Any], name: str, properties: Any,
                            timeout: float = 15.0, *, confirm: bool = False, force: bool = False,
                            forwarded: bool = False) -> dict[str, Any]:
        """Writes the command to the connected device and waits for its reply.

        A destructive command needs ``confirm``; an engine stop is refused while the vehicle moves
        faster than ``engine_stop_max_speed`` unless ``force`` (queue it instead: it waits).
        Raises ``CommandError`` (bad request) or ``CommandFailed`` (offline, no reply)."""
        props = self._prepare(device, name, catalog.check(device["protocol"], name, properties))
        catalog.check_confirmed(device["protocol"], name, props, confirm)
        if not force and catalog.stops_engine(device["protocol"], name, props):
            why = await self._moving(device["id"])
            if why is not None:
                raise CommandError(f"{why}: queue the command (it is sent once the speed drops) "
                                   f"or send it with \"force\": true")
        session = self.sessions.session_for(device["id"])
        if session is None and self.routing is not None and not forwarded:
            node = await self._owner(device["id"])
            if node is not None:
                return await self._forward(node, "realtime", {
                    "device_id": device["id"], "name": name, "properties": properties, "timeout": timeout,
                    "confirm": confirm, "force": force}, timeout + 5.0)
        if session is None:
            raise CommandFailed(f"failed to deliver command '{name}' with timeout {timeout:g} s, "
                                f"device with id {device['id']} is not connected")
        now = self.clock()
        try:
            encoded = session.encode_command(name, props, now)
        except CodecError as exc:
            raise CommandError(exc.reason) from exc
        if encoded.one_at_a_time:  # wait for the wire (the previous one's reply or its timeout)
            deadline = now + timeout
            while self._wire_busy(device["id"], self.clock()):
                if self.clock() >= deadline or session.closed:
                    raise CommandFailed(f"command '{name}' not written within {timeout:g} s: the device has not "
                                        f"answered the previous raw text command yet")
                await asyncio.sleep(0.05)
            now = self.clock()
        row = await self.store.create_command({
            **self._new_row(device, name, props), "status": "sent", "realtime": True, "sent": now, "attempts": 1,
            "expire": now + timeout, "match": {**encoded.match, "expects": list(encoded.expects)},
            "payload": encoded.data,
        })
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters[row["id"]] = waiter
        self._register_sent(session, row, encoded.match, encoded.expects)
        if encoded.one_at_a_time:
            self._on_wire[device["id"]] = (row["id"], now)
        try:
            session.send(encoded.data)
        except (ConnectionError, OSError) as exc:
            await self._finish(row, "canceled", reason=f"write failed: {exc}")
            raise CommandFailed(f"failed to deliver command '{name}', device with id {device['id']} "
                                f"is not connected", public(row)) from exc
        self._publish(row)
        try:
            row = await asyncio.wait_for(asyncio.shield(waiter), timeout)
        except TimeoutError:
            pending = next((p for p in self._sent.get(device["id"], []) if p.id == row["id"]), None)
            if pending is not None and pending.acked is not None:
                return public(await self._finish(row, "processed", executed=True, response=pending.acked))
            reason = f"command '{name}' got no reply from device with id {device['id']} within {timeout:g} s"
            await self._finish(row, "expired", reason=reason)
            raise CommandFailed(reason, public(row)) from None
        finally:
            self._waiters.pop(row["id"], None)
        if row["status"] != "processed":
            raise CommandFailed(f"command '{name}' {row['status']}: {row.get('reason') or ''}".rstrip(": "),
                                public(row))
        return public(row)

    async def enqueue(self, device: dict[str, Any], name: str, properties: Any, ttl: Any = None,
                      expire: Any = None, *, confirm: bool = False, force: bool = False) -> dict[str, Any]:
        """Stores the command and writes it now if the device is connected.

        A destructive command needs ``confirm`` and defaults to a short TTL; an engine stop waits
        while the vehicle moves faster than ``engine_stop_max_speed`` unless ``force``."""
        props = self._prepare(device, name, catalog.check(device["protocol"], name, properties))
        catalog.check_confirmed(device["protocol"], name, props, confirm)
        if ttl is None and expire is None and catalog.destructive(device["protocol"], name, props):
            ttl = DESTRUCTIVE_TTL_DEFAULT
        now = self.clock()
        if expire is not None:
            if isinstance(expire, bool) or not isinstance(expire, int | float) or not now < expire <= now + TTL_MAX:
                raise CommandError("'expire' must be a UNIX time in the future, at most 30 days ahead")
            deadline = float(expire)
        else:
            ttl = TTL_DEFAULT if ttl is None else ttl
            if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not TTL_MIN <= ttl <= TTL_MAX:
                raise CommandError(f"'ttl' must be between {TTL_MIN:g} and {TTL_MAX:g} seconds")
            deadline = now + float(ttl)
        row = await self.store.create_command({
            **self._new_row(device, name, props), "status": "queued", "realtime": False, "expire": deadline,
            **({"match": {"force": True}} if force else {}),
        })
        session = self.sessions.session_for(device["id"])
        if self.routing is not None and session is None:
            # Not connected here: the node that holds the device takes it over now; if none does
            # (or the device map cannot tell), the node it connects to next does. It is stored.
            self._publish(row)
            try:
                node = await self._owner(device["id"])
            except CommandFailed as exc:
                log.warning("command %s stays queued: %s", row["id"], exc.reason)
                node = None
            if node is not None:
                try:
                    await self._forward(node, "adopt", {"device_id": device["id"]}, 5.0)
                except CommandFailed as exc:
                    log.info("command %s stays queued: %s", row["id"], exc.reason)
            return public(row)
        self._remember_queued(row)
        self._publish(row)
        if session is not None and self._ready.is_set():
            for queued in list(self._queued.get(device["id"], [])):
                await self._deliver(session, queued)
        return public(row)

    async def cancel(self, command_id: int, reason: str = "canceled by the user") -> dict[str, Any] | None:
        """Cancels an active command; returns it, or ``None`` when it was not active."""
        row = self._rows.get(command_id)
        if row is None and self.routing is not None:
            try:
                row = await self.store.get_command(command_id)
            except NotFound:
                return None
            if row["status"] not in ACTIVE:
                return None
            node = await self._owner(row["device_id"])
            if node is not None:
                found = await self._forward(node, "cancel", {"device_id": row["device_id"], "command_id": command_id,
                                                             "reason": reason}, 10.0)
                return found or None
        if row is None:
            return None
        return public(await self._finish(row, "canceled", reason=reason))

    async def _owner(self, device_id: int) -> str | None:
        """Another live node holding the device's connection, or ``None``."""
        assert self.routing is not None
        try:
            node = await self.routing.owner(device_id)
        except Exception as exc:
            raise CommandFailed(f"cannot tell which node holds device {device_id}: {exc}") from exc
        return None if node == self.routing.name else node

    async def get(self, command_id: int) -> dict[str, Any]:
        row = self._rows.get(command_id)
        if row is not None:
            return public(row)
        return public(await self.store.get_command(command_id))

    async def queue(self, device_ids: list[int]) -> list[dict[str, Any]]:
        rows = await self.store.commands(device_ids, statuses=ACTIVE)
        return [public(self._rows.get(r["id"], r)) for r in rows]

    async def results(self, device_ids: list[int], query: Any = None) -> list[dict[str, Any]]:
        rows = await self.store.commands(device_ids, statuses=FINAL, query=query)
        return [public(r) for r in rows]

    async def find(self, device_ids: list[int], command_ids: list[int] | None,
                   statuses: tuple[str, ...]) -> list[dict[str, Any]]:
        """Commands of these devices, by id (``None``: all) and status."""
        if command_ids is None:
            rows = await self.store.commands(device_ids, statuses=statuses)
            return [public(self._rows.get(r["id"], r)) for r in rows]
        out = []
        for cid in command_ids:
            try:
                row = self._rows.get(cid) or await self.store.get_command(cid)
            except NotFound:
                continue
            if row.get("device_id") in device_ids and row["status"] in statuses:
                out.append(public(row))
        return out


__all__ = ["ACTIVE", "FINAL", "CommandError", "CommandFailed", "CommandService", "public"]
