"""A fixed validation split carved from the training set, saved so that it never changes.

Checkpoints are chosen and data-informed pruning batches drawn on this split, never on the test
set. The indices are computed once per (dataset, size, fraction, seed), written as JSON to the
user cache, and read back on every later use, so a different numpy/torch version cannot move them.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from prunebench.atomic import write_atomic
from prunebench.data.sources import cache_dir
from prunebench.errors import UserError

VAL_FRACTION = 0.1  # default share of the training set held out for validation / data-informed pruning


def validation_indices(name: str, n: int, fraction: float = VAL_FRACTION, seed: int = 0,
                       folder: Path | None = None) -> torch.Tensor:
    """Sorted indices of the validation part of a training set of size ``n`` (saved on first use)."""
    if not 0.0 < fraction < 1.0:
        raise UserError(f"validation fraction must be in (0, 1), got {fraction}; e.g. {VAL_FRACTION}")
    folder = folder or cache_dir() / "splits"
    path = folder / f"{name}-n{n}-val{fraction:g}-seed{seed}.json"
    if path.is_file():
        idx = json.loads(path.read_text())
        if len(idx) != round(n * fraction) or (idx and max(idx) >= n):
            raise UserError(f"saved validation split {path} does not fit the dataset; delete it to recreate it")
        return torch.tensor(idx, dtype=torch.long)
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.permutation(n)[: round(n * fraction)]).tolist()
    write_atomic(path, json.dumps(idx))
    return torch.tensor(idx, dtype=torch.long)


def train_val_masks(n: int, val_idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Index tensors of the remaining training part and of the validation part."""
    is_val = torch.zeros(n, dtype=torch.bool)
    is_val[val_idx] = True
    return (~is_val).nonzero().squeeze(1), val_idx
