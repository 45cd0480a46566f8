"""The results store: one SQLite row per finished unit of work, keyed by its config hash.

SQLite (stdlib, WAL mode) is the embedded default. Everything else in prunebench talks to the
store only through :class:`ResultStore`, so another backend can replace this one module.
"""
from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    """Idempotent put/get of records by key; safe for several processes (WAL, busy timeout).

    Opening never ignores the write-ahead log (a killed writer leaves its last transactions there, the
    ``meta`` table included). The schema is created in ONE transaction, so a store is either complete
    or holds no table; a store whose creation was interrupted by an older prunebench (tables, no
    schema row, no result) is completed in place. ``readonly=True`` opens for reading only (``report``
    and ``load_results`` on a running study) and creates nothing but SQLite's ``-wal``/``-shm`` files.
    A store another process holds locked is reported as busy, not as "not a store".
    """

    def __init__(self, path: str | Path, *, readonly: bool = False, timeout: float = 60.0) -> None:
        self.path = Path(path)
        self.readonly = readonly
        if readonly:
            if not self.path.is_file():
                raise UserError(f"results store not found: {self.path}; pass the folder `prunebench run` wrote")
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            if readonly:
                self._db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=timeout, isolation_level=None)
            else:
                self._db = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
                self._db.execute("PRAGMA journal_mode=WAL")
            schema = _schema_of(self._db, self.path, repair=not readonly)
        except sqlite3.OperationalError as e:
            if _is_busy(e):
                raise UserError(f"{self.path} is busy: another process holds it locked ({e}); wait for it "
                                "(a run in progress?) and retry") from None
            raise UserError(f"{self.path} is not a prunebench results store ({e}); pick another run directory") from None
        except sqlite3.DatabaseError as e:
            raise UserError(f"{self.path} is not a prunebench results store ({e}); pick another run directory") from None
        if schema is not None and schema > SCHEMA_VERSION:
            raise UserError(f"{self.path} was written by a newer prunebench (store schema {schema}); upgrade prunebench")

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
        query, args = "SELECT * FROM results", tuple[str, ...]()
        if kind is not None:
            query, args = query + " WHERE kind = ?", (kind,)
        return [_record(r) for r in self._db.execute(query + " ORDER BY created, key", args)]

    def __iter__(self) -> Iterator[Record]:
        return iter(self.records())

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM results").fetchone()[0]

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _is_busy(e: sqlite3.OperationalError) -> bool:
    text = str(e).lower()
    return "locked" in text or "busy" in text


def _schema_of(db: sqlite3.Connection, path: Path, *, repair: bool) -> int | None:
    """The store's schema version, creating or completing the schema first when ``repair``.

    No table at all (new file, or one whose creation was killed before its single transaction
    committed) or tables without a schema row and without results (creation interrupted in an older
    prunebench) -> created / completed. Tables that are not ours, or results without a schema row,
    -> not a prunebench store (UserError). Read-only: an empty store reads as schema None."""
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if tables and not tables <= {"results", "meta"}:
        raise UserError(f"{path} is an SQLite database but not a prunebench results store (tables "
                        f"{', '.join(sorted(tables))}); pick another run directory")
    row = db.execute("SELECT value FROM meta WHERE name='schema'").fetchone() if "meta" in tables else None
    if row is not None:
        return _int_schema(row[0], path)
    if "results" in tables and db.execute("SELECT 1 FROM results LIMIT 1").fetchone() is not None:
        raise UserError(f"{path} holds results but no schema record; it was not written by prunebench, "
                        "pick another run directory")
    if not repair:
        return None
    db.execute("BEGIN IMMEDIATE")
    try:
        for stmt in filter(str.strip, _SCHEMA.split(";")):
            db.execute(stmt)
        db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    row = db.execute("SELECT value FROM meta WHERE name='schema'").fetchone()
    return _int_schema(row[0], path)


def _int_schema(value: str, path: Path) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise UserError(f"{path} has an unreadable schema record ({value!r}); pick another run directory") from None


def inspect_store(path: str | Path) -> int | None:
    """The schema version of the store at ``path`` read without writing anything (WAL respected);
    None when it holds no schema yet (a creation that was interrupted: it holds no finished cell and
    the next writer completes it). Raises UserError for a file that is not a store, or a busy one."""
    path = Path(path)
    wal = path.with_name(path.name + "-wal")
    if not wal.exists() or wal.stat().st_size == 0:
        # Nothing in a WAL: the main file is the whole store; immutable=1 reads it creating nothing
        # (no -wal/-shm). A writer that starts meanwhile makes the read fail, then it is read normally.
        try:
            con = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
            try:
                return _schema_of(con, path, repair=False)
            finally:
                con.close()
        except sqlite3.DatabaseError as e:
            if "not a database" in str(e) or "malformed" not in str(e) and not wal.exists():
                raise UserError(f"{path} is not a prunebench results store ({e}); pick another run directory") from None
    with ResultStore(path, readonly=True, timeout=10.0) as store:
        return _schema_of(store._db, store.path, repair=False)


def _record(row: tuple) -> Record:
    key, kind, status, config, metrics, seconds, created = row
    return Record(key, kind, status, json.loads(config), json.loads(metrics), seconds, created)


def _jsonable(v: Any) -> Any:
    if hasattr(v, "item"):
        return v.item()
    if isinstance(v, (tuple, set)):
        return list(v)
    raise TypeError(f"cannot store a value of type {type(v).__name__}")
