"""Small helpers shared by the CLI commands: devices, JSON output, data for a checkpoint."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from prunebench.device import AUTO
from prunebench.errors import UserError


def add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default=AUTO, help="cpu, cuda, cuda:1 or auto (cuda when available)")


def write_json(path: str | Path, obj: Any) -> None:
    """Write JSON atomically (temp file + rename)."""
    from prunebench.atomic import write_atomic

    write_atomic(path, json.dumps(obj, indent=2, default=float))


def split_list(text: str | None) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()] if text else []


def finite(value: float, flag: str, *, positive: bool = False) -> float:
    """``value`` if it is a finite number (and > 0 with ``positive``), else a one-line UserError."""
    import math

    if not math.isfinite(value) or (positive and value <= 0):
        want = "a finite number > 0" if positive else "a finite number"
        raise UserError(f"{flag} must be {want}, got {value}")
    return value


def data_for(meta: dict[str, Any], override: str | None = None, root: str | None = None):
    """:func:`prunebench.data.fits.data_for`, imported on use (``--help`` never loads torch)."""
    from prunebench.data.fits import data_for as load

    return load(meta, override, root)


def check_data_fits(meta: dict[str, Any], info: Any, what: str = "the checkpoint") -> None:
    """:func:`prunebench.data.fits.check_data_fits`, imported on use."""
    from prunebench.data.fits import check_data_fits as check

    check(meta, info, what)


def key_values(pairs: list[str], flag: str) -> dict:
    """``KEY=VALUE`` strings -> options (values parsed as YAML: 16 -> int, l2 -> str, [3, 32, 32] -> list)."""
    import yaml

    from prunebench.errors import UserError

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserError(f"{flag} expects KEY=VALUE, got {pair!r} (e.g. {flag} size=32)")
        try:
            out[key] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise UserError(f"{flag} {key}: cannot read {value!r} as a value") from None
    return out
