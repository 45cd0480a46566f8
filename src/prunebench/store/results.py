"""The results store: one SQLite row per finished unit of work, keyed by its config hash.

SQLite (stdlib, WAL mode) is the embedded default. Everything else in prunebench talks to the
store only through :class:`ResultStore`, so another backend can replace this one module.
"""
from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from prunebench.errors import UserError

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    key      TEXT PRIMARY KEY,
    kind     TEXT NOT NULL,
    status   TEXT NOT NULL,
    config   TEXT NOT NULL,
    metrics  TEXT NOT NULL,
    seconds  REAL,
    created  REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS results_kind ON results(kind);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True)
class Record:
    """One finished unit of work."""

    key: str
    kind: str
    status: str  # "done" or "failed"
    config: dict[str, Any]
    metrics: dict[str, Any]
    seconds: float | None
    created: float


class ResultStore:
    """Idempotent put/get of records by key; safe for several processes (WAL, busy timeout)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)
            row = self._db.execute("SELECT value FROM meta WHERE name='schema'").fetchone()
        except sqlite3.DatabaseError as e:
            raise UserError(f"{self.path} is not a prunebench results store ({e}); pick another run directory") from None
        if row is None:
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        elif int(row[0]) > SCHEMA_VERSION:
            raise UserError(f"{self.path} was written by a newer prunebench (store schema {row[0]}); upgrade prunebench")

    def put(self, key: str, kind: str, config: dict[str, Any], metrics: dict[str, Any], *,
            status: str = "done", seconds: float | None = None) -> None:
        """Insert or replace the record for ``key`` (one transaction: all or nothing)."""
        self._db.execute(
            "INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?, ?, ?)",
            (key, kind, status, json.dumps(config, sort_keys=True, default=_jsonable),
             json.dumps(metrics, sort_keys=True, default=_jsonable), seconds, time.time()),
        )

    def get(self, key: str) -> Record | None:
        row = self._db.execute("SELECT * FROM results WHERE key = ?", (key,)).fetchone()
        return _record(row) if row else None

    def has(self, key: str, status: str = "done") -> bool:
        return self._db.execute("SELECT 1 FROM results WHERE key = ? AND status = ?", (key, status)).fetchone() is not None

    def delete(self, key: str) -> None:
        self._db.execute("DELETE FROM results WHERE key = ?", (key,))

    def records(self, kind: str | None = None) -> list[Record]:
        """All records (of one kind), oldest first."""
        query, args = "SELECT * FROM results", ()
        if kind is not None:
            query, args = query + " WHERE kind = ?", (kind,)
        return [_record(r) for r in self._db.execute(query + " ORDER BY created, key", args)]

    def __iter__(self) -> Iterator[Record]:
        return iter(self.records())

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM results").fetchone()[0]

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "ResultStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _record(row: tuple) -> Record:
    key, kind, status, config, metrics, seconds, created = row
    return Record(key, kind, status, json.loads(config), json.loads(metrics), seconds, created)


def _jsonable(v: Any) -> Any:
    if hasattr(v, "item"):
        return v.item()
    if isinstance(v, (tuple, set)):
        return list(v)
    raise TypeError(f"cannot store a value of type {type(v).__name__}")
