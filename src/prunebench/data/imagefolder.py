"""Your own images in class folders, read with Pillow.

Two layouts under ``root`` (class names are the folder names, sorted; label = index in that order):

* ``root/train/<class>/*.png|jpg|...`` and ``root/test/<class>/...``: the given split; every test
  class must also be a training class;
* ``root/<class>/*``: one folder, split per class into train / test by ``split_seed`` with
  ``test_fraction`` of each class's images (at least one) in the test split.

Images are converted to grayscale (``channels: 1``) or RGB (``channels: 3``; default: 1 when every
image is grayscale, else 3) and, with ``size: N``, resized to N x N (bilinear); without ``size``
every image must already have one size. The decoded uint8 tensors are cached in
``$PRUNEBENCH_CACHE`` (default ``~/.cache/prunebench``) under a key of the options and every file's
path, size and modification time, so a second load reads one safetensors file; a changed, added or
removed image makes a new key. The validation split is carved from train like any dataset's.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import Field

from prunebench.data.base import DataInfo, Split
from prunebench.data.npz import channel_stats
from prunebench.data.registry import DATASETS
from prunebench.errors import UserError
from prunebench.registry import Options

SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
CACHE_VERSION = 1


class ImageFolderOptions(Options):
    size: int | None = Field(None, ge=4, le=1024, description="resize every image to size x size (bilinear); "
                                                              "default: keep the size, which all images must share")
    channels: Literal[1, 3] | None = Field(None, description="1 = grayscale, 3 = RGB; default: 1 if all images are gray")
    test_fraction: float = Field(0.2, gt=0, lt=1, description="one-folder layout: share of each class held out as test")
    split_seed: int = Field(0, description="one-folder layout: seed of the train / test split")


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)


def _classes(folder: Path) -> dict[str, list[Path]]:
    """Class name -> its image files; an empty class folder is an error (it would be a class with no data)."""
    out = {}
    for d in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = _images(d)
        if not files:
            raise UserError(f"class folder {d} holds no images ({', '.join(SUFFIXES)}); add images or remove the folder")
        out[d.name] = files
    return out


def _layout(root: Path, opts: ImageFolderOptions) -> tuple[list[str], dict[str, list[tuple[Path, int]]]]:
    """Class names and the (file, label) list of each split, per the two layouts of the module docstring."""
    if (root / "train").is_dir():
        if not (root / "test").is_dir():
            raise UserError(f"{root} has train/ but no test/; add root/test/<class>/ folders, or put the class "
                            "folders directly under the root to split them by split_seed")
        train, test = _classes(root / "train"), _classes(root / "test")
        if not train:
            raise UserError(f"{root / 'train'} has no class folders; put the images in train/<class>/")
        names = sorted(train)
        extra = sorted(set(test) - set(train))
        if extra:
            raise UserError(f"{root / 'test'} has classes with no training images: {', '.join(extra)}; "
                            "add them under train/ or remove them from test/")
        index = {c: i for i, c in enumerate(names)}
        return names, {s: [(f, index[c]) for c in sorted(files) for f in files[c]]
                       for s, files in (("train", train), ("test", test))}
    classes = _classes(root)
    if not classes:
        stray = _images(root)
        hint = f" (it has {len(stray)} loose images: put them in one folder per class)" if stray else ""
        raise UserError(f"{root} holds no class folders with images{hint}; lay out root/<class>/*.png "
                        "or root/train/<class>/ and root/test/<class>/")
    names = sorted(classes)
    rng = np.random.default_rng(opts.split_seed)
    splits: dict[str, list[tuple[Path, int]]] = {"train": [], "test": []}
    for label, c in enumerate(names):
        files = classes[c]
        if len(files) < 2:
            raise UserError(f"class folder {root / c} has 1 image; a train / test split needs at least 2 per class")
        n_test = min(len(files) - 1, max(1, round(opts.test_fraction * len(files))))
        held = set(rng.permutation(len(files))[:n_test].tolist())
        for i, f in enumerate(files):
            splits["test" if i in held else "train"].append((f, label))
    return names, splits


def _read(path: Path, mode: str, size: int | None):
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert(mode)
            if size is not None and im.size != (size, size):
                im = im.resize((size, size), Image.Resampling.BILINEAR)
            return np.asarray(im, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise UserError(f"cannot read image {path} ({type(e).__name__}); replace or remove the file") from None


def _mode(files: list[Path], channels: int | None) -> str:
    """Pillow mode to convert to: the declared channels, else gray iff every image is gray."""
    if channels is not None:
        return "L" if channels == 1 else "RGB"
    from PIL import Image

    for f in files:
        try:
            with Image.open(f) as im:
                if im.mode not in ("1", "L", "I", "I;16", "F"):
                    return "RGB"
        except OSError:
            raise UserError(f"cannot read image {f}; replace or remove the file") from None
    return "L"


def _decode(splits: dict[str, list[tuple[Path, int]]], opts: ImageFolderOptions) -> dict[str, Split]:
    files = [f for items in splits.values() for f, _ in items]
    mode = _mode(files, opts.channels)
    out, first = {}, None
    for name, items in splits.items():
        arrays = []
        for f, _ in items:
            a = _read(f, mode, opts.size)
            if first is None:
                first = (f, a.shape)
            elif a.shape != first[1]:
                raise UserError(f"images differ in size ({first[0].name}: {first[1][1]}x{first[1][0]}, {f.name}: "
                                f"{a.shape[1]}x{a.shape[0]}); declare a size in the dataset options, e.g. size: 32")
            arrays.append(a)
        x = np.stack(arrays) if arrays else np.zeros((0, *first[1]) if first else (0, 1, 1), np.uint8)
        x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)
        out[name] = Split(torch.from_numpy(np.ascontiguousarray(x)), torch.tensor([y for _, y in items], dtype=torch.int64))
    return out


def _cache_key(root: Path, splits: dict[str, list[tuple[Path, int]]], opts: ImageFolderOptions) -> str:
    h = hashlib.sha256(json.dumps({"v": CACHE_VERSION, "options": opts.model_dump(mode="json")}).encode())
    for name, items in splits.items():
        for f, y in items:
            st = f.stat()
            h.update(f"{name}|{f.relative_to(root)}|{y}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:32]


def cache_dir() -> Path:
    """Where decoded image folders are cached: ``$PRUNEBENCH_CACHE/image-folder`` (default ``~/.cache/prunebench``)."""
    return Path(os.environ.get("PRUNEBENCH_CACHE") or Path.home() / ".cache" / "prunebench") / "image-folder"


def _cached(key: str) -> dict[str, Split] | None:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = cache_dir() / f"{key}.safetensors"
    try:
        t = load_file(str(path))
        return {s: Split(t[f"x_{s}"], t[f"y_{s}"]) for s in ("train", "test")}
    except (OSError, SafetensorError, KeyError):
        return None  # absent or damaged: decode again


def _store(key: str, splits: dict[str, Split]) -> None:
    from safetensors.torch import save_file

    from prunebench.atomic import atomic_path

    tensors = {f"{a}_{s}": getattr(splits[s], a).contiguous() for s in splits for a in ("x", "y")}
    try:
        with atomic_path(cache_dir() / f"{key}.safetensors") as tmp:
            save_file(tensors, str(tmp))
    except (OSError, UserError):
        pass  # a read-only home: the cache is an optimisation, the data was read all the same


def load_image_folder(root: str | Path, options: ImageFolderOptions | None = None) -> tuple[DataInfo, dict[str, Split]]:
    """Read (or take from the cache) an image-folder dataset; see the module docstring."""
    opts = options or ImageFolderOptions()
    root = Path(root).expanduser()
    if not root.is_dir():
        raise UserError(f"image folder not found: {root}; pass the folder holding the class folders as root")
    names, files = _layout(root, opts)
    key = _cache_key(root, files, opts)
    splits = _cached(key)
    if splits is None:
        splits = _decode(files, opts)
        _store(key, splits)
    if not len(splits["test"]):
        raise UserError(f"{root / 'test'} holds no images; add test images per class")
    c, h, w = splits["train"].x.shape[1:]
    mean, std = channel_stats(splits["train"].x.numpy())
    info = DataInfo(name="image-folder", num_classes=len(names), in_channels=int(c), image_size=(int(h), int(w)),
                    mean=mean, std=std, crop_padding=0, hflip=False, classes=tuple(names))
    return info, splits


@DATASETS.register("image-folder", options=ImageFolderOptions)
def image_folder(root: Path | None = None, **options) -> tuple[DataInfo, dict[str, Split]]:
    """Your images: root/<class>/*.png (split by seed) or root/train|test/<class>/*; resized with size."""
    if root is None:
        raise UserError("dataset 'image-folder' reads your own images; give root: the folder of class folders")
    return load_image_folder(root, ImageFolderOptions(**options))
