"""Reading another server's SQL database: PostgreSQL (asyncpg) or MySQL/MariaDB (PyMySQL, in a thread).

``open_database(url)`` with ``postgresql://user:pass@host:port/db`` or ``mysql://user:pass@host:port/db``
(``mariadb://`` too). Queries use ``?`` placeholders; each driver gets its own. Read only.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any
from urllib.parse import unquote, urlsplit


class DatabaseError(Exception):
    """The database cannot be reached or read; the message is one line for the user."""


def redact(url: str) -> str:
    """The URL without its password (for messages and state files)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


class Database:
    """A read-only connection: ``rows(sql, *params)``, ``columns(table)``, ``close()``."""

    kind = ""

    async def rows(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        raise NotImplementedError

    async def columns(self, table: str) -> set[str] | None:
        """The table's column names (lower case), ``None`` when the table does not exist."""
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


class _Postgres(Database):
    kind = "postgresql"

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    async def rows(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        counter = iter(range(1, len(params) + 1))
        text = re.sub(r"\?", lambda _m: f"${next(counter)}", sql)
        try:
            return [dict(r) for r in await self.conn.fetch(text, *params)]
        except Exception as exc:  # asyncpg's errors: one line
            raise DatabaseError(f"{type(exc).__name__}: {exc}") from exc

    async def columns(self, table: str) -> set[str] | None:
        found = await self.rows("SELECT column_name FROM information_schema.columns WHERE table_name = ? "
                                "AND table_schema = ANY(current_schemas(false))", table)
        return {str(r["column_name"]).lower() for r in found} or None

    async def close(self) -> None:
        await self.conn.close()


class _MySQL(Database):
    kind = "mysql"

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.lock = asyncio.Lock()

    def _fetch(self, sql: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
        with self.conn.cursor() as cursor:
            cursor.execute(sql.replace("%", "%%").replace("?", "%s") if params else sql, params or None)
            return list(cursor.fetchall())

    async def rows(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        import pymysql

        async with self.lock:
            try:
                return await asyncio.to_thread(self._fetch, sql, params)
            except pymysql.MySQLError as exc:
                raise DatabaseError(f"{type(exc).__name__}: {exc}") from exc

    async def columns(self, table: str) -> set[str] | None:
        found = await self.rows("SELECT column_name AS c FROM information_schema.columns WHERE table_name = ? "
                                "AND table_schema = DATABASE()", table)
        return {str(r["c"]).lower() for r in found} or None

    async def close(self) -> None:
        await asyncio.to_thread(self.conn.close)


async def open_database(url: str) -> Database:
    """Connects to ``url``; ``DatabaseError`` (one line) when it cannot."""
    scheme = url.split("://", 1)[0].lower()
    if scheme in ("postgresql", "postgres"):
        import asyncpg

        try:
            return _Postgres(await asyncpg.connect(url, timeout=15))
        except Exception as exc:
            raise DatabaseError(f"cannot connect to {redact(url)}: {type(exc).__name__}: {exc}") from exc
    if scheme in ("mysql", "mariadb", "mysql+pymysql"):
        import pymysql
        import pymysql.cursors

        parts = urlsplit(url)
        database = parts.path.lstrip("/")
        if not database:
            raise DatabaseError(f"{redact(url)} names no database (mysql://user:pass@host:3306/traccar)")

        def connect() -> Any:
            return pymysql.connect(host=parts.hostname or "127.0.0.1", port=parts.port or 3306,
                                   user=unquote(parts.username or "root"), password=unquote(parts.password or ""),
                                   database=unquote(database), charset="utf8mb4", connect_timeout=15,
                                   cursorclass=pymysql.cursors.DictCursor)

        try:
            return _MySQL(await asyncio.to_thread(connect))
        except pymysql.MySQLError as exc:
            raise DatabaseError(f"cannot connect to {redact(url)}: {exc}") from exc
    raise DatabaseError(f"unsupported database URL {redact(url)!r}: use postgresql://… or mysql://…")


__all__ = ["Database", "DatabaseError", "open_database", "redact"]
