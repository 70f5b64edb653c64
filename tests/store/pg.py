"""PostgreSQL for tests: a schema of its own per test in the test database.

The server is the one every dev and CI machine runs at 127.0.0.1:5432 (trust auth, user
``postgres``, database ``test``; ``.ci/run`` starts it); ``SINOGATE_TEST_POSTGRES`` names another.
A test gets ``<base>?schema=t_<random>``: the store creates the schema, the finalizer drops it.
"""

from __future__ import annotations

import asyncio
import os
import uuid

import asyncpg
import pytest

BASE_URL = os.environ.get("SINOGATE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def drop_schema(schema: str) -> None:
    async def drop() -> None:
        conn = await asyncpg.connect(BASE_URL)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()

    asyncio.run(drop())


def schema_url(request: pytest.FixtureRequest) -> str:
    """A store URL in a fresh schema, dropped when the test ends."""
    schema = f"t_{uuid.uuid4().hex[:16]}"
    request.addfinalizer(lambda: drop_schema(schema))
    sep = "&" if "?" in BASE_URL else "?"
    return f"{BASE_URL}{sep}schema={schema}"
