"""Datasets: real files (IDX, CIFAR pickles read safely, SVHN .mat, .npz), a fixed validation split,
and device-resident batching. ``load_dataset(name)`` is the one call most code needs;
``from_tensors(x_train, y_train, x_test, y_test)`` builds one from in-memory arrays.
:data:`DATASETS` loads the dataset modules itself on first lookup.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from prunebench.data.base import DataInfo, Dataset, Split
from prunebench.data.loader import DeviceLoader
from prunebench.data.registry import DATASETS
from prunebench.data.split import VAL_FRACTION, train_val_masks, validation_indices
from prunebench.data.tensors import from_tensors
from prunebench.errors import UserError


def load_splits(name: str, root: str | Path | None = None, options: Mapping[str, Any] | None = None,
                ) -> tuple[DataInfo, dict[str, Split]]:
    """The raw splits a dataset has on disk (e.g. MNIST's test set alone, for OoD use). ``options``: the
    dataset's own options (e.g. image-folder's ``size``), checked against its options model."""
    spec = DATASETS.spec(name)
    given = spec.non_default(spec.parse_options(options or {}))
    return spec.obj(Path(root) if root is not None else None, **given)


def load_dataset(name: str, root: str | Path | None = None, *, val_fraction: float = VAL_FRACTION, split_seed: int = 0,
                 train_limit: int | None = None, test_limit: int | None = None,
                 options: Mapping[str, Any] | None = None) -> Dataset:
    """A dataset with train / validation (carved from train, fixed and saved) / test splits.

    ``train_limit`` / ``test_limit`` keep the first N images of the (post-carve) training and the test
    split, for quick runs; the validation split is unaffected by them.
    """
    info, splits = load_splits(name, root, options)
    missing = {"train", "test"} - set(splits)
    if missing:
        raise UserError(f"dataset {name!r} has no {'/'.join(sorted(missing))} split here; training needs both (add the files)")
    train = splits["train"]
    key = info.name if root is None else f"{info.name}-{Path(root).name}"
    tr_idx, val_idx = train_val_masks(len(train), validation_indices(key, len(train), val_fraction, split_seed))
    test = splits["test"]
    for what, limit in (("train_limit", train_limit), ("test_limit", test_limit)):
        if limit is not None and limit <= 0:
            raise UserError(f"{what} must be a positive number of images, got {limit}")
    tr_idx = tr_idx[:train_limit] if train_limit else tr_idx
    return Dataset(info, train.subset(tr_idx), train.subset(val_idx), test.subset(slice(0, test_limit)))


__all__ = ["DATASETS", "DataInfo", "Dataset", "DeviceLoader", "Split", "from_tensors", "load_dataset", "load_splits"]
