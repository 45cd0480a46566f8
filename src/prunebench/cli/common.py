"""Small helpers shared by the CLI commands: devices, JSON output, data for a checkpoint."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from prunebench.device import AUTO
from prunebench.errors import UserError


def add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default=AUTO, help="cpu, cuda, cuda:1 or auto (cuda when available)")


def write_json(path: str | Path, obj: Any) -> None:
    """Write JSON atomically (temp file + rename)."""
    from prunebench.atomic import write_atomic

    write_atomic(path, json.dumps(obj, indent=2, default=float))


def data_for(meta: dict[str, Any], override: str | None = None, root: str | None = None):
    """The dataset a checkpoint was trained on (or ``override``), with the same validation split."""
    from prunebench.data import load_dataset
    from prunebench.data.split import VAL_FRACTION

    name = override or meta.get("dataset")
    if not name:
        raise UserError("the checkpoint does not say which dataset it was trained on; pass --data NAME")
    data = load_dataset(name, root or (meta.get("data_root") if not override else None),
                        val_fraction=meta.get("val_fraction", VAL_FRACTION), split_seed=meta.get("split_seed", 0))
    check_data_fits(meta, data.info)
    return data


def split_list(text: str | None) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()] if text else []


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
