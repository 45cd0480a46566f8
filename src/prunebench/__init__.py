"""prunebench: prune any PyTorch classifier, retrain fairly, evaluate beyond test accuracy.

Top-level names are imported lazily so that ``import prunebench`` stays cheap (no torch import).
"""
from __future__ import annotations

from importlib import import_module
from typing import Any

try:
    from importlib.metadata import PackageNotFoundError, version

    __version__ = version("prunebench")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+unknown"

_LAZY = {
    "load_results": "prunebench.study.results",
    "export_results": "prunebench.study.results",
    "run_study": "prunebench.study.runner",
    "load_config": "prunebench.study.loader",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'prunebench' has no attribute {name!r}")


__all__ = ["__version__", *_LAZY]
