"""One exclusive lock per run directory, held for a run's lifetime.

The lock is an ``flock`` on ``<run_dir>/.lock``: the kernel releases it when the holding process
dies, however it dies (SIGKILL included), so a killed run never leaves a stale lock behind. The file
also says who holds it (pid, host, start time, command) so a refused second run can name the holder;
its content is only informative, the lock itself is the ``flock``.

Worker processes never inherit the lock (spawned children get no open descriptors but their pipes).
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from prunebench.errors import UserError
from prunebench.study.rundir import LOCK_FILE


class RunLock:
    """The exclusive lock of one run directory; ``with RunLock(run):`` or ``acquire()`` / ``release()``."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        """Take the lock at once or raise UserError naming the holder (never waits)."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise UserError(f"{self.run_dir} is in use by another run ({describe(read_holder(self.run_dir))}); "
                            "wait for it to finish, or pass another --out") from None
        except OSError as e:  # a file system without locks (some network mounts): run, but say so
            print(f"prunebench: warning: cannot lock {self.path} ({e.strerror or e}); make sure no other run "
                  "uses this directory", file=sys.stderr)
        except BaseException:
            os.close(fd)
            raise
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(),
                "command": " ".join(sys.argv[:6])[:300]}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, 0)  # no holder any more
            except OSError:
                pass
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def read_holder(run_dir: str | Path) -> dict[str, Any]:
    """What the lock file says about its holder ({} if nothing readable)."""
    try:
        data = json.loads((Path(run_dir) / LOCK_FILE).read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def running(run_dir: str | Path) -> dict[str, Any] | None:
    """The holder of ``run_dir``'s lock if a live process holds it, else None. Creates nothing."""
    path = Path(run_dir) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return read_holder(run_dir) or {"pid": "?"}
    finally:
        os.close(fd)  # also drops the shared lock if it was taken
    return None


def describe(holder: dict[str, Any]) -> str:
    """``pid 123 on host, started 2026-01-01 12:00:00`` (what is known)."""
    if not holder:
        return "holder unknown"
    parts = [f"pid {holder.get('pid', '?')}"]
    if holder.get("host") and holder.get("host") != socket.gethostname():
        parts.append(f"on {holder['host']}")
    if isinstance(holder.get("started"), (int, float)):
        parts.append("started " + time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder["started"])))
    return ", ".join(parts)
