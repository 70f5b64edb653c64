"""The device registry: the store's devices, cached in memory for the ingest path.

Every change to a device goes through here so the cache and the codecs' per-device settings stay
current. Device settings a user can set (all optional)::

    time_offset   "auto" (default): the protocol's zone (H02 UTC, JT/T 808 GMT+8) and the clock
                  handler detects a device clock that is off by whole hours (or half/quarter
                  hours) and corrects it; a number: hours the device clock is ahead of UTC,
                  applied as is (no detection)
    h02_ack       send the H02 R12 acknowledgement for every frame
    h02_binary_length   length of the device's H02 binary frames (29-128 bytes; the framer
                  learns it by itself, this only makes the first frames certain)
    jt808_strict  drop JT/T 808 frames with a bad checksum or length instead of decoding them
    sms_password  the password SMS-style commands use (default 0000)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sinogate.codecs import DEFAULT_SETTINGS, PROTOCOLS, DeviceSettings
from sinogate.codecs.h02.framer import DEFAULT_LENGTHS, FIXED, MAX_BINARY
from sinogate.store.base import Conflict, DeviceStore, NotFound, StoreError

TIME_OFFSET_AUTO = "auto"
H02_BINARY_LENGTHS = range(FIXED, MAX_BINARY + 1)

SETTING_TYPES: dict[str, type | tuple[type, ...]] = {
    "time_offset": (int, float, str),
    "h02_ack": bool,
    "h02_binary_length": int,
    "jt808_strict": bool,
    "sms_password": str,
}


def validate_settings(settings: Any) -> dict[str, Any]:
    if settings is None:
        return {}
    if not isinstance(settings, dict):
        raise StoreError("settings must be an object")
    for key, value in settings.items():
        expected = SETTING_TYPES.get(key)
        if expected is None:
            continue  # free-form user settings are kept as given
        if value is not None and (not isinstance(value, expected) or (expected is not bool and value is True)):
            raise StoreError(f"setting {key!r} has the wrong type")
    length = settings.get("h02_binary_length")
    if length is not None and length not in H02_BINARY_LENGTHS:
        raise StoreError(f"h02_binary_length must be a length from {FIXED} to {MAX_BINARY} bytes "
                         f"(seen on real devices: {', '.join(map(str, DEFAULT_LENGTHS))})")
    offset = settings.get("time_offset")
    if isinstance(offset, str) and offset != TIME_OFFSET_AUTO:
        raise StoreError("time_offset must be \"auto\" or a number of hours (e.g. 8, -5, 5.5)")
    return dict(settings)


def fixed_time_offset(settings: Any) -> float | None:
    """The ``time_offset`` a device's settings fix, in hours; ``None`` for ``auto`` (the default)."""
    value = settings.get("time_offset") if isinstance(settings, dict) else None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def codec_settings(device: dict[str, Any] | None) -> DeviceSettings:
    if device is None:
        return DEFAULT_SETTINGS
    s = device.get("settings") or {}
    return DeviceSettings(
        time_offset=fixed_time_offset(s),
        h02_ack=bool(s.get("h02_ack", False)),
        h02_binary_length=s.get("h02_binary_length"),
        jt808_strict=bool(s.get("jt808_strict", False)),
        model=device.get("model"),
    )


IDENT_MAX_LENGTH = 32
IDENT_CHARACTERS = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_.:")


def ident_problem(ident: str, max_length: int = IDENT_MAX_LENGTH) -> str | None:
    """Why ``ident`` cannot be a device's ident, or ``None``: the one grammar of every path
    (auto-registration, the API's POST, PUT and PATCH): 1 to ``max_length`` characters from ASCII
    letters, digits, ``-``, ``_``, ``.`` and ``:`` (IMEIs, terminal numbers and serials fit; spaces,
    ``/``, ``+``, ``#`` and control characters break MQTT topics, selectors and log lines)."""
    if not ident:
        return "empty ident"
    if len(ident) > max_length:
        return f"ident longer than {max_length} characters ({len(ident)})"
    if not IDENT_CHARACTERS.issuperset(ident):
        return "ident with characters other than letters, digits, '-', '_', '.', ':'"
    return None


