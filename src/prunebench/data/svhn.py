"""SVHN cropped digits (Netzer et al. 2011), the usual out-of-distribution set for CIFAR-10 models.

The official ``train_32x32.mat`` / ``test_32x32.mat`` are MATLAB v5 files holding ``X`` (uint8,
32 x 32 x 3 x N, i.e. H, W, C, N) and ``y`` (N x 1, digits 1..10 where 10 stands for the digit 0).
``scipy.io.loadmat`` parses the MATLAB format itself; it never unpickles.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io
import torch

from prunebench.data.base import DataInfo, Split
from prunebench.data.registry import DATASETS
from prunebench.errors import UserError

FILES = {"train_32x32.mat": "e26dedcc434d2e4c54c9b2d4a06d8373", "test_32x32.mat": "eb5a983be6a315427106f1b164d9cef3"}
URLS = {f: f"http://ufldl.stanford.edu/housenumbers/{f}" for f in FILES}
_SPLIT_OF = {"train_32x32.mat": "train", "test_32x32.mat": "test"}

INFO = DataInfo(
    name="svhn", num_classes=10, in_channels=3, image_size=(32, 32),
    mean=(0.4377, 0.4438, 0.4728), std=(0.1980, 0.2010, 0.1970),
    crop_padding=0, hflip=False,  # digits: flipping changes their meaning
    classes=tuple(str(d) for d in range(10)),
)


def read_svhn_mat(path: str | Path) -> Split:
    """Read one official SVHN .mat file into a Split (uint8 NCHW images, labels 0..9 with 10 -> 0)."""
    path = Path(path)
    fix = f"delete it and fetch {URLS.get(path.name, URLS['test_32x32.mat'])} again"
    if not path.is_file():
        raise UserError(f"SVHN file not found: {path}; pass --data-root pointing at the folder holding it")
    try:
        mat = scipy.io.loadmat(str(path), variable_names=("X", "y"))
    except NotImplementedError:  # scipy's answer to MATLAB v7.3 (HDF5) files
        raise UserError(f"{path} is a MATLAB v7.3 file, not the official v5 SVHN file; {fix}") from None
    except Exception as e:  # scipy raises many types (ValueError, TypeError, zlib.error, MatReadError...) on bad bytes
        raise UserError(f"cannot read {path} ({type(e).__name__}: {e}); the file is corrupt or truncated, {fix}") from None
    x, y = mat.get("X"), mat.get("y")
    if x is None or y is None:
        raise UserError(f"{path} lacks the variable {'X' if x is None else 'y'}; it is not an SVHN file, {fix}")
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.shape[3] == 0:
        raise UserError(f"{path}: X must be uint8 of shape 32 x 32 x 3 x N, got {x.dtype} {x.shape}; {fix}")
    n = x.shape[3]
    y = np.asarray(y).reshape(-1)
    if y.shape != (n,) or y.dtype.kind not in "iuf":
        raise UserError(f"{path}: y must hold {n} numeric labels, got {y.dtype} {np.shape(mat['y'])}; {fix}")
    if y.dtype.kind == "f" and not np.all(np.isfinite(y) & (y == np.round(y))):
        raise UserError(f"{path}: y holds non-integer labels; {fix}")
    labels = y.astype(np.int64)
    if labels.min() < 1 or labels.max() > 10:
        raise UserError(f"{path}: labels span {labels.min()}..{labels.max()}, SVHN uses 1..10 (10 = digit 0); {fix}")
    labels[labels == 10] = 0
    images = np.ascontiguousarray(x.transpose(3, 2, 0, 1))  # H, W, C, N -> N, C, H, W
    return Split(torch.from_numpy(images), torch.from_numpy(labels))


@DATASETS.register("svhn", channels=3, size=32, classes=10)
def svhn(root: Path | None = None) -> tuple[DataInfo, dict[str, Split]]:
    """SVHN test (and train) split. An explicit root (folder or one .mat file) loads the files present."""
    if root is None:
        from prunebench.data.sources import find_or_fetch  # lazy: sources may fetch over the network

        folder = find_or_fetch("svhn", dict(FILES), dict(URLS))
        paths = [folder / f for f in FILES]
    else:
        root = Path(root).expanduser()
        if root.is_file():
            if root.name not in _SPLIT_OF:
                raise UserError(f"{root}: expected a file named {' or '.join(FILES)}; rename it or pass its folder")
            paths = [root]
        elif root.is_dir():
            paths = [root / f for f in FILES if (root / f).is_file()]
            if not paths:
                raise UserError(f"no SVHN files in {root}: expected {' and/or '.join(FILES)} (from {URLS['test_32x32.mat']})")
        else:
            raise UserError(f"{root} does not exist; pass --data-root pointing at the folder holding test_32x32.mat")
    return INFO, {_SPLIT_OF[p.name]: read_svhn_mat(p) for p in paths}
