"""The DATASETS registry: one typed :class:`DatasetSpec` per dataset, loaded on first lookup.

A dataset loader has the signature ``f(root: Path | None) -> tuple[DataInfo, dict[str, Split]]``:
it returns the splits that exist on disk ("train", "test"; MNIST may have only "test"),
reading them from ``root`` when given, else from the standard locations (see ``sources``).
A new dataset is one module (here, or a plug-in named in ``$PRUNEBENCH_PLUGINS``) with one line::

    @DATASETS.register("mine", channels=3, size=32, classes=10)

The registry imports every module of :mod:`prunebench.data` on its first lookup.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from prunebench.data.base import DataInfo, Split
from prunebench.registry import Registry, Spec


class DatasetLoader(Protocol):
    def __call__(self, root: Path | None = None) -> tuple[DataInfo, dict[str, Split]]: ...


@dataclass(frozen=True, kw_only=True)
class DatasetSpec(Spec):
    """Typed metadata of a dataset, what is known before loading it (None: depends on the files, as
    for ``npz``): image ``channels``, square image ``size`` in pixels, number of ``classes``."""

    channels: int | None = None
    size: int | None = None
    classes: int | None = None


DATASETS: Registry[DatasetSpec] = Registry("dataset", DatasetSpec, packages=("prunebench.data",))
