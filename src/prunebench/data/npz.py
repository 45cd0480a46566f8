"""Custom image data from one ``.npz`` file: ``x_train``, ``y_train``, ``x_test``, ``y_test``.

Images are uint8, either N x H x W (grayscale), N x C x H x W or N x H x W x C with C in {1, 3}.
Layout rule: the channel axis is axis 1 when ``shape[1]`` is 1 or 3, else axis 3 when ``shape[3]``
is 1 or 3, else the array is rejected. A shape where both qualify (only possible for images 1 or
3 pixels tall or wide) is therefore read as NCHW, PyTorch's order. Labels are non-negative
integers; the number of classes is the largest label + 1. An optional ``classes`` array of
strings names them. Labels that leave most of 0..K-1 unused (e.g. 1000..1009, which would build a
1010-class model) are refused unless ``classes`` names all K. The file is read with
``allow_pickle=False``: object arrays are refused, and a file that is not a zip archive is refused
before numpy sees it (numpy would suggest loading it "unsafely", which is never the fix).
"""
from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch

from prunebench.data.base import DataInfo, Split
from prunebench.data.registry import DATASETS
from prunebench.errors import UserError

KEYS = ("x_train", "y_train", "x_test", "y_test")


def to_nchw(x: np.ndarray, where: str) -> np.ndarray:
    """Return uint8 images as contiguous NCHW, applying the layout rule in the module docstring."""
    if x.dtype != np.uint8:
        raise UserError(f"{where} must be uint8 images, got {x.dtype}; convert with np.clip(x, 0, 255).astype(np.uint8)")
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim != 4:
        raise UserError(f"{where} must be N x H x W, N x C x H x W or N x H x W x C, got shape {x.shape}")
    elif x.shape[1] not in (1, 3):
        if x.shape[3] not in (1, 3):
            raise UserError(f"{where} has shape {x.shape}: no channel axis of size 1 or 3 at position 1 or 3; "
                            "store images as N x C x H x W or N x H x W x C with C = 1 or 3")
        x = x.transpose(0, 3, 1, 2)
    if x.shape[0] == 0 or x.shape[2] == 0 or x.shape[3] == 0:
        raise UserError(f"{where} holds no images (shape {x.shape}); add images or drop the file")
    return np.ascontiguousarray(x)


def _labels(y: np.ndarray, n: int, where: str) -> np.ndarray:
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.dtype.kind not in "iu":
        raise UserError(f"{where} must hold integer class labels, got {y.dtype}; convert with y.astype(np.int64)")
    if y.shape != (n,):
        raise UserError(f"{where} has shape {y.shape} but there are {n} images; give one label per image")
    if n and y.min() < 0:
        raise UserError(f"{where} holds negative labels (min {y.min()}); number classes 0..K-1")
    return y.astype(np.int64)


