"""Command knowledge learned from traffic: which commands each device answers, and per model.

For every command a device was sent, keyed by its typed name and the raw code that went out
(``interval.set S71``, ``interval.acc_on.set 805``, ``custom RCONF``, ``engine.stop 0x8105``), the
device's record counts:

* ``sent``: commands written to the device (a command written again after a reconnect counts once);
* ``replied``: answered and done (``reply_time`` sums the seconds from writing to the answer);
* ``failed``: answered with a failure (JT/T 808 result ≠ 0, ``ERROR`` in an H02 reply);
* ``ignored``: no answer within ``ignore_after`` seconds (a real-time command's timeout) while the
  device stayed on the same connection and kept reporting. A later answer turns it back into
  ``replied``.

The model and firmware come from the device's own words: JT/T 808 registration (0x0100) and
attributes (0x0107) carry ``device.model`` and versions; a Sinotrack answers ``CXZT``/``RCONF``/
``VERSION`` with a text that starts with its model and firmware (``ST906(70SACD)_TQ_V_2.0 2024/06/07``).
Without them, the device's ``model`` field is used.

Records live in the store's key-value role (namespace ``command_support``, one key per device), so
every store implementation keeps them. The service watches the command service's status changes
(``CommandService.observers``) and, as an after-commit publisher, the device's messages.
"""

from __future__ import annotations

import fnmatch
import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sinogate.codecs.sinotrack import TEXT_COMMANDS, text_of
from sinogate.commands import catalog
from sinogate.ingest import Committed
from sinogate.interfaces import Clock, SessionLookup, TaskRunner
from sinogate.store.base import KeyValueStore, StoreError

log = logging.getLogger("sinogate.commands")

NAMESPACE = "command_support"
IGNORE_AFTER = 60.0  # seconds without an answer, the device still reporting, before a queued command counts as ignored
COUNTERS = ("sent", "replied", "failed", "ignored")

# What a command does, so an ignored one can point at another way to do the same.
FUNCTION_OF_CODE: dict[str, str] = {
    "S71": "interval", "D1": "interval", "805": "interval", "0x8103": "params",
    "S26": "status", "CXZT": "status", "RCONF": "config", "VERSION": "version",
    "804": "server", "803": "apn", "896": "timezone", "809": "interval.acc_off",
    "940": "engine.stop", "941": "engine.resume", "RESTART": "reboot", "CQ": "reboot",
}
FUNCTION_OF_NAME: dict[str, str] = {
    "interval.set": "interval", "interval.acc_on.set": "interval", "interval.acc_off.set": "interval.acc_off",
    "status.query": "status", "status.text.query": "status", "config.query": "config",
    "version.query": "version", "server.set": "server", "apn.set": "apn", "timezone.set": "timezone",
    "engine.stop": "engine.stop", "engine.resume": "engine.resume", "reboot": "reboot",
}
_MODEL = re.compile(r"\b(ST-?\d{3,4}[A-Z]{0,3})", re.IGNORECASE)


def command_code(row: Mapping[str, Any]) -> str | None:
    """The raw code of a written command: the H02 code (``S71``), the first word of a raw text
    (``RCONF``; the three digits of a Sinotrack setting, ``805``), the JT/T 808 message id."""
    match = row.get("match") or {}
    if isinstance(match, dict) and match.get("code"):
        return str(match["code"])
    if isinstance(match, dict) and isinstance(match.get("msg_id"), int):
        code = f"0x{match['msg_id']:04X}"
        word = ""
        if row.get("name") == "custom":
            word = _first_word(_payload_text(row))
        elif row.get("name") in TEXT_COMMANDS:  # a Sinotrack text sent as 0x8300
            try:
                word = _first_word(text_of(str(row["name"]), dict(row.get("properties") or {})))
            except ValueError:
                word = ""
        return f"{code} {word}" if word else code
    return _first_word(_payload_text(row)) or None


def _payload_text(row: Mapping[str, Any]) -> str:
    props = row.get("properties") or {}
    text = props.get("payload", props.get("text")) if isinstance(props, dict) else None
    if isinstance(text, str) and row.get("name") == "custom":
        return text
    payload = row.get("payload")
    if isinstance(payload, bytes | bytearray):
        return bytes(payload).decode("latin-1")
    return payload if isinstance(payload, str) else ""


