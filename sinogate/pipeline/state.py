"""Per-device handler state kept in memory and written back to the store's ``StateStore``."""

from __future__ import annotations

from typing import Any

from sinogate.store.base import StateStore


class DeviceStates:
    """``{device_id: {handler name: JSON value}}``; ``for_device`` marks a device dirty, ``flush``
    writes the dirty ones. Loaded once at start; a crash loses at most one flush interval of
    changes, which the handlers must tolerate (they see messages again only by recalculation)."""

    def __init__(self, store: StateStore) -> None:
        self._store = store
        self._states: dict[int, dict[str, Any]] = {}
        self._dirty: set[int] = set()

    async def load(self) -> None:
        self._states = await self._store.load_states()

    def for_device(self, device_id: int) -> dict[str, Any]:
        state = self._states.get(device_id)
        if state is None:
            state = self._states[device_id] = {}
        self._dirty.add(device_id)
        return state

    def peek(self, device_id: int) -> dict[str, Any] | None:
        return self._states.get(device_id)

    def forget(self, device_id: int) -> None:
        self._states.pop(device_id, None)
        self._dirty.discard(device_id)

    async def flush(self) -> int:
        """Writes the state of every device touched since the last flush; returns how many."""
        dirty = {d: self._states[d] for d in self._dirty if self._states.get(d)}
        self._dirty.clear()
        if dirty:
            await self._store.save_states(dirty)
        return len(dirty)
