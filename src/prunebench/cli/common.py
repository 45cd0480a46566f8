"""Small helpers shared by the CLI commands: devices, JSON output, data for a checkpoint."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch

from prunebench.errors import UserError


def add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 or auto (cuda when available)")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r}; use cpu, cuda, cuda:N or auto") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {name!r} requested but CUDA is not available; use --device cpu")
    return dev


def write_json(path: str | Path, obj: Any) -> None:
    """Write JSON atomically (temp file + rename)."""
    from prunebench.atomic import write_atomic

    write_atomic(path, json.dumps(obj, indent=2, default=float))


def data_for(meta: dict[str, Any], override: str | None = None, root: str | None = None):
    """The dataset a checkpoint was trained on (or ``override``), with the same validation split."""
    from prunebench.data import load_dataset

    name = override or meta.get("dataset")
    if not name:
        raise UserError("the checkpoint does not say which dataset it was trained on; pass --data NAME")
    data = load_dataset(name, root or (meta.get("data_root") if not override else None),
                        val_fraction=meta.get("val_fraction", 0.1), split_seed=meta.get("split_seed", 0))
    check_data_fits(meta, data.info)
    return data


def split_list(text: str | None) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()] if text else []


def _writable_ancestor(path: Path, flag: str) -> None:
    """The nearest existing folder above ``path`` must be a folder we can create files in (probed with
    a temporary file, removed at once: permission bits alone lie for root and read-only mounts)."""
    import os
    import tempfile

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


def finite(value: float, flag: str, *, positive: bool = False) -> float:
    """``value`` if it is a finite number (and > 0 with ``positive``), else a one-line UserError."""
    import math

    if not math.isfinite(value) or (positive and value <= 0):
        want = "a finite number > 0" if positive else "a finite number"
        raise UserError(f"{flag} must be {want}, got {value}")
    return value


def check_data_fits(meta: dict[str, Any], info: Any, what: str = "the checkpoint") -> None:
    """The dataset must have the channel count, image size and class count the model was built for."""
    kw = meta.get("model_kwargs") or {}
    c = kw.get("in_channels")
    if isinstance(c, int) and c != info.in_channels:
        raise UserError(f"{what} takes {c}-channel images but dataset {info.name!r} has {info.in_channels} channels; "
                        "evaluate on a dataset like the one it was trained on (--data)")
    size = kw.get("image_size")
    if isinstance(size, int) and tuple(info.image_size) != (size, size):
        raise UserError(f"{what} takes {size}x{size} images but dataset {info.name!r} has "
                        f"{info.image_size[0]}x{info.image_size[1]}; evaluate on a dataset of that image size (--data)")
    k = kw.get("num_classes")
    if isinstance(k, int) and info.num_classes > k:
        raise UserError(f"{what} predicts {k} classes but dataset {info.name!r} has {info.num_classes}; "
                        "evaluate on a dataset with the classes it was trained on (--data)")
