"""A key-value store in a dict: the one store role geofences use (the store contract suite tests
the real ones)."""

from __future__ import annotations

import copy
from typing import Any

from sinogate.store.base import KeyValueStore


class DictKV(KeyValueStore):
    def __init__(self) -> None:
        self.data: dict[tuple[str, str], Any] = {}

    async def kv_get(self, namespace: str, key: str) -> Any | None:
        return copy.deepcopy(self.data.get((namespace, key)))

    async def kv_set(self, namespace: str, key: str, value: Any) -> None:
        self.data[(namespace, key)] = copy.deepcopy(value)

    async def kv_delete(self, namespace: str, key: str) -> None:
        self.data.pop((namespace, key), None)

    async def kv_list(self, namespace: str) -> dict[str, Any]:
        return {k: copy.deepcopy(v) for (ns, k), v in sorted(self.data.items()) if ns == namespace}
