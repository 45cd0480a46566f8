"""Atomic file writes: a temporary file in the destination's folder, renamed over it only once complete.

Readers (and a crashed or interrupted run) never see half a file: every file prunebench writes
(checkpoints, results exports, reports, saved splits, the corruption cache, downloads) goes through
:func:`atomic_path` or :func:`write_atomic`.

A temporary file is named ``.<name>.<host>-<pid>.<random>.tmp``: the next writer of the same target
deletes the ones whose writer (same host, that pid) is no longer alive, whatever their age, and
leaves a live writer's alone. Unnamed ones (older prunebench) go once they are an hour old.
"""
from __future__ import annotations

import os
import re
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


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
    from prunebench.errors import UserError

    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        sweep_dead(path)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{_TAG}-{os.getpid()}.", suffix=".tmp")
    except OSError as e:
        raise UserError(f"cannot write {path} ({e.strerror or e}); pass a path in a writable folder") from None
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


_TAG = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname())[:32] or "host"
_OWNER = re.compile(r"\.(?P<host>[A-Za-z0-9_-]+)-(?P<pid>\d+)\.[^.]+\.tmp$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    try:  # a zombie is dead for our purpose
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[-1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def writer_alive(tmp: Path) -> bool | None:
    """Whether the writer of temporary file ``tmp`` is alive (None: unknown, another host or no tag)."""
    m = _OWNER.search(tmp.name)
    if not m or m["host"] != _TAG:
        return None
    pid = int(m["pid"])
    return True if pid == os.getpid() else _alive(pid)


def sweep_dead(target: str | Path) -> list[Path]:
    """Delete the temporary files of ``target`` (``.<name>.*.tmp`` beside it) whose writer is dead,
    whatever their age; unnamed ones older than an hour. Returns what was removed."""
    target = Path(target)
    gone = []
    limit = time.time() - 3600.0
    for p in target.parent.glob(f".{glob_escape(target.name)}.*.tmp"):
        alive = writer_alive(p)
        try:
            if alive is False or (alive is None and p.stat().st_mtime < limit):
                p.unlink()
                gone.append(p)
        except OSError:
            continue
    return gone


def glob_escape(name: str) -> str:
    import glob

    return glob.escape(name)


def sweep_stale(folder: str | Path, older_than_s: float = 3600.0) -> list[Path]:
    """Delete the temporary files :func:`atomic_path` leaves when its process is killed (``.<name>.*.tmp``)
    in ``folder``: those whose writer is known dead, and the others older than ``older_than_s`` (a
    younger one may belong to a writer still at work; 0 = all, for a folder only its lock holder
    writes). A live writer of this host keeps its files. Returns what was removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    limit = time.time() - older_than_s
    gone = []
    for p in folder.glob(".*.tmp"):
        alive = writer_alive(p)
        if alive:
            continue
        try:
            if p.is_file() and (alive is False or p.stat().st_mtime <= limit):
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
