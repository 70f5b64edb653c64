"""A cell-tower database for LBS positions, imported from OpenCelliD / Mozilla Location Service CSV.

It lives in a SQLite file of its own (``<data_dir>/cells.sqlite``), not in the fleet's store: it is
reference data (tens of millions of rows for the world, re-imported wholesale when a new export
comes out), read-only while the server runs, the same on every node, and looked up synchronously
in phase 1 of the pipeline, where a round trip to a network database would stall every device.

CSV columns (both projects' exports, header line first):
``radio,mcc,net,area,cell,unit,lon,lat,range,samples,changeable,created,updated,averageSignal``
— ``net`` is the MNC, ``area`` the LAC/TAC, ``range`` the estimated coverage radius in metres.
"""

from __future__ import annotations

import csv
import gzip
import io
import sqlite3
from collections.abc import Callable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS cells (
    mcc INTEGER NOT NULL, mnc INTEGER NOT NULL, lac INTEGER NOT NULL, cell INTEGER NOT NULL,
    lat REAL NOT NULL, lon REAL NOT NULL, range REAL NOT NULL, radio TEXT,
    PRIMARY KEY (mcc, mnc, lac, cell)
) WITHOUT ROWID;
"""
DEFAULT_RANGE = 1000.0  # metres, when the export gives none
REQUIRED = ("mcc", "net", "area", "cell", "lon", "lat")


class CellImportError(ValueError):
    """The file is not an OpenCelliD/MLS CSV export; the message says what is wrong."""


class CellDatabase:
    """``locate(mcc, mnc, lac, cell) -> (lat, lon, range_m) | None``; ``import_csv`` fills it."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._db: sqlite3.Connection | None = None
        self._locate = lru_cache(maxsize=65536)(self._query)

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(SCHEMA)
        return db

    def locate(self, mcc: int, mnc: int, lac: int, cell: int) -> tuple[float, float, float] | None:
        return self._locate(mcc, mnc, lac, cell)

    def _query(self, mcc: int, mnc: int, lac: int, cell: int) -> tuple[float, float, float] | None:
        if self._db is None:
            if not self.path.exists():
                return None  # nothing imported yet: no LBS positions, and no empty file created
            self._db = self._connect()
        row = self._db.execute("SELECT lat, lon, range FROM cells WHERE mcc=? AND mnc=? AND lac=? AND cell=?",
                               (mcc, mnc, lac, cell)).fetchone()
        return None if row is None else (float(row[0]), float(row[1]), float(row[2]))

    def forget_cache(self) -> None:
        """After an import: lookups that found nothing may now find something."""
        self._locate.cache_clear()

    def count(self) -> int:
        if not self.path.exists():
            return 0
        db = self._db or self._connect()
        return int(db.execute("SELECT count(*) FROM cells").fetchone()[0])

    def import_csv(self, source: Path, progress: Callable[[int], None] | None = None, batch: int = 50_000) -> int:
        """Upserts every row of the export (``.csv`` or ``.csv.gz``); returns how many rows were read.
        ``progress(bytes_read)`` is called as the file is read. Raises ``CellImportError``."""
        db = self._connect()
        count = 0
        try:
            rows: list[tuple[int, int, int, int, float, float, float, str]] = []
            for row in _rows(source, progress):
                rows.append(row)
                if len(rows) >= batch:
                    _insert(db, rows)
                    count += len(rows)
                    rows = []
            if rows:
                _insert(db, rows)
                count += len(rows)
        finally:
            db.close()
        self.forget_cache()
        return count


def _insert(db: sqlite3.Connection, rows: list[tuple[int, int, int, int, float, float, float, str]]) -> None:
    db.execute("BEGIN")
    db.executemany("INSERT OR REPLACE INTO cells(mcc, mnc, lac, cell, lat, lon, range, radio)"
                   " VALUES (?,?,?,?,?,?,?,?)", rows)
    db.execute("COMMIT")


class _Counting(io.RawIOBase):
    def __init__(self, raw: io.BufferedReader, progress: Callable[[int], None] | None) -> None:
        self._raw = raw
        self._progress = progress
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        n = self._raw.readinto(buffer)
        self.read_bytes += n or 0
        if self._progress is not None:
            self._progress(self.read_bytes)
        return n or 0


def _rows(source: Path, progress: Callable[[int], None] | None
          ) -> Iterator[tuple[int, int, int, int, float, float, float, str]]:
    try:
        raw = open(source, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise CellImportError(f"cannot read {source}: {exc.strerror or exc}") from exc
    with raw:
        counting = io.BufferedReader(_Counting(raw, progress))
        stream: Any = gzip.GzipFile(fileobj=counting) if str(source).endswith(".gz") else counting
        text = io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline="")
        reader = csv.DictReader(text)
        missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise CellImportError(f"{source} is not an OpenCelliD/MLS export: no column(s) {', '.join(missing)}")
        for line, rec in enumerate(reader, start=2):
            try:
                yield (int(rec["mcc"]), int(rec["net"]), int(rec["area"]), int(rec["cell"]), float(rec["lat"]),
                       float(rec["lon"]), float(rec.get("range") or DEFAULT_RANGE) or DEFAULT_RANGE,
                       rec.get("radio") or "")
            except (TypeError, ValueError) as exc:
                raise CellImportError(f"{source} line {line}: {exc}") from exc
