"""Corrupted copies of a test split, computed once and cached as uint8 safetensors.

Every model of a study is evaluated on identical corrupted images: the cache key is the images'
content hash (optionally prefixed by the dataset name), the corruption, the severity, the seed and
:data:`CODE_VERSION` (bumped whenever a corruption's output changes). Files are written to a
temporary name in the same folder and renamed into place, so a reader never sees half a file and
concurrent writers (parallel study workers) simply race to an identical result.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from prunebench.atomic import atomic_path
from prunebench.errors import UserError
from prunebench.evaluation.corruptions.registry import CORRUPTIONS, check_images, check_severity

CODE_VERSION = 1
CHUNK = 1000  # images corrupted per call (bounds memory); part of the definition of a cached set


def to_uint8(x01: torch.Tensor) -> torch.Tensor:
    """[0, 1] floats to uint8 by truncation, as ``np.uint8(x * 255)`` in the CIFAR-10-C script
    (plus 1e-3 of a level so values meant to be integers, e.g. an untouched pixel, stay put)."""
    return torch.floor(x01 * 255 + 1e-3).clamp_(0, 255).to(torch.uint8)


def split_key(x_uint8: torch.Tensor, dataset: str | None = None) -> str:
    """A cache key naming these exact images: ``<dataset>-<sha256 of shape and bytes, 16 hex>``."""
    h = hashlib.sha256(str(tuple(x_uint8.shape)).encode())
    h.update(x_uint8.detach().cpu().contiguous().numpy().tobytes())
    tag = re.sub(r"[^A-Za-z0-9_.-]+", "_", dataset) + "-" if dataset else ""
    return tag + h.hexdigest()[:16]


def _compute(x_uint8: torch.Tensor, name: str, severity: int, seed: int, device: torch.device | str | None) -> torch.Tensor:
    fn = CORRUPTIONS.get(name)
    gen = torch.Generator(device="cpu")
    gen.manual_seed(int(seed))
    dev = torch.device(device) if device is not None else x_uint8.device
    out = torch.empty_like(x_uint8, device="cpu")
    for i in range(0, len(x_uint8), CHUNK):
        xb = x_uint8[i : i + CHUNK].to(dev).float().div_(255)
        yb = fn(xb, severity, gen)  # a fresh tensor: convert in place, cast while copying
        out[i : i + CHUNK].copy_(yb.mul_(255).add_(1e-3).floor_().clamp_(0, 255))
    return out


def _atomic_save(tensor: torch.Tensor, path: Path, metadata: dict[str, str]) -> None:
    with atomic_path(path) as tmp:
        save_file({"x": tensor.contiguous()}, str(tmp), metadata=metadata)


def corrupted_split(split_x_uint8: torch.Tensor, name: str, severity: int, seed: int = 0,
                    cache_dir: str | Path | None = None, *, dataset: str | None = None, key: str | None = None,
                    device: torch.device | str | None = None) -> torch.Tensor:
    """The uint8 images (N, C, H, W) of a split corrupted by ``name`` at ``severity``, on the CPU.

    With ``cache_dir`` the result is read from / written to
    ``cache_dir/corruptions/<key>/<name>-s<severity>-seed<seed>-v<CODE_VERSION>.safetensors``;
    ``key`` defaults to :func:`split_key` (pass it in to hash a split once for many calls).
    Corruption runs on ``device`` (default: where the images are), ``CHUNK`` images at a time with
    one generator seeded by ``seed``; a cache file that cannot be read or does not match is rebuilt.
    """
    CORRUPTIONS.get(name)
    check_severity(severity)
    if not isinstance(split_x_uint8, torch.Tensor) or split_x_uint8.dtype != torch.uint8:
        got = split_x_uint8.dtype if isinstance(split_x_uint8, torch.Tensor) else type(split_x_uint8).__name__
        raise UserError(f"corrupted_split takes uint8 images (N, C, H, W), got {got}; pass Split.x, not float images")
    check_images(split_x_uint8[:0].float() if split_x_uint8.ndim == 4 else split_x_uint8.float())
    if cache_dir is None:
        return _compute(split_x_uint8, name, severity, seed, device)
    key = key or split_key(split_x_uint8, dataset)
    path = Path(cache_dir) / "corruptions" / key / f"{name}-s{severity}-seed{int(seed)}-v{CODE_VERSION}.safetensors"
    if path.exists():
        try:
            cached = load_file(str(path))["x"]
            if cached.shape == split_x_uint8.shape and cached.dtype == torch.uint8:
                return cached
        except (SafetensorError, KeyError, OSError, ValueError):
            pass  # unreadable (e.g. a foreign or damaged file): rebuild it below
    out = _compute(split_x_uint8, name, severity, seed, device)
    meta = {"corruption": name, "severity": str(severity), "seed": str(int(seed)), "key": key, "version": str(CODE_VERSION)}
    _atomic_save(out, path, meta)
    return out
