"""Fashion-MNIST and MNIST from their IDX files (Xiao et al. 2017; LeCun et al. 1998)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from prunebench.data.base import DataInfo, Split
from prunebench.data.idx import read_idx
from prunebench.data.registry import DATASETS
from prunebench.data.sources import find_or_fetch, find_present
from prunebench.errors import UserError

_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
FASHION_MD5 = {
    "train-images-idx3-ubyte.gz": "cf8536b0aa1a6ac5fa3f23001093305c",
    "train-labels-idx1-ubyte.gz": "10bea18fdb374794d4bb42e356e600c9",
    "t10k-images-idx3-ubyte.gz": "f78720b4224f21cce2f2ccf2d7a94c9a",
    "t10k-labels-idx1-ubyte.gz": "0d30e22e447f3c33dab9ed536400ac01",
}
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"

FASHION_INFO = DataInfo(
    name="fashion-mnist", num_classes=10, in_channels=1, image_size=(28, 28), mean=(0.2860,), std=(0.3530,),
    crop_padding=0, hflip=True,
    classes=("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot"),
)
MNIST_INFO = DataInfo(
    name="mnist", num_classes=10, in_channels=1, image_size=(28, 28), mean=(0.1307,), std=(0.3081,),
    crop_padding=2, hflip=False, classes=tuple(str(i) for i in range(10)),
)


def read_idx_split(folder: Path, images: str, labels: str, num_classes: int = 10) -> Split:
    """One split from an images/labels IDX pair, checked for consistency."""
    x, y = read_idx(folder / images), read_idx(folder / labels)
    if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
        raise UserError(f"{folder / images} and {folder / labels} do not match (shapes {x.shape}, {y.shape}); fetch both again")
    if x.dtype != np.uint8 or int(y.max(initial=0)) >= num_classes:
        raise UserError(f"{folder / labels} has labels outside 0..{num_classes - 1}; fetch the original file again")
    return Split(torch.from_numpy(x.copy()).unsqueeze(1), torch.from_numpy(y.astype(np.int64)))


@DATASETS.register("fashion-mnist", channels=1, size=28, classes=10)
def fashion_mnist(root: Path | None = None) -> tuple[DataInfo, dict[str, Split]]:
    """Fashion-MNIST train (60k) and test (10k); MD5-verified."""
    folder = find_or_fetch("fashion-mnist", FASHION_MD5, {f: FASHION_URL + f for f in FASHION_MD5}, root)
    return FASHION_INFO, {split: read_idx_split(folder, *files) for split, files in _FILES.items()}


@DATASETS.register("mnist", channels=1, size=28, classes=10)
def mnist(root: Path | None = None) -> tuple[DataInfo, dict[str, Split]]:
    """MNIST: whichever of its splits are present (e.g. only the test set in ../shared/data/mnist).

    With no explicit root and no copy in the standard folders, the test split (all that OoD
    evaluation needs) is downloaded into the user cache.
    """
    try:
        folder, present = find_present("mnist", MNIST_MD5, root)
    except UserError:
        if root is not None:
            raise
        test_files = {f: MNIST_MD5[f] for f in _FILES["test"]}
        folder = find_or_fetch("mnist", test_files, {f: MNIST_URL + f for f in test_files})
        present = list(test_files)
    splits = {s: read_idx_split(folder, *files) for s, files in _FILES.items() if all(f in present for f in files)}
    if not splits:
        raise UserError(f"{folder} holds only half of an MNIST split ({', '.join(present)}); add the matching images/labels file")
    return MNIST_INFO, splits
