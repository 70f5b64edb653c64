"""API tokens.

* The master token comes from the config (``token`` / ``SINOGATE_TOKEN``); without one, a token is
  generated on first start and kept in ``<data_dir>/token`` (mode 0600).
* Limited tokens live in the store's key/value table, namespace ``tokens``, keyed by the SHA-256
  of the token (the token itself is shown once, when it is created). A record::

      {"id": "<first 12 hex of the hash>", "name": str, "devices": selector | None,
       "read_only": bool, "expire": unix ts | None, "created": unix ts}
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import time
from pathlib import Path
from typing import Any

from sinogate.api.selectors import Selector
from sinogate.store.base import Store

log = logging.getLogger("sinogate.api")

NAMESPACE = "tokens"
TOKEN_FILE = "token"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def new_token() -> str:
    return secrets.token_hex(32)  # 64 characters, like flespi's


def master_token(token: str | None, data_dir: Path, announce: bool = True) -> str:
    """The configured master token, else the one stored in the data dir, else a new one."""
    if token:
        return token
    path = Path(data_dir) / TOKEN_FILE
    try:
        existing = path.read_text().strip()
    except FileNotFoundError:
        existing = ""
    if existing:
        return existing
    path.parent.mkdir(parents=True, exist_ok=True)
    generated = new_token()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(generated + "\n")
    if announce:
        # The token itself stays out of the log (logs get shipped and shared); the file is 0600.
        log.warning("generated the master API token, stored in %s; show it with: sinogate token master", path)
    return generated


class TokenService:
    """Creates, lists, deletes and looks up limited tokens in a store."""

    CACHE_SECONDS = 5.0

    def __init__(self, store: Store) -> None:
        self.store = store
        self._cache: dict[str, tuple[float, dict[str, Any] | None]] = {}

    async def create(
        self,
        devices: str | None = None,
        read_only: bool = False,
        expire: float | None = None,
        name: str | None = None,
    ) -> tuple[str, dict[str, Any]]:
        if devices is not None:
            Selector.parse(devices)  # raises SelectorError
        token = new_token()
        key = token_hash(token)
        record = {
            "id": key[:12],
            "name": name or "",
            "devices": devices,
            "read_only": bool(read_only),
            "expire": expire,
            "created": time.time(),
        }
        await self.store.kv_set(NAMESPACE, key, record)
        return token, record

    async def list(self) -> list[dict[str, Any]]:
        return list((await self.store.kv_list(NAMESPACE)).values())

    async def delete(self, token_id: str) -> bool:
        found = False
        for key, record in (await self.store.kv_list(NAMESPACE)).items():
            if record.get("id") == token_id or key == token_id:
                await self.store.kv_delete(NAMESPACE, key)
                found = True
        self._cache.clear()
        return found

    def forget_cached(self) -> None:
        """Reads every token from the store again (another node of a cluster changed them)."""
        self._cache.clear()

    async def lookup(self, token: str) -> dict[str, Any] | None:
        """The token's record if it exists and has not expired."""
        key = token_hash(token)
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and now - hit[0] < self.CACHE_SECONDS:
            record = hit[1]
        else:
            record = await self.store.kv_get(NAMESPACE, key)
            if not isinstance(record, dict):
                record = None
            if len(self._cache) > 1000:
                self._cache.clear()
            self._cache[key] = (now, record)
        if record is None:
            return None
        expire = record.get("expire")
        if expire is not None and time.time() >= float(expire):
            return None
        return record
