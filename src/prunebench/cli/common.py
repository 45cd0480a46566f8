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
    return load_dataset(name, root or (meta.get("data_root") if not override else None),
                        val_fraction=meta.get("val_fraction", 0.1), split_seed=meta.get("split_seed", 0))


def split_list(text: str | None) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()] if text else []
