"""Datasets built from in-memory arrays (:func:`from_tensors`), and the table through which a
:class:`~prunebench.data.base.Dataset` handed to ``prunebench.run_study(data=...)`` reaches the
study's cells in this process (:func:`register_memory_dataset`, :func:`memory_dataset`).

A registered dataset is named ``<memory>:<first 16 hex digits of its SHA-256>``; the hash covers
every split's image and label bytes and the facts of its :class:`DataInfo` (:func:`dataset_sha256`),
so a study's cell keys follow the data, not the Python object.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from prunebench.data.base import DataInfo, Dataset, Split
from prunebench.data.npz import channel_stats, to_nchw
from prunebench.data.split import VAL_FRACTION, train_val_masks, validation_indices
from prunebench.errors import UserError

MEMORY = "<memory>:"  # the name prefix of datasets registered in this process (models.factory uses the same)
_MEMORY: dict[str, Dataset] = {}


def _array(a: Any, what: str) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().numpy()
    if isinstance(a, np.ndarray):
        return a
    raise UserError(f"from_tensors: {what} must be a numpy array or a torch tensor, got {type(a).__name__}")


def _labels(y: np.ndarray, n: int, what: str) -> np.ndarray:
    if y.dtype.kind not in "iu" or y.ndim != 1 or len(y) != n:
        raise UserError(f"from_tensors: {what} must be {n} integer class labels (1-D), got {y.dtype} {y.shape}; "
                        "use y.astype(np.int64)")
    if n and y.min() < 0:
        raise UserError(f"from_tensors: {what} holds negative labels (min {y.min()}); number classes 0..K-1")
    return y.astype(np.int64)


def from_tensors(x_train: Any, y_train: Any, x_test: Any, y_test: Any, *, classes: Sequence[str] = (),
                 val_fraction: float = VAL_FRACTION, split_seed: int = 0, name: str = "tensors") -> Dataset:
    """A :class:`Dataset` from arrays: images uint8 (N x H x W, N x C x H x W or N x H x W x C, C in
    {1, 3}; the layout rule of :mod:`prunebench.data.npz`), labels integers 0..K-1.

    A validation split of ``val_fraction`` is carved from the training images by ``split_seed``
    (saved like every other dataset's, under a name that includes the data's hash); normalization
    is the training images' per-channel mean / std; no augmentation. ``classes`` names the classes
    (default: none; their count is the largest label + 1)."""
    xs = {k: to_nchw(_array(x, f"x_{k}"), f"from_tensors: x_{k}") for k, x in (("train", x_train), ("test", x_test))}
    ys = {k: _labels(_array(y, f"y_{k}"), len(xs[k]), f"y_{k}") for k, y in (("train", y_train), ("test", y_test))}
    if xs["train"].shape[1:] != xs["test"].shape[1:]:
        raise UserError(f"from_tensors: train images are {xs['train'].shape[1:]} (C, H, W) but test images are "
                        f"{xs['test'].shape[1:]}; give both splits the same image shape")
    num_classes = int(max(ys["train"].max(), ys["test"].max())) + 1
    if classes and len(classes) != num_classes:
        raise UserError(f"from_tensors: classes names {len(classes)} classes but the labels use {num_classes}; "
                        "fix one of them")
    mean, std = channel_stats(xs["train"])
    c, h, w = xs["train"].shape[1:]
    info = DataInfo(name=name, num_classes=num_classes, in_channels=int(c), image_size=(int(h), int(w)), mean=mean,
                    std=std, classes=tuple(str(n) for n in classes))
    train = Split(torch.from_numpy(xs["train"]), torch.from_numpy(ys["train"]))
    digest = hashlib.sha256(xs["train"].tobytes() + ys["train"].tobytes()).hexdigest()[:16]
    n = len(train)
    tr_idx, val_idx = train_val_masks(n, validation_indices(f"{name}-{digest}", n, val_fraction, split_seed))
    return Dataset(info, train.subset(tr_idx), train.subset(val_idx),
                   Split(torch.from_numpy(xs["test"]), torch.from_numpy(ys["test"])))


def dataset_sha256(ds: Dataset) -> str:
    """SHA-256 over every split's images and labels (shapes included) and the dataset's facts."""
    h = hashlib.sha256()
    i = ds.info
    h.update(repr((i.num_classes, i.in_channels, tuple(i.image_size), tuple(i.mean), tuple(i.std), i.crop_padding,
                   i.hflip, tuple(i.classes))).encode())
    for split in (ds.train, ds.val, ds.test):
        for t in (split.x, split.y):
            t = t.detach().cpu().contiguous()
            h.update(repr((str(t.dtype), tuple(t.shape))).encode())
            h.update(t.numpy().tobytes())
    return h.hexdigest()


def register_memory_dataset(ds: Dataset) -> str:
    """Make ``ds`` loadable by name in this process; returns the name ``<memory>:<sha16>``."""
    if not isinstance(ds, Dataset):
        raise UserError(f"data= must be a prunebench Dataset (prunebench.data.load_dataset(...) or "
                        f"prunebench.data.from_tensors(...)), got {type(ds).__name__}")
    name = MEMORY + dataset_sha256(ds)[:16]
    _MEMORY[name] = ds
    return name


def memory_dataset(name: str) -> Dataset:
    """The dataset registered under ``name`` in this process."""
    if name not in _MEMORY:
        raise UserError(f"dataset {name!r} was handed to run_study(data=...) in another Python process; it exists "
                        "only there (save it as an .npz and use dataset: {name: npz, root: FILE})")
    return _MEMORY[name]
