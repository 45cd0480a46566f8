"""Per-example outcomes: which examples of a test distribution a model got right, stored compactly.

An evaluation of a model on an accuracy-type distribution (nominal, each corruption x severity,
each attack x eps, each noise eps) records, besides its accuracy, a boolean array over a fixed,
ordered example set: the first ``n`` images of the test split, in split order (so any two models of
a study, evaluated with the same evaluator options, are compared on the very same examples).
Shape ``(n,)``, or ``(n, k)`` when each image is seen ``k`` times (noise draws). ``True`` = correct.

Stored bit-packed (``numpy.packbits``, 1 bit per outcome, base64 text inside the eval cell's record),
so 10,000 outcomes cost 1.7 kB of the store. Numpy only: the analysis never imports torch.
"""
from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import numpy as np

OUTCOMES_KEY = "outcomes"  # where an eval record's metrics hold {distribution: packed}


def pack(correct: np.ndarray) -> dict[str, Any]:
    """``{"shape": [...], "bits": base64}`` for a boolean array (JSON-able)."""
    arr = np.asarray(correct, dtype=bool)
    return {"shape": list(arr.shape), "bits": base64.b64encode(np.packbits(arr.ravel()).tobytes()).decode("ascii")}


def unpack(packed: Mapping[str, Any]) -> np.ndarray:
    """The boolean array :func:`pack` stored; ValueError if the record is damaged."""
    shape = tuple(int(s) for s in packed["shape"])
    size = int(np.prod(shape)) if shape else 1
    raw = np.frombuffer(base64.b64decode(packed["bits"], validate=True), dtype=np.uint8)
    if len(raw) != (size + 7) // 8:
        raise ValueError(f"packed outcomes hold {len(raw)} bytes, shape {shape} needs {(size + 7) // 8}")
    return np.unpackbits(raw, count=size).astype(bool).reshape(shape)


def unpack_all(packed: Mapping[str, Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """Every distribution of one record's ``outcomes`` mapping."""
    return {dist: unpack(p) for dist, p in packed.items()}


PREDICTIONS_KEY = "predictions"  # where an eval record's metrics hold {"pred/<dist>" | "label/<dist>": packed}


def pack_labels(values: np.ndarray) -> dict[str, Any]:
    """``{"shape", "z"}``: a uint8 class-index array, zlib-compressed and base64 (predictions and labels)."""
    import zlib

    arr = np.ascontiguousarray(values, dtype=np.uint8)
    return {"shape": list(arr.shape), "z": base64.b64encode(zlib.compress(arr.tobytes(), 6)).decode("ascii")}


def unpack_labels(packed: Mapping[str, Any]) -> np.ndarray:
    """The uint8 array :func:`pack_labels` stored; ValueError if the record is damaged."""
    import zlib

    shape = tuple(int(s) for s in packed["shape"])
    try:
        raw = zlib.decompress(base64.b64decode(packed["z"], validate=True))
    except zlib.error as e:
        raise ValueError(f"packed labels do not decompress ({e})") from None
    arr = np.frombuffer(raw, dtype=np.uint8)
    if arr.size != int(np.prod(shape)):
        raise ValueError(f"packed labels hold {arr.size} values, shape {shape} needs {int(np.prod(shape))}")
    return arr.reshape(shape)
