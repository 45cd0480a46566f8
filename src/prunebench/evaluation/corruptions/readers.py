"""Readers for the published shifted test sets, as :class:`~prunebench.data.base.Split`.

- CIFAR-10-C style (also CIFAR-100-C, Tiny-ImageNet-C or MNIST-C exported to .npy): a folder with
  ``<corruption>.npy``, uint8 (5 N, H, W, C) or (5 N, H, W) holding severities 1..5 stacked in
  order, and ``labels.npy`` with 5 N (or N) labels.
- CIFAR-10.1 (Recht et al. 2018): ``cifar10.1_<version>_data.npy`` uint8 (N, 32, 32, 3) and
  ``cifar10.1_<version>_labels.npy``.

Files are read with ``numpy.load(allow_pickle=False)`` (memory-mapped), never unpickled.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from prunebench.data.base import Split
from prunebench.errors import UserError
from prunebench.evaluation.corruptions.registry import check_severity


def _load(path: Path, what: str) -> np.ndarray:
    if not path.is_file():
        raise UserError(f"{what} not found: {path}; download the published files and pass the folder that holds them")
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as e:
        raise UserError(f"cannot read {path} ({e}); it must be a plain .npy array (object arrays are refused)") from None
    except (OSError, EOFError) as e:
        raise UserError(f"cannot read {path}: {e}; the file is damaged or not .npy, fetch it again") from None


def _images(arr: np.ndarray, path: Path) -> torch.Tensor:
    """(N, H, W[, C]) uint8 -> (N, C, H, W) uint8 tensor."""
    if arr.dtype != np.uint8:
        raise UserError(f"{path} holds {arr.dtype} images; expected uint8 (N, H, W, C) as published")
    if arr.ndim == 3:
        arr = arr[..., None]
    if arr.ndim != 4 or arr.shape[-1] not in (1, 3):
        raise UserError(f"{path} has shape {arr.shape}; expected uint8 (N, H, W, 3) or (N, H, W) images")
    return torch.from_numpy(np.array(arr, copy=True)).permute(0, 3, 1, 2).contiguous()


def _labels(arr: np.ndarray, path: Path) -> torch.Tensor:
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise UserError(f"{path} has {arr.dtype} labels of shape {arr.shape}; expected a 1-D integer array")
    return torch.from_numpy(np.array(arr, dtype=np.int64, copy=True))


def list_corrupted_npy(root: str | Path) -> list[str]:
    """The corruption names present in a CIFAR-10-C style folder (``*.npy`` except labels.npy)."""
    return sorted(p.stem for p in Path(root).glob("*.npy") if p.stem != "labels")


def load_corrupted_npy(root: str | Path, corruption: str, severity: int) -> Split:
    """One severity of one corruption from a CIFAR-10-C style folder."""
    check_severity(severity)
    root = Path(root)
    path = root / f"{corruption}.npy"
    if not path.is_file() and root.is_dir():
        have = list_corrupted_npy(root)
        raise UserError(f"{path} not found; this folder has: {', '.join(have) or 'no .npy files'}")
    data = _load(path, "corruption file")
    if len(data) % 5:
        raise UserError(f"{path} holds {len(data)} images, not 5 severities x N; the file is truncated, fetch it again")
    n = len(data) // 5
    labels_path = root / "labels.npy"
    labels = _load(labels_path, "labels file")
    if len(labels) == 5 * n:
        labels = labels[(severity - 1) * n : severity * n]
    elif len(labels) != n:
        raise UserError(f"{labels_path} has {len(labels)} labels but {path} has 5 x {n} images; they are from different sets")
    x = _images(data[(severity - 1) * n : severity * n], path)
    return Split(x, _labels(labels, labels_path))


def load_cifar10_1(root: str | Path, version: str = "v6") -> Split:
    """The CIFAR-10.1 test set (``v6``: 2000 images; ``v4``: 2021) from its two .npy files."""
    root = Path(root)
    data_path, labels_path = root / f"cifar10.1_{version}_data.npy", root / f"cifar10.1_{version}_labels.npy"
    x = _images(_load(data_path, "CIFAR-10.1 data file"), data_path)
    y = _labels(_load(labels_path, "CIFAR-10.1 labels file"), labels_path)
    if len(x) != len(y):
        raise UserError(f"{data_path} has {len(x)} images but {labels_path} has {len(y)} labels; fetch both again")
    return Split(x, y)
