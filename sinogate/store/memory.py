"""The store contract (``base``) in process memory: for unit tests and ``memory://``.

Nothing survives the process. Records are kept in the form SQLite stores them (messages, settings,
command properties and kv values as JSON text; times as floats) and converted the same way on
read, so callers see exactly what ``SQLiteStore`` returns and never share a mutable object with the
store. There is no I/O and no thread: every write is complete (and atomic) when its call returns.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from sinogate.jsonenc import dumps, dumps_bytes, encode_message, loads
from sinogate.store.base import (
    COMMAND_FIELDS,
    Conflict,
    IngestBatch,
    Message,
    NotFound,
    Store,
    StoreError,
    TimeQuery,
)
from sinogate.store.telemetry import TelemetryTable

T = TypeVar("T")

_DEVICE_COLUMNS = ("name", "ident", "protocol", "model", "phone", "settings", "enabled", "messages_ttl")
_COMMAND_COLUMNS = tuple(f for f in COMMAND_FIELDS if f != "id")
_COMMAND_JSON_COLUMNS = ("properties", "reply", "match")
_COMMAND_DEFAULTS: dict[str, Any] = {"properties": "{}", "realtime": 0, "attempts": 0, "max_attempts": 10}
_COMMAND_REQUIRED = ("name", "properties", "status", "realtime", "created", "attempts", "max_attempts")
_COMMAND_REAL = ("created", "expire", "sent", "finished")
_LOG_FIELDS = (
    "event", "protocol", "conn", "ident", "device_id", "peer", "transport", "recv", "send", "msgs", "duration",
    "reason",
)

DedupKey = tuple[str, str, float, int]


def _real(value: Any) -> Any:
    """What a REAL column gives back: integers become floats."""
    return float(value) if isinstance(value, int) else value


@dataclass(slots=True)
class _MessageRow:
    id: int
    device_id: int | None
    protocol: str
    ident: str
    ts: float
    server_ts: float
    key: DedupKey
    data: str


def _interval_row(item: dict[str, Any]) -> tuple[int, int, float, float, str]:
    """(calc, device, begin, end, JSON without id) of an interval, as SQLite keeps it."""
    return (int(item["calc.id"]), int(item["device.id"]), float(item["begin"]), float(item["end"]),
            dumps({k: v for k, v in item.items() if k != "id"}))


def _in_range(ts: float, query: TimeQuery) -> bool:
    return (query.from_ts is None or ts >= query.from_ts) and (query.to_ts is None or ts <= query.to_ts)


def _ordered(rows: Iterable[T], key: Callable[[T], tuple[float, int]], query: TimeQuery) -> list[T]:
    """``ORDER BY time, id`` (both descending when ``reverse``) then ``LIMIT count``."""
    out = sorted(rows, key=key, reverse=query.reverse)
    if query.count is not None and query.count >= 0:  # SQLite reads a negative LIMIT as "no limit"
        out = out[: int(query.count)]
    return out


class MemoryStore(Store):
    """Every role of the contract on dicts and lists; same shapes and rules as ``SQLiteStore``."""

    def __init__(self) -> None:
        self._open = False
        self._devices: dict[int, dict[str, Any]] = {}  # settings as JSON text, enabled/connected as int
        self._messages: dict[int, _MessageRow] = {}  # by id, in insertion order
        self._dedup: dict[DedupKey, int] = {}
        self._packets: dict[int, dict[str, Any]] = {}
        self._logs: dict[int, dict[str, Any]] = {}
        self._events: dict[int, tuple[int | None, float, str, str]] = {}  # id → device, ts, type, JSON
        self._intervals: dict[int, tuple[int, int, float, float, str]] = {}  # id → calc, device, begin, end, JSON
        self._idents: dict[tuple[str, str], dict[str, Any]] = {}
        self._commands: dict[int, dict[str, Any]] = {}  # JSON columns as text
        self._kv: dict[tuple[str, str], str] = {}
        self._states: dict[int, str] = {}
        self._telemetry = TelemetryTable()
        self._last_id = {"device": 0, "message": 0, "packet": 0, "log": 0, "command": 0, "event": 0, "interval": 0}

    def _next_id(self, table: str) -> int:
        self._last_id[table] += 1
        return self._last_id[table]

    def _check(self) -> None:
        if not self._open:
            raise StoreError("store is closed")

    # lifecycle -------------------------------------------------------------------------------
    async def open(self) -> None:
        self._open = True

    async def close(self) -> None:
        self._open = False

    # devices ---------------------------------------------------------------------------------
    @staticmethod
    def _device_out(row: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": row["id"],
            "name": row["name"],
            "ident": row["ident"],
            "protocol": row["protocol"],
            "model": row["model"],
            "phone": row["phone"],
            "settings": loads(row["settings"]),
            "enabled": bool(row["enabled"]),
            "connected": bool(row["connected"]),
            "last_active": row["last_active"],
            "created": row["created"],
            "messages_ttl": row["messages_ttl"],
        }

    def _device_with(self, protocol: Any, ident: Any, other_than: int | None = None) -> int | None:
        for device_id, row in self._devices.items():
            if device_id != other_than and row["protocol"] == protocol and row["ident"] == ident:
                return device_id
        return None

    async def create_device(self, fields: dict[str, Any]) -> dict[str, Any]:
        self._check()
        ident, protocol = fields.get("ident"), fields.get("protocol")
        if not ident or not protocol:
            raise StoreError("a device needs an ident and a protocol")
        ident = str(ident)
        if self._device_with(protocol, ident) is not None:
            raise Conflict(f"a {protocol} device with ident {ident} already exists")
        row = {
            "name": fields.get("name") or "",
            "ident": ident,
            "protocol": protocol,
            "model": fields.get("model"),
            "phone": fields.get("phone"),
            "settings": dumps(fields.get("settings") or {}),
            "enabled": int(fields.get("enabled", True)),
            "connected": 0,
            "last_active": None,
            "created": time.time(),
            "messages_ttl": fields.get("messages_ttl"),
        }
        device_id = self._next_id("device")
        self._devices[device_id] = {"id": device_id, **row}
        # Claim what was stored while the ident was unknown.
        for message in self._messages.values():
            if message.device_id is None and message.protocol == protocol and message.ident == ident:
                message.device_id = device_id
        for packet in self._packets.values():
            if packet["device_id"] is None and packet["protocol"] == protocol and packet["ident"] == ident:
                packet["device_id"] = device_id
        seen = self._idents.get((protocol, ident))
        if seen is not None:
            seen["device_id"] = device_id
        return self._device_out(self._devices[device_id])

    async def update_device(self, device_id: int, fields: dict[str, Any]) -> dict[str, Any]:
        self._check()
        sets = {k: v for k, v in fields.items() if k in _DEVICE_COLUMNS}
        if "settings" in sets:
            sets["settings"] = dumps(sets["settings"] or {})
        if "enabled" in sets:
            sets["enabled"] = int(bool(sets["enabled"]))
        if "ident" in sets and sets["ident"] is not None:
            sets["ident"] = str(sets["ident"])
        row = self._devices.get(device_id)
        if row is None:
            raise NotFound(f"device {device_id} not found")
        for column in ("name", "ident", "protocol"):
            if column in sets and sets[column] is None:
                raise StoreError(f"a device's {column} cannot be null")
        protocol, ident = sets.get("protocol", row["protocol"]), sets.get("ident", row["ident"])
        if self._device_with(protocol, ident, other_than=device_id) is not None:
            raise Conflict("another device already has that protocol and ident")
        row.update(sets)
        return self._device_out(row)

    async def delete_device(self, device_id: int) -> None:
        self._check()
        if self._devices.pop(device_id, None) is None:
            raise NotFound(f"device {device_id} not found")
        self._telemetry.drop(device_id)
        self._states.pop(device_id, None)
        for seen in self._idents.values():
            if seen["device_id"] == device_id:
                seen["device_id"] = None

    async def list_devices(self) -> list[dict[str, Any]]:
        self._check()
        return [self._device_out(self._devices[d]) for d in sorted(self._devices)]

    async def get_device(self, device_id: int) -> dict[str, Any]:
        self._check()
        row = self._devices.get(device_id)
        if row is None:
            raise NotFound(f"device {device_id} not found")
        return self._device_out(row)

    async def set_connected(self, device_id: int, connected: bool, last_active: float | None) -> None:
        self._check()
        row = self._devices.get(device_id)
        if row is None:
            return
        row["connected"] = int(connected)
        if last_active is not None:
            row["last_active"] = _real(last_active)

    # ingest ----------------------------------------------------------------------------------
    async def ingest(self, batch: IngestBatch) -> None:
        self._check()
        # Everything that can fail (encoding, conversions) runs before the first change.
        digests = batch.digests
        if digests is not None and len(digests) != len(batch.messages):
            raise StoreError("digests must be parallel to messages")
        new_rows: list[_MessageRow] = []
        keys: set[DedupKey] = set()
        for i, m in enumerate(batch.messages):
            if digests is not None:
                data, digest = dumps_bytes(m), digests[i]
            else:
                data, digest = encode_message(m)
            protocol = m.get("protocol.name", "")
            ident = str(m.get("ident", ""))
            ts = float(m.get("timestamp") or 0.0)
            server_ts = float(m.get("server.timestamp") or 0.0)
            key = (protocol, ident, ts, digest)
            if key in self._dedup or key in keys:
                continue  # a duplicate is skipped silently, and touches nothing
            keys.add(key)
            new_rows.append(_MessageRow(0, m.get("device.id"), protocol, ident, ts, server_ts, key, data.decode()))
        packets = [
            {
                "timestamp": _real(p.timestamp), "type": p.type, "conn": p.conn, "protocol": p.protocol,
                "peer": p.peer, "ident": p.ident, "device_id": p.device_id, "data": bytes(p.data),
            }
            for p in batch.packets
        ]
        logs = [
            {
                **{name: getattr(lg, name) for name in _LOG_FIELDS},
                "duration": _real(lg.duration),
                "timestamp": _real(lg.timestamp),
            }
            for lg in batch.logs
        ]
        idents = [(i.protocol, i.ident, _real(i.timestamp), i.peer, bytes(i.sample), i.device_id) for i in batch.idents]
        events = [(e.get("device.id"), float(e.get("timestamp") or 0.0), str(e["type"]),
                   dumps({k: v for k, v in e.items() if k != "id"})) for e in batch.events]
        intervals = [_interval_row(i) for i in batch.intervals]
        self._apply_telemetry([loads(row.data) for row in new_rows if row.device_id is not None])
        # Nothing below can fail.
        for row in new_rows:
            row.id = self._next_id("message")
            self._messages[row.id] = row
            self._dedup[row.key] = row.id
        for packet in packets:
            packet_id = self._next_id("packet")
            self._packets[packet_id] = {"id": packet_id, **packet}
        for log in logs:
            log_id = self._next_id("log")
            self._logs[log_id] = {"id": log_id, **log}
        for event, event_row in zip(batch.events, events, strict=True):
            event_id = self._next_id("event")
            self._events[event_id] = event_row
            event["id"] = event_id
        self._add_intervals(batch.intervals, intervals)
        for protocol, ident, ts, peer, sample, device_id in idents:
            seen = self._idents.get((protocol, ident))
            if seen is None:
                self._idents[(protocol, ident)] = {
                    "protocol": protocol, "ident": ident, "first_seen": ts, "last_seen": ts, "peer": peer,
                    "sample": sample, "device_id": device_id,
                }
            else:
                seen["last_seen"] = ts
                seen["peer"] = peer
                if device_id is not None:
                    seen["device_id"] = device_id

    def _apply_telemetry(self, messages: list[Message]) -> None:
        """Applies the rule to the stored copies; if a message breaks it, the table is restored."""
        table = self._telemetry
        touched = {m["device.id"] for m in messages}
        known = set(table.devices())
        saved = {}
        for device_id in touched & known:
            snapshot = table.snapshot(device_id)
            saved[device_id] = {"values": dict(snapshot["values"]), "times": dict(snapshot["times"])}
        try:
            for m in messages:
                table.apply(m)
        except Exception:
            for device_id in touched:
                if device_id in saved:
                    table.load(device_id, saved[device_id])
                else:
                    table.drop(device_id)
            raise

    # time series -----------------------------------------------------------------------------
    def _select_messages(
        self, device_ids: list[int] | None, query: TimeQuery, protocol: str | None
    ) -> list[_MessageRow]:
        wanted = None if device_ids is None else set(device_ids)
        rows = (
            r
            for r in self._messages.values()
            if (wanted is None or r.device_id in wanted)
            and (protocol is None or r.protocol == protocol)
            and _in_range(r.ts, query)
        )
        return _ordered(rows, lambda r: (r.ts, r.id), query)

    async def messages_raw(
        self, device_ids: list[int] | None, query: TimeQuery, protocol: str | None = None
    ) -> list[str]:
        self._check()
        return [r.data for r in self._select_messages(device_ids, query, protocol)]

    async def messages(
        self, device_ids: list[int] | None, query: TimeQuery, protocol: str | None = None
    ) -> list[Message]:
        return [loads(text) for text in await self.messages_raw(device_ids, query, protocol)]

    async def iter_messages(self, device_id: int, query: TimeQuery, chunk: int = 2000) -> AsyncIterator[Message]:
        after: tuple[float, int] | None = None  # (ts, id) of the last row given
        remaining = query.count
        while remaining is None or remaining > 0:
            self._check()
            limit = chunk if remaining is None else min(chunk, remaining)
            rows = heapq.nsmallest(
                limit,
                (
                    r
                    for r in self._messages.values()
                    if r.device_id == device_id
                    and _in_range(r.ts, query)
                    and (after is None or (r.ts, r.id) > after)
                ),
                key=lambda r: (r.ts, r.id),
            )
            if not rows:
                return
            texts = [r.data for r in rows]
            after = (rows[-1].ts, rows[-1].id)
            for text in texts:
                yield loads(text)
            if remaining is not None:
                remaining -= len(rows)
            if len(rows) < chunk:
                return
            await asyncio.sleep(0)  # between chunks, as a database round trip would, let others run

    def _drop_messages(self, doomed: list[_MessageRow]) -> int:
        for row in doomed:
            del self._messages[row.id]
            del self._dedup[row.key]
        return len(doomed)

    async def delete_messages(self, device_ids: list[int], query: TimeQuery) -> int:
        self._check()
        wanted = set(device_ids)
        return self._drop_messages(
            [r for r in self._messages.values() if r.device_id in wanted and _in_range(r.ts, query)]
        )

    async def telemetry(self, device_id: int, names: list[str] | None = None) -> dict[str, dict[str, Any]]:
        self._check()
        out: dict[str, dict[str, Any]] = loads(dumps(self._telemetry.get(device_id, names)))
        return out

    async def delete_telemetry(self, device_id: int, names: list[str] | None = None) -> int:
        self._check()
        return self._telemetry.forget(device_id, names)

    # traffic ---------------------------------------------------------------------------------
    async def packets(
        self,
        query: TimeQuery,
        device_ids: list[int] | None = None,
        protocol: str | None = None,
        ident: str | None = None,
    ) -> list[dict[str, Any]]:
        self._check()
        wanted = None if device_ids is None else set(device_ids)
        rows = (
            p
            for p in self._packets.values()
            if (wanted is None or p["device_id"] in wanted)
            and (protocol is None or p["protocol"] == protocol)
            and (ident is None or p["ident"] == ident)
            and _in_range(p["timestamp"], query)
        )
        return [dict(p) for p in _ordered(rows, lambda p: (p["timestamp"], p["id"]), query)]

    async def logs(
        self, query: TimeQuery, device_ids: list[int] | None = None, protocol: str | None = None
    ) -> list[dict[str, Any]]:
        self._check()
        wanted = None if device_ids is None else set(device_ids)
        rows = (
            lg
            for lg in self._logs.values()
            if (wanted is None or lg["device_id"] in wanted)
            and (protocol is None or lg["protocol"] == protocol)
            and _in_range(lg["timestamp"], query)
        )
        return [dict(lg) for lg in _ordered(rows, lambda lg: (lg["timestamp"], lg["id"]), query)]

    async def events(self, device_ids: list[int] | None, query: TimeQuery,
                     types: list[str] | None = None) -> list[dict[str, Any]]:
        self._check()
        wanted = None if device_ids is None else set(device_ids)
        kinds = None if types is None else set(types)
        rows = (
            (event_id, row) for event_id, row in self._events.items()
            if (wanted is None or row[0] in wanted) and (kinds is None or row[2] in kinds) and _in_range(row[1], query)
        )
        return [{"id": event_id, **loads(row[3])}
                for event_id, row in _ordered(rows, lambda r: (r[1][1], r[0]), query)]

    # intervals -------------------------------------------------------------------------------
    def _add_intervals(self, intervals: list[dict[str, Any]], rows: list[tuple[int, int, float, float, str]]) -> None:
        for item, row in zip(intervals, rows, strict=True):
            interval_id = self._next_id("interval")
            self._intervals[interval_id] = row
            item["id"] = interval_id

    async def intervals(self, calc_ids: list[int] | None, device_ids: list[int] | None,
                        query: TimeQuery) -> list[dict[str, Any]]:
        self._check()
        calcs = None if calc_ids is None else set(calc_ids)
        devices = None if device_ids is None else set(device_ids)
        rows = (
            (interval_id, row) for interval_id, row in self._intervals.items()
            if (calcs is None or row[0] in calcs) and (devices is None or row[1] in devices)
            and (query.from_ts is None or row[3] >= query.from_ts) and (query.to_ts is None or row[2] <= query.to_ts)
        )
        return [{**loads(row[4]), "id": interval_id}
                for interval_id, row in _ordered(rows, lambda r: (r[1][2], r[0]), query)]

    async def replace_intervals(self, calc_id: int, device_id: int, begin: float, end: float | None,
                                intervals: list[dict[str, Any]]) -> list[int]:
        self._check()
        rows = [_interval_row(i) for i in intervals]
        doomed = sorted(
            interval_id for interval_id, row in self._intervals.items()
            if row[0] == calc_id and row[1] == device_id and row[2] >= begin and (end is None or row[2] <= end)
        )
        for interval_id in doomed:
            del self._intervals[interval_id]
        self._add_intervals(intervals, rows)
        return doomed

    async def delete_intervals(self, calc_id: int, device_ids: list[int] | None = None) -> int:
        self._check()
        devices = None if device_ids is None else set(device_ids)
        doomed = [interval_id for interval_id, row in self._intervals.items()
                  if row[0] == calc_id and (devices is None or row[1] in devices)]
        for interval_id in doomed:
            del self._intervals[interval_id]
        return len(doomed)

    async def idents(self, protocol: str | None = None) -> list[dict[str, Any]]:
        self._check()
        rows = [s for s in self._idents.values() if protocol is None or s["protocol"] == protocol]
        rows.sort(key=lambda s: s["last_seen"], reverse=True)
        return [{**s, "sample": s["sample"].hex()} for s in rows]

    # commands --------------------------------------------------------------------------------
    @staticmethod
    def _command_values(fields: dict[str, Any]) -> dict[str, Any]:
        values = {k: v for k, v in fields.items() if k in _COMMAND_COLUMNS}
        for col in _COMMAND_JSON_COLUMNS:
            if values.get(col) is not None:
                values[col] = dumps(values[col])
        for col in _COMMAND_REAL:
            if col in values:
                values[col] = _real(values[col])
        if values.get("payload") is not None:
            values["payload"] = bytes(values["payload"])
        for col in _COMMAND_REQUIRED:
            if col in values and values[col] is None:
                raise StoreError(f"a command's {col} cannot be null")
        return values

    @staticmethod
    def _command_out(row: dict[str, Any]) -> dict[str, Any]:
        out = dict(row)
        for col in _COMMAND_JSON_COLUMNS:
            if out[col] is not None:
                out[col] = loads(out[col])
        out["realtime"] = bool(out["realtime"])
        if out["executed"] is not None:
            out["executed"] = bool(out["executed"])
        return out

    async def create_command(self, fields: dict[str, Any]) -> dict[str, Any]:
        self._check()
        values = self._command_values({"created": time.time(), "status": "queued", **fields})
        if "name" not in values:
            raise StoreError("a command needs a name")
        command_id = self._next_id("command")
        row = {"id": command_id, **{col: _COMMAND_DEFAULTS.get(col) for col in _COMMAND_COLUMNS}, **values}
        self._commands[command_id] = row
        return self._command_out(row)

    async def update_command(self, command_id: int, fields: dict[str, Any]) -> dict[str, Any]:
        self._check()
        row = self._commands.get(command_id)
        if row is None:
            raise NotFound(f"command {command_id} not found")
        row.update(self._command_values(fields))
        return self._command_out(row)

    async def get_command(self, command_id: int) -> dict[str, Any]:
        self._check()
        row = self._commands.get(command_id)
        if row is None:
            raise NotFound(f"command {command_id} not found")
        return self._command_out(row)

    async def commands(
        self,
        device_ids: list[int] | None = None,
        statuses: tuple[str, ...] | None = None,
        query: TimeQuery | None = None,
    ) -> list[dict[str, Any]]:
        self._check()
        query = query or TimeQuery()
        wanted = None if device_ids is None else set(device_ids)
        rows = (
            c
            for c in self._commands.values()
            if (wanted is None or c["device_id"] in wanted)
            and (statuses is None or c["status"] in statuses)
            and _in_range(c["created"], query)
        )
        return [self._command_out(c) for c in _ordered(rows, lambda c: (c["created"], c["id"]), query)]

    # key/value -------------------------------------------------------------------------------
    async def kv_get(self, namespace: str, key: str) -> Any | None:
        self._check()
        text = self._kv.get((namespace, key))
        return None if text is None else loads(text)

    async def kv_set(self, namespace: str, key: str, value: Any) -> None:
        self._check()
        self._kv[(namespace, key)] = dumps(value)

    async def kv_delete(self, namespace: str, key: str) -> None:
        self._check()
        self._kv.pop((namespace, key), None)

    async def kv_list(self, namespace: str) -> dict[str, Any]:
        self._check()
        return {key: loads(text) for (ns, key), text in sorted(self._kv.items()) if ns == namespace}

    # handler state ---------------------------------------------------------------------------
    async def load_states(self, device_ids: list[int] | None = None) -> dict[int, dict[str, Any]]:
        self._check()
        return {device_id: loads(text) for device_id, text in self._states.items()
                if device_ids is None or device_id in device_ids}

    async def save_states(self, states: dict[int, dict[str, Any]]) -> None:
        self._check()
        encoded = {device_id: dumps(state) for device_id, state in states.items()}
        self._states.update(encoded)

    # retention -------------------------------------------------------------------------------
    async def purge(self, messages_before: float | None, packets_before: float | None) -> dict[str, int]:
        self._check()
        out = {"messages": 0, "packets": 0, "logs": 0}
        if messages_before is not None:
            out["messages"] = self._drop_messages(
                [r for r in self._messages.values() if r.server_ts < messages_before]
            )
        if packets_before is not None:
            for name, table in (("packets", self._packets), ("logs", self._logs)):
                doomed = [row_id for row_id, row in table.items() if row["timestamp"] < packets_before]
                for row_id in doomed:
                    del table[row_id]
                out[name] = len(doomed)
        return out