def channel_stats(x: np.ndarray, chunk: int = 4096) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) std of uint8 NCHW images scaled to [0, 1], in bounded memory."""
    s = np.zeros(x.shape[1])
    ss = np.zeros(x.shape[1])
    for i in range(0, len(x), chunk):
        xc = x[i : i + chunk].astype(np.float64) / 255.0
        s += xc.sum(axis=(0, 2, 3))
        ss += np.square(xc).sum(axis=(0, 2, 3))
    count = x.shape[0] * x.shape[2] * x.shape[3]
    mean = s / count
    std = np.sqrt(np.maximum(ss / count - mean**2, 0.0))
    std = np.where(std > 0, std, 1.0)  # a constant channel: leave its scale alone instead of dividing by 0
    return tuple(float(m) for m in mean), tuple(float(v) for v in std)


def load_npz(path: str | Path) -> tuple[DataInfo, dict[str, Split]]:
    """Load a custom dataset from ``path`` (see the module docstring for the format)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"npz data file not found: {path}; pass --data-root FILE.npz")
    arrays: dict[str, np.ndarray] = {}
    classes: tuple[str, ...] = ()
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic == b"\x93NUMPY":
        raise UserError(f"{path} is a single .npy array, not an .npz archive; save with np.savez(path, {', '.join(KEYS)})")
    if magic[:4] != b"PK\x03\x04":
        raise UserError(f"{path} is not an .npz archive (no zip signature); the file is corrupt or of another type, "
                        "write it with np.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)")
    try:
        with np.load(path, allow_pickle=False) as z:
            if not isinstance(z, np.lib.npyio.NpzFile):
                raise UserError(f"{path} is a single .npy array, not an .npz archive; "
                                f"save with np.savez(path, {', '.join(KEYS)})")
            missing = [k for k in KEYS if k not in z.files]
            if missing:
                raise UserError(f"{path} lacks {', '.join(missing)} (has {', '.join(z.files) or 'nothing'}); "
                                f"save with np.savez(path, {'=..., '.join(KEYS)}=...)")
            for k in KEYS:
                try:
                    arrays[k] = z[k]
                except ValueError as e:
                    if "allow_pickle" in str(e):
                        raise UserError(f"{path}: {k} is an object array, which would need unpickling; "
                                        "store it as a plain numeric array") from None
                    raise
            if "classes" in z.files:
                try:
                    names = z["classes"]
                except ValueError as e:
                    if "pickle" not in str(e):
                        raise
                    raise UserError(f"{path}: classes must be a 1-D array of strings, got an object array (it "
                                    "would need unpickling); store np.array(names, dtype=str)") from None
                if names.dtype.kind != "U" or names.ndim != 1:
                    raise UserError(f"{path}: classes must be a 1-D array of strings, got {names.dtype} {names.shape}")
                classes = tuple(str(c) for c in names)
    except UserError:
        raise
    except (ValueError, OSError, EOFError, zlib.error, zipfile.BadZipFile, zipfile.LargeZipFile) as e:
        why = "pickled data" if "pickle" in str(e) else " ".join(str(e).split())[:120]
        raise UserError(f"cannot read {path} ({type(e).__name__}: {why}); the file is corrupt or not an .npz, "
                        "write it again with np.savez") from None
    xs = {k: to_nchw(arrays[f"x_{k}"], f"{path}: x_{k}") for k in ("train", "test")}
    ys = {k: _labels(arrays[f"y_{k}"], len(xs[k]), f"{path}: y_{k}") for k in ("train", "test")}
    if xs["train"].shape[1:] != xs["test"].shape[1:]:
        raise UserError(f"{path}: x_train images are {xs['train'].shape[1:]} (C, H, W) but x_test images are "
                        f"{xs['test'].shape[1:]}; store both splits with the same image shape and layout")
    num_classes = int(max(ys["train"].max(), ys["test"].max())) + 1
    if classes and len(classes) != num_classes:
        raise UserError(f"{path}: classes names {len(classes)} classes but the labels use {num_classes}; fix one of them")
    used = len(np.union1d(np.unique(ys["train"]), np.unique(ys["test"])))
    if not classes and num_classes > 2 * used:
        raise UserError(f"{path}: the labels take {used} distinct values but reach {num_classes - 1}, which would "
                        f"build a {num_classes}-class model; number the classes 0..{used - 1} (np.unique(y, "
                        "return_inverse=True)) or add a 'classes' array naming all of them")
    mean, std = channel_stats(xs["train"])
    c, h, w = xs["train"].shape[1:]
    info = DataInfo(
        name="npz", num_classes=num_classes, in_channels=c, image_size=(h, w), mean=mean, std=std,
        crop_padding=0, hflip=False,  # unknown domain: no augmentation unless the user's config asks for it
        classes=classes,
    )
    return info, {k: Split(torch.from_numpy(xs[k]), torch.from_numpy(ys[k])) for k in ("train", "test")}


@DATASETS.register("npz")
def npz(root: Path | None = None) -> tuple[DataInfo, dict[str, Split]]:
    """Custom data from ``root``, an .npz file with x_train, y_train, x_test, y_test."""
    if root is None:
        raise UserError("dataset 'npz' reads your own file; pass --data-root FILE.npz")
    if Path(root).is_dir():
        raise UserError(f"{root} is a folder; dataset 'npz' needs the file itself: pass --data-root FILE.npz")
    return load_npz(root)
