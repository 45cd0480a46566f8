"""Reader for the IDX format of MNIST-like datasets (gzip-compressed or raw).

Format (LeCun): magic = two zero bytes, a type code (0x08 = uint8), the number of
dimensions; then one big-endian int32 per dimension; then the data, row-major.
"""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from prunebench.atomic import write_atomic
from prunebench.errors import UserError

_DTYPES: dict[int, type[np.generic] | str] = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file into a numpy array, validating the header against the payload size."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except FileNotFoundError:
        raise UserError(f"dataset file not found: {path}") from None
    except (OSError, EOFError) as e:
        raise UserError(f"cannot read {path}: {e}; the file is corrupt or truncated, delete it and fetch it again") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise UserError(f"{path} is not an IDX file (bad magic number); fetch the original file again")
    ndim = raw[3]
    if ndim == 0 or len(raw) < 4 + 4 * ndim:
        raise UserError(f"{path} has a truncated IDX header; fetch the original file again")
    shape = struct.unpack(f">{ndim}i", raw[4 : 4 + 4 * ndim])
    dtype = np.dtype(_DTYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    payload = raw[4 + 4 * ndim :]
    if len(payload) != expected:
        raise UserError(
            f"{path} is truncated or padded: header says {shape} ({expected} bytes) but {len(payload)} bytes follow; "
            "fetch the original file again"
        )
    return np.frombuffer(payload, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="), copy=False)


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write an array as IDX (gzip if the name ends in .gz); used by tests and by users packing data."""
    codes = {np.dtype(v).newbyteorder(">").str if np.dtype(v).itemsize > 1 else np.dtype(v).str: k for k, v in _DTYPES.items()}
    arr = np.ascontiguousarray(array)
    key = arr.dtype.newbyteorder(">").str if arr.dtype.itemsize > 1 else arr.dtype.str
    if key not in codes:
        raise ValueError(f"dtype {arr.dtype} has no IDX type code")
    header = bytes([0, 0, codes[key], arr.ndim]) + struct.pack(f">{arr.ndim}i", *arr.shape)
    body = header + arr.astype(arr.dtype.newbyteorder(">"), copy=False).tobytes()
    path = Path(path)
    write_atomic(path, gzip.compress(body) if path.suffix == ".gz" else body)
