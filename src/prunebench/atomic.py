"""Atomic file writes: a temporary file in the destination's folder, renamed over it only once complete.

Readers (and a crashed or interrupted run) never see half a file: every file prunebench writes
(checkpoints, results exports, reports, saved splits, the corruption cache, downloads) goes through
:func:`atomic_path` or :func:`write_atomic`.
"""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def _read_umask() -> int:
    mask = os.umask(0)  # the only portable way to read it; done once, at import, before any threads write
    os.umask(mask)
    return mask


_UMASK = _read_umask()


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on a clean exit it replaces ``path``, on an exception
    it is deleted and ``path`` is left as it was. The folder is created if needed; the file gets the
    usual umask-based permissions (``mkstemp`` alone would give 0600). The data is flushed to disk
    (fsync) before the rename, and the rename itself after, so a crash cannot leave an empty file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. platforms where directories cannot be opened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def sweep_stale(folder: str | Path, older_than_s: float = 3600.0) -> list[Path]:
    """Delete the temporary files :func:`atomic_path` leaves when its process is killed (``.<name>.*.tmp``)
    in ``folder`` that are older than ``older_than_s`` (a younger one may belong to a writer still at
    work). Returns what was removed."""
    import time

    folder = Path(folder)
    if not folder.is_dir():
        return []
    limit = time.time() - older_than_s
    gone = []
    for p in folder.glob(".*.tmp"):
        try:
            if p.is_file() and p.stat().st_mtime < limit:
                p.unlink()
                gone.append(p)
        except OSError:  # vanished meanwhile, or not ours to delete
            continue
    return gone


def write_atomic(path: str | Path, data: str | bytes) -> Path:
    """Write ``data`` (text as UTF-8, or bytes) to ``path`` atomically; returns the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data, encoding="utf-8")
    return path
