"""The dataset a checkpoint belongs to: loaded with the checkpoint's own validation split, and checked to
fit the model (channels, image size, classes) before anything runs on it."""
from __future__ import annotations

from typing import Any

from prunebench.errors import UserError


def data_for(meta: dict[str, Any], override: str | None = None, root: str | None = None):
    """The dataset a checkpoint was trained on (or ``override``), with the same validation split."""
    from prunebench.data import load_dataset
    from prunebench.data.split import VAL_FRACTION

    name = override or meta.get("dataset")
    if not name:
        raise UserError("the checkpoint does not say which dataset it was trained on; pass --data NAME")
    data = load_dataset(name, root or (meta.get("data_root") if not override else None),
                        val_fraction=meta.get("val_fraction", VAL_FRACTION), split_seed=meta.get("split_seed", 0),
                        options=meta.get("data_options") if not override else None)
    check_data_fits(meta, data.info)
    return data


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