def _first_word(text: str) -> str:
    text = text.strip()
    if not text:
        return ""
    if text.startswith("*"):  # a pre-framed *HQ,<id>,<CODE>,...
        parts = text.strip("*#").split(",")
        return parts[2].upper() if len(parts) > 2 else ""
    word = re.split(r"[\s,#]", text, maxsplit=1)[0].upper()
    if word[:3].isdigit():
        return word[:3]
    return word[:16]


def verdict(entry: Mapping[str, Any]) -> tuple[str, str]:
    """(status, human verdict) of one entry: ``answered 5/5``, ``ignored 3/3``, ``never tried``…"""
    sent, replied = int(entry.get("sent", 0)), int(entry.get("replied", 0))
    failed, ignored = int(entry.get("failed", 0)), int(entry.get("ignored", 0))
    if not sent:
        return "untried", "never tried"
    if replied and not (ignored or failed):
        return "answered", f"answered {replied}/{sent}"
    if ignored and not (replied or failed):
        return "ignored", f"ignored {ignored}/{sent}"
    if failed and not (replied or ignored):
        return "failed", f"failed {failed}/{sent}"
    if replied or failed or ignored:
        parts = [f"answered {replied}/{sent}" if replied else "", f"ignored {ignored}" if ignored else "",
                 f"failed {failed}" if failed else ""]
        return "partial", ", ".join(p for p in parts if p)
    return "pending", f"no answer yet ({sent} sent)"


def function_of(name: str, code: str | None) -> str | None:
    return FUNCTION_OF_CODE.get(code or "") or FUNCTION_OF_NAME.get(name)


def model_from_text(text: str) -> tuple[str, str] | None:
    """(model, firmware) from a Sinotrack status/config/version text, or ``None``."""
    first = next((line.strip() for line in text.replace("\r", "\n").split("\n") if line.strip()), "")
    found = _MODEL.search(first)
    if found is None:
        return None
    return found.group(1).upper().replace("-", ""), first[:80]


@dataclass(slots=True)
class _Pending:
    device_id: int
    key: str
    sent_at: float
    conn: int | None
    window: float
    ignored: bool = False
    closed: bool = False  # expired or canceled without an answer: judged by the device's next message


