"""Device settings shadow: a named value backed by a set-command.

``PUT`` queues the set-command and records the value as *pending*; when the device's reply
closes the command successfully the pending value becomes the current one. ``DELETE`` cancels a
pending change and forgets the value. Stored in the store's key/value table, namespace
``settings``, key ``<device id>:<name>``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

from sinogate.commands.catalog import CommandError, codec_commands, validate
from sinogate.store.base import KeyValueStore, StoreError


class CommandQueue(Protocol):
    """What the shadow needs from the command service."""

    async def enqueue(self, device: dict[str, Any], name: str, properties: Any, ttl: Any = None,
                      expire: Any = None) -> dict[str, Any]: ...

    async def cancel(self, command_id: int, reason: str = ...) -> dict[str, Any] | None: ...

    async def get(self, command_id: int) -> dict[str, Any]: ...

NAMESPACE = "settings"
DEFAULT_TTL = 86400.0


@dataclass(frozen=True, slots=True)
class Setting:
    name: str
    command: str
    prop: str
    schema: dict[str, Any]
    description: str


SETTINGS: dict[str, Setting] = {
    "interval": Setting(
        "interval", "interval.set", "seconds", {"type": "integer", "minimum": 0, "maximum": 2592000},
        "Report interval in seconds (H02 S71/D1, JT/T 808 parameter 0x0029).",
    ),
}
COMMAND_SETTINGS: dict[str, Setting] = {s.command: s for s in SETTINGS.values()}


def available(protocol: str) -> list[Setting]:
    commands = codec_commands(protocol)
    return [s for s in SETTINGS.values() if s.command in commands]


def setting_for(protocol: str, name: str) -> Setting:
    setting = SETTINGS.get(name)
    if setting is None or setting not in available(protocol):
        known = ", ".join(s.name for s in available(protocol)) or "none"
        raise CommandError(f"unknown setting {name!r} for protocol {protocol}; known: {known}")
    return setting


def _key(device_id: int, name: str) -> str:
    return f"{device_id}:{name}"


class SettingsShadow:
    def __init__(self, service: CommandQueue, store: KeyValueStore) -> None:
        self.service = service
        self.store = store

    async def _load(self, device_id: int, name: str) -> dict[str, Any]:
        state = await self.store.kv_get(NAMESPACE, _key(device_id, name))
        return state if isinstance(state, dict) else {}

    async def get(self, device: dict[str, Any], name: str) -> dict[str, Any]:
        setting = setting_for(device["protocol"], name)
        state = await self._load(device["id"], name)
        out: dict[str, Any] = {
            "name": setting.name,
            "device_id": device["id"],
            "description": setting.description,
            "value": state.get("value"),
            "updated": state.get("updated"),
            "pending": None,
        }
        pending = state.get("pending")
        if pending:
            out["pending"] = pending.get("value")
            try:
                cmd = await self.service.get(pending["command_id"])
                out["command"] = {"id": cmd["id"], "status": cmd["status"]}
            except StoreError:
                out["command"] = {"id": pending.get("command_id"), "status": None}
        if state.get("error"):
            out["error"] = state["error"]
        return out

    async def list(self, device: dict[str, Any]) -> list[dict[str, Any]]:
        return [await self.get(device, s.name) for s in available(device["protocol"])]

    async def put(self, device: dict[str, Any], name: str, body: dict[str, Any]) -> dict[str, Any]:
        setting = setting_for(device["protocol"], name)
        props = body.get("properties")
        if props is not None and not isinstance(props, dict):
            raise CommandError("'properties' must be an object")
        value = (props or {}).get(setting.prop, body.get("value"))
        if value is None:
            raise CommandError(f"setting {name!r}: give properties.{setting.prop} or value")
        validate(setting.schema, value, f"properties.{setting.prop}")
        ttl = body.get("ttl", DEFAULT_TTL)
        state = await self._load(device["id"], name)
        old = (state.get("pending") or {}).get("command_id")
        if old is not None:
            await self.service.cancel(old, "replaced by a newer setting value")
        extra = {k: v for k, v in (props or {}).items() if k != setting.prop}
        cmd = await self.service.enqueue(device, setting.command, {**extra, setting.prop: value}, ttl=ttl,
                                         expire=body.get("expire"))
        state["pending"] = {"value": value, "command_id": cmd["id"], "created": time.time()}
        state.pop("error", None)
        await self.store.kv_set(NAMESPACE, _key(device["id"], name), state)
        return await self.get(device, name)

    async def delete(self, device: dict[str, Any], name: str) -> dict[str, Any]:
        setting_for(device["protocol"], name)
        state = await self._load(device["id"], name)
        pending = (state.get("pending") or {}).get("command_id")
        if pending is not None:
            await self.service.cancel(pending, "setting reset")
        await self.store.kv_delete(NAMESPACE, _key(device["id"], name))
        return await self.get(device, name)

    async def on_finished(self, command: dict[str, Any]) -> None:
        """Confirms (or drops) a pending value when its command finishes."""
        setting = COMMAND_SETTINGS.get(command.get("name", ""))
        if setting is None or command.get("device_id") is None:
            return
        key = _key(command["device_id"], setting.name)
        state = await self.store.kv_get(NAMESPACE, key)
        if not isinstance(state, dict):
            return
        pending = state.get("pending") or {}
        if pending.get("command_id") != command["id"]:
            return
        if command["status"] == "processed" and command.get("executed") is not False:
            state["value"] = pending.get("value")
            state["updated"] = command.get("finished") or time.time()
            state.pop("error", None)
        else:
            state["error"] = command.get("reason") or command.get("response") or command["status"]
        state["pending"] = None
        await self.store.kv_set(NAMESPACE, key, state)
