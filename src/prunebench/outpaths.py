"""Output paths checked before any work: a file or folder named by ``--out`` must be creatable and
writable, so a long command never fails at its very end. Used by the CLI and by the study runner."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from prunebench.errors import UserError


def _writable_ancestor(path: Path, flag: str) -> None:
    """The nearest existing folder above ``path`` must be a folder we can create files in (probed with
    a temporary file, removed at once: permission bits alone lie for root and read-only mounts)."""
    up = path.parent if path.parent != path else path
    while not up.exists() and up != up.parent:
        up = up.parent
    if not up.is_dir():
        raise UserError(f"{flag} {path}: {up} is a file, not a folder; pass a path under a folder")
    try:
        fd, name = tempfile.mkstemp(dir=up, prefix=".prunebench-probe.", suffix=".tmp")
    except OSError as e:
        raise UserError(f"{flag} {path}: cannot write in {up} ({e.strerror or e}); pass a path in a writable folder") from None
    os.close(fd)
    os.unlink(name)


def check_out_file(path: str | Path, flag: str = "--out", suffixes: tuple[str, ...] = ()) -> Path:
    """Refuse, before any work, an output file path that names an existing folder or lies where nothing
    can be written. ``suffixes``: the files actually written (e.g. ``.safetensors`` for a checkpoint stem)."""
    p = Path(path)
    if p.is_dir():
        raise UserError(f"{flag} {p} is an existing folder; name a file (e.g. {p / 'out'})")
    for suffix in suffixes:
        q = p if p.suffix == suffix else p.with_name(p.name + suffix)
        if q.is_dir():
            raise UserError(f"{flag} {p}: {q} is an existing folder; name another file")
    _writable_ancestor(p, flag)
    return p


def check_out_dir(path: str | Path, flag: str = "--out") -> Path:
    """Refuse, before any work, an output folder that is a file or cannot be created / written."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UserError(f"{flag} {p} exists and is not a folder; pass another {flag}")
    _writable_ancestor(p / "x" if p.is_dir() else p, flag)
    return p