class DeviceRegistry:
    """The devices, cached for the ingest path; every change goes through here."""

    def __init__(self, store: DeviceStore, ident_max_length: int = IDENT_MAX_LENGTH) -> None:
        self.store = store
        self.ident_max_length = ident_max_length
        self._by_id: dict[int, dict[str, Any]] = {}
        self._by_ident: dict[tuple[str, str], dict[str, Any]] = {}
        self._settings: dict[tuple[str, str], DeviceSettings] = {}
        self._on_delete: list[Callable[[int], None]] = []
        self._on_change: list[Callable[[int], None]] = []

    def on_delete(self, callback: Callable[[int], None]) -> None:
        """``callback(device_id)`` runs after a device was deleted (to drop per-device state)."""
        self._on_delete.append(callback)

    def on_change(self, callback: Callable[[int], None]) -> None:
        """``callback(device_id)`` after a device was created, changed or deleted here (a cluster
        node tells the others to ``refresh`` it)."""
        self._on_change.append(callback)

    def _changed(self, device_id: int) -> None:
        for callback in self._on_change:
            callback(device_id)

    async def load(self) -> None:
        for device in await self.store.list_devices():
            self._remember(device)

    async def refresh(self, device_id: int, attached: bool = False) -> None:
        """Reads the device again (another node changed it); a device gone from the store is
        forgotten as if deleted here. The store's connection state wins unless ``attached``."""
        try:
            device = await self.store.get_device(device_id)
        except NotFound:
            self._forget(device_id)
            return
        self._take(device, attached)

    async def reload(self, attached: Callable[[int], bool]) -> None:
        """Reads every device again in one query (this node missed other nodes' changes): new
        and changed ones are taken, those gone from the store forgotten as if deleted here; a
        device for which ``attached(id)`` keeps the connection state this node knows."""
        devices = await self.store.list_devices()
        for device in devices:
            self._take(device, attached(device["id"]))
        for gone in set(self._by_id) - {device["id"] for device in devices}:
            self._forget(gone)

    def _take(self, device: dict[str, Any], attached: bool) -> None:
        old = self._by_id.get(device["id"])
        if attached and old is not None:
            device["connected"], device["last_active"] = old.get("connected"), old.get("last_active")
        self._remember(device)

    def _forget(self, device_id: int) -> None:
        old = self._by_id.pop(device_id, None)
        if old is not None:
            self._by_ident.pop((old["protocol"], old["ident"]), None)
            self._settings.pop((old["protocol"], old["ident"]), None)
            for callback in self._on_delete:
                callback(device_id)

    def _remember(self, device: dict[str, Any]) -> dict[str, Any]:
        old = self._by_id.get(device["id"])
        if old is not None:
            self._by_ident.pop((old["protocol"], old["ident"]), None)
            self._settings.pop((old["protocol"], old["ident"]), None)
        self._by_id[device["id"]] = device
        key = (device["protocol"], device["ident"])
        self._by_ident[key] = device
        self._settings[key] = codec_settings(device)
        return device

    def all(self) -> list[dict[str, Any]]:
        return list(self._by_id.values())

    def get(self, device_id: int) -> dict[str, Any]:
        device = self._by_id.get(device_id)
        if device is None:
            raise NotFound(f"device {device_id} not found")
        return device

    def find(self, protocol: str, ident: str) -> dict[str, Any] | None:
        return self._by_ident.get((protocol, ident))

    def settings_for(self, protocol: str, ident: str) -> DeviceSettings:
        return self._settings.get((protocol, ident), DEFAULT_SETTINGS)

    async def create(self, fields: dict[str, Any]) -> dict[str, Any]:
        protocol = fields.get("protocol")
        if protocol not in PROTOCOLS:
            raise StoreError(f"protocol must be one of {', '.join(PROTOCOLS)}")
        ident = fields.get("ident")
        if not isinstance(ident, str | int) or isinstance(ident, bool):
            raise StoreError("ident must be a string")
        ident = self.check_ident(str(ident).strip())
        fields = {**fields, "ident": ident, "settings": validate_settings(fields.get("settings"))}
        try:
            created = self._remember(await self.store.create_device(fields))
        except Conflict:
            if self.find(str(protocol), ident) is None:
                await self.load()  # registered elsewhere (another node): known here from now on
            raise
        self._changed(created["id"])
        return created

    def ident_problem(self, ident: str) -> str | None:
        """Why ``ident`` cannot be a device's ident (``ident_problem`` with this registry's length)."""
        return ident_problem(ident, self.ident_max_length)

    def check_ident(self, ident: str) -> str:
        problem = self.ident_problem(ident)
        if problem is not None:
            raise StoreError(f"{problem}: an ident is 1 to {self.ident_max_length} characters from letters, "
                             "digits, '-', '_', '.' and ':'")
        return ident

    async def update(self, device_id: int, fields: dict[str, Any]) -> dict[str, Any]:
        self.get(device_id)
        if "ident" in fields:
            if not isinstance(fields["ident"], str | int) or isinstance(fields["ident"], bool):
                raise StoreError("ident must be a string")
            fields = {**fields, "ident": self.check_ident(str(fields["ident"]).strip())}
        if "settings" in fields:
            fields = {**fields, "settings": validate_settings(fields["settings"])}
        if "protocol" in fields and fields["protocol"] not in PROTOCOLS:
            raise StoreError(f"protocol must be one of {', '.join(PROTOCOLS)}")
        updated = self._remember(await self.store.update_device(device_id, fields))
        self._changed(device_id)
        return updated

    async def delete(self, device_id: int) -> None:
        device = self.get(device_id)
        await self.store.delete_device(device_id)
        self._by_id.pop(device_id, None)
        self._by_ident.pop((device["protocol"], device["ident"]), None)
        self._settings.pop((device["protocol"], device["ident"]), None)
        for callback in self._on_delete:
            callback(device_id)
        self._changed(device_id)

    def mark(self, device_id: int, connected: bool, last_active: float | None) -> None:
        """Runtime state; the session persists it through the store itself."""
        device = self._by_id.get(device_id)
        if device is not None:
            device["connected"] = connected
            if last_active is not None:
                device["last_active"] = last_active
