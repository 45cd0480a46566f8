"""The dataset registry.

A dataset loader has the signature ``f(root: Path | None) -> tuple[DataInfo, dict[str, Split]]``:
it returns the splits that exist on disk ("train", "test"; MNIST may have only "test"),
reading them from ``root`` when given, else from the standard locations (see ``sources``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Protocol

from prunebench.data.base import DataInfo, Split
from prunebench.registry import Registry


class DatasetLoader(Protocol):
    def __call__(self, root: Path | None = None) -> tuple[DataInfo, dict[str, Split]]: ...


DATASETS: Registry[DatasetLoader] = Registry("dataset")