class CommandSupport:
    """Keeps the learned records; the API reads them through ``for_devices`` and ``for_models``."""

    name = "command_support"

    def __init__(self, kv: KeyValueStore, sessions: SessionLookup, tasks: TaskRunner, clock: Clock = time.time) -> None:
        self.kv = kv
        self.sessions = sessions
        self.tasks = tasks
        self.clock = clock
        self.ignore_after = IGNORE_AFTER
        self._records: dict[int, dict[str, Any]] = {}
        self._pending: dict[int, _Pending] = {}  # command id → written, not answered yet
        self._loaded = False

    async def load(self) -> None:
        try:
            stored = await self.kv.kv_list(NAMESPACE)
        except StoreError:
            stored = {}
        for key, value in stored.items():
            if key.isdigit() and isinstance(value, dict):
                self._records.setdefault(int(key), value)
        self._loaded = True

    # records -----------------------------------------------------------------------------------
    def _record(self, device_id: int) -> dict[str, Any]:
        record = self._records.get(device_id)
        if record is None:
            record = self._records[device_id] = {"device_id": device_id, "commands": {}}
        return record

    def _entry(self, device_id: int, key: str, name: str, code: str | None) -> dict[str, Any]:
        commands = self._record(device_id)["commands"]
        entry = commands.get(key)
        if entry is None:
            entry = commands[key] = {"name": name, "code": code, **dict.fromkeys(COUNTERS, 0), "reply_time": 0.0}
        return entry  # type: ignore[no-any-return]

    def _save(self, device_id: int) -> None:
        record = self._records.get(device_id)
        if record is None:
            return

        async def write() -> None:
            try:
                await self.kv.kv_set(NAMESPACE, str(device_id), record)
            except StoreError as exc:
                log.warning("command support of device %s not saved: %s", device_id, exc)

        try:
            self.tasks.spawn(write())
        except RuntimeError:  # shutting down
            pass

    def forget(self, device_id: int) -> None:
        """A deleted device's record goes with it."""
        if self._records.pop(device_id, None) is not None:
            async def drop() -> None:
                try:
                    await self.kv.kv_delete(NAMESPACE, str(device_id))
                except StoreError:
                    pass

            try:
                self.tasks.spawn(drop())
            except RuntimeError:
                pass

    # what the command service tells -------------------------------------------------------------
    def observe(self, row: dict[str, Any]) -> None:
        """A command changed status (``CommandService.observers``)."""
        device_id, command_id, status = row.get("device_id"), row.get("id"), row.get("status")
        if not isinstance(device_id, int) or not isinstance(command_id, int):
            return
        now = self.clock()
        if status == "sent":
            pending = self._pending.get(command_id)
            session = self.sessions.session_for(device_id)
            conn = session.conn_id if session is not None else None
            sent_at = float(row.get("sent") or now)
            if pending is not None:  # written again after a reconnect: same command, new attempt
                pending.sent_at, pending.conn = sent_at, conn
                return
            code = command_code(row)
            key = f"{row['name']} {code}" if code else str(row["name"])
            expire = row.get("expire")
            window = (float(expire) - sent_at) if row.get("realtime") and isinstance(expire, int | float) \
                else self.ignore_after
            self._pending[command_id] = _Pending(device_id, key, sent_at, conn, max(window, 0.0))
            entry = self._entry(device_id, key, str(row["name"]), code)
            entry["sent"] += 1
            entry["last"] = now
            self._save(device_id)
            return
        if status not in ("processed", "expired", "canceled"):
            return
        pending = self._pending.get(command_id)
        if pending is None:
            return
        if status != "processed":
            # No answer: ignored if the device keeps reporting on the same connection (its next
            # message tells), not if it went away.
            if pending.ignored:
                del self._pending[command_id]
            else:
                pending.closed = True
            return
        del self._pending[command_id]
        entry = self._record(device_id)["commands"].get(pending.key)
        if entry is None:
            return
        if status == "processed":
            if pending.ignored:
                entry["ignored"] = max(0, entry["ignored"] - 1)
            if row.get("executed") is False:
                entry["failed"] += 1
            else:
                entry["replied"] += 1
                finished = row.get("finished")
                if isinstance(finished, int | float):
                    entry["reply_time"] = round(entry.get("reply_time", 0.0) + max(0.0, finished - pending.sent_at), 3)
            entry["last"] = now
            self._save(device_id)

    # what the device sends ------------------------------------------------------------------------
    def committed(self, batch: Committed) -> None:
        device_id = batch.device_id
        if device_id is None or not batch.messages:
            return
        changed = False
        for message in batch.messages:
            # (most messages are positions that name neither a model nor a firmware: not looked at)
            if ("device.model" in message or "device.firmware.version" in message
                    or "device.software.version" in message or "command.response" in message):
                changed |= self._learn_model(device_id, message)
        conn = batch.source.conn_id
        for command_id, pending in list(self._pending.items()):
            if pending.device_id != device_id or pending.ignored or conn is None:
                continue
            if pending.conn != conn:
                if pending.closed:  # it went away before answering: not ignored, just unanswered
                    del self._pending[command_id]
                continue
            if batch.now >= pending.sent_at + pending.window:
                entry = self._record(device_id)["commands"].get(pending.key)
                if entry is not None:
                    pending.ignored = True
                    entry["ignored"] += 1
                    changed = True
                if pending.closed:
                    del self._pending[command_id]
        if changed:
            self._save(device_id)

    def _learn_model(self, device_id: int, message: Mapping[str, Any]) -> bool:
        record = self._record(device_id)
        model, firmware = message.get("device.model"), None
        for key in ("device.firmware.version", "device.software.version"):
            if isinstance(message.get(key), str) and message[key].strip():
                firmware = message[key].strip()
                break
        if not (isinstance(model, str) and model.strip()):
            model = None
            text = message.get("command.response")
            if message.get("message.type") == "SMS" and isinstance(text, str):
                found = model_from_text(text)
                if found is not None:
                    model, firmware = found
        changed = False
        if isinstance(model, str) and model.strip() and record.get("model") != model.strip():
            record["model"] = model.strip()
            changed = True
        if firmware and record.get("firmware") != firmware:
            record["firmware"] = firmware
            changed = True
        return changed

    # views -------------------------------------------------------------------------------------
    def _model_of(self, device: Mapping[str, Any]) -> tuple[str | None, str | None]:
        record = self._records.get(int(device["id"]), {})
        return record.get("model") or device.get("model") or None, record.get("firmware")

    @staticmethod
    def _entries(commands: Mapping[str, Mapping[str, Any]], protocol: str | None) -> list[dict[str, Any]]:
        out = []
        for key, entry in sorted(commands.items()):
            status, text = verdict(entry)
            item = {"key": key, "name": entry["name"], "code": entry.get("code"),
                    **{c: int(entry.get(c, 0)) for c in COUNTERS}, "status": status, "verdict": text,
                    "last": entry.get("last")}
            answered = int(entry.get("replied", 0))
            item["reply_time"] = round(float(entry.get("reply_time", 0.0)) / answered, 2) if answered else None
            out.append(item)
        for item in out:
            if item["status"] != "ignored":
                continue
            function = function_of(item["name"], item["code"])
            if function is None:
                continue
            worked = [o for o in out
                      if o is not item and o["replied"] and function_of(o["name"], o["code"]) == function]
            if worked:
                best = max(worked, key=lambda o: (o["replied"] / max(o["sent"], 1), o["replied"]))
                item["alternative"] = {"name": best["name"], "code": best["code"], "verdict": best["verdict"]}
            elif protocol is not None:
                tried = {o["name"] for o in out}
                untried = [n for n in catalog.codec_commands(protocol) if n not in tried
                           and FUNCTION_OF_NAME.get(n) == function]
                if untried:
                    item["alternative"] = {"name": sorted(untried)[0], "code": None, "verdict": "never tried"}
        if protocol is not None:
            tried = {o["name"] for o in out}
            out.extend({"key": name, "name": name, "code": None, **dict.fromkeys(COUNTERS, 0), "status": "untried",
                        "verdict": "never tried", "last": None, "reply_time": None}
                       for name in sorted(catalog.codec_commands(protocol)) if name not in tried)
        return out

    def for_devices(self, devices: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """``GET /gw/devices/{sel}/command-support``."""
        out = []
        for device in devices:
            record = self._records.get(int(device["id"]), {})
            model, firmware = self._model_of(device)
            out.append({"device_id": device["id"], "ident": device.get("ident"), "protocol": device.get("protocol"),
                        "model": model, "firmware": firmware,
                        "commands": self._entries(record.get("commands", {}), device.get("protocol"))})
        return out

    def for_models(self, devices: Sequence[Mapping[str, Any]], model: str | None = None) -> list[dict[str, Any]]:
        """``GET /gw/command-support?data={"model": …}``: the records of every device of a model
        (``model`` matches case-insensitively, ``*`` wildcards allowed), summed per model."""
        groups: dict[str, dict[str, Any]] = {}
        for device in devices:
            found, firmware = self._model_of(device)
            name = found or "unknown"
            if model is not None and not fnmatch.fnmatch(name.upper(), model.upper()):
                continue
            group = groups.setdefault(name, {"model": name, "devices": [], "firmware": set(), "protocols": set(),
                                             "commands": {}})
            group["devices"].append(device["id"])
            group["protocols"].add(device.get("protocol"))
            if firmware:
                group["firmware"].add(firmware)
            for key, entry in self._records.get(int(device["id"]), {}).get("commands", {}).items():
                total = group["commands"].setdefault(key, {"name": entry["name"], "code": entry.get("code"),
                                                           **dict.fromkeys(COUNTERS, 0), "reply_time": 0.0,
                                                           "last": None, "devices": 0})
                for counter in COUNTERS:
                    total[counter] += int(entry.get(counter, 0))
                total["reply_time"] += float(entry.get("reply_time", 0.0))
                total["last"] = max(total["last"] or 0, entry.get("last") or 0) or None
                total["devices"] += 1
        out = []
        for name in sorted(groups):
            group = groups[name]
            protocols = sorted(p for p in group["protocols"] if p)
            entries = self._entries(group["commands"], protocols[0] if len(protocols) == 1 else None)
            for item in entries:
                item["devices"] = group["commands"].get(item["key"], {}).get("devices", 0)
            out.append({"model": name, "devices": len(group["devices"]), "device_ids": group["devices"],
                        "protocols": protocols, "firmware": sorted(group["firmware"]), "commands": entries})
        return out


__all__ = ["NAMESPACE", "CommandSupport", "command_code", "model_from_text", "verdict"]
