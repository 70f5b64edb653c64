"""Per-device handler state kept in memory and written back to the store's ``StateStore``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any, Protocol

from sinogate.store.base import StateStore

GATE_SECONDS = 5.0  # how long a device's first message waits for the node it left to write its state


class StateLender(Protocol):
    """Several nodes: the node holding a device lends its state to another node's change (an
    odometer set through that node's API, a recalculation there)."""

    async def holder(self, device_id: int) -> str | None:
        """Another live node that holds the device, or ``None`` (this one, or none)."""

    async def lend(self, node: str, device_id: int) -> None:
        """``node`` writes the device's state back and holds its messages until ``give_back``."""

    async def give_back(self, node: str, device_id: int) -> None:
        """``node`` reads the state again and goes on."""


class DeviceStates:
    """``{device_id: {handler name: JSON value}}``; ``for_device`` marks a device dirty, ``flush``
    writes the dirty ones. Loaded once at start; a crash loses at most one flush interval of
    changes, which the handlers must tolerate (they see messages again only by recalculation)."""

    def __init__(self, store: StateStore, per_device: bool = False) -> None:
        self._store = store
        self._states: dict[int, dict[str, Any]] = {}
        self._dirty: set[int] = set()
        # Several nodes (per_device): a device's state is read when the device starts sending to
        # this node, after the node it left has written it back (``gate``), and written back when
        # it leaves (``release``); ``_current`` are the devices whose state here is the latest.
        self.per_device = per_device
        self._current: set[int] = set()
        self._gates: dict[int, asyncio.Future[None]] = {}
        self.lender: StateLender | None = None

    async def load(self) -> None:
        if not self.per_device:
            self._states = await self._store.load_states()

    def gate(self, device_id: int) -> asyncio.Future[None]:
        """Holds ``ensure`` for the device until the future is resolved (by whoever takes the
        device over from another node) or ``GATE_SECONDS`` passed."""
        gate = self._gates.get(device_id)
        if gate is None or gate.done():
            gate = self._gates[device_id] = asyncio.get_running_loop().create_future()
        self._current.discard(device_id)
        return gate

    def open_gate(self, device_id: int) -> None:
        gate = self._gates.get(device_id)
        if gate is not None and not gate.done():
            gate.set_result(None)

    async def write_back(self, device_id: int) -> None:
        """Writes one device's state now (lent to another node, or handed over)."""
        state = self._states.get(device_id)
        self._dirty.discard(device_id)
        if state:
            await self._store.save_states({device_id: state})

    @contextlib.asynccontextmanager
    async def borrowed(self, device_id: int) -> AsyncIterator[None]:
        """Around a change of the device's state made here while another node may hold the
        device: borrows it from that node (which writes it back and waits), and writes the change
        back and returns it after. A no-op on a single node."""
        lender = self.lender if self.per_device else None
        node = await lender.holder(device_id) if lender is not None else None
        if lender is None or node is None:
            yield
            return
        await lender.lend(node, device_id)
        self._current.discard(device_id)  # read what the holder wrote
        try:
            yield
            await self.write_back(device_id)
        finally:
            self._current.discard(device_id)  # the holder's copy is the latest again
            await lender.give_back(node, device_id)

    async def ensure(self, device_id: int) -> None:
        """Per device: reads the device's state unless this node has the latest (a no-op otherwise)."""
        if not self.per_device or device_id in self._current:
            return
        gate = self._gates.pop(device_id, None)
        if gate is not None and not gate.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(gate), GATE_SECONDS)
        if device_id in self._current:
            return
        saved = await self._store.load_states([device_id])
        self._states[device_id] = saved.get(device_id, {})
        self._current.add(device_id)

    async def release(self, device_id: int) -> None:
        """Per device: the device left this node: its state is written back now. The copy stays
        (the offline watch reads it) but is read again before the device's next message here."""
        if not self.per_device:
            return
        self._current.discard(device_id)
        await self.write_back(device_id)

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
        self._current.discard(device_id)

    async def flush(self) -> int:
        """Writes the state of every device touched since the last flush; returns how many."""
        dirty = {d: self._states[d] for d in self._dirty if self._states.get(d)}
        self._dirty.clear()
        if dirty:
            await self._store.save_states(dirty)
        return len(dirty)
