"""The registries of sparse initialisation: ``CRITERIA`` (which weights, inside a layer) and ``SCHEMES``
(how many, per layer), two independent choices (jaxpruner's criterion x sparsity distribution), plus
``UPDATES``, the mask-update rules of dynamic sparse training.

* a criterion is ``f(model, state, ctx) -> {param name: score}`` (higher = keep), e.g. random noise,
  |w|, SNIP, GraSP, all computed at initialisation;
* a scheme is ``f(model, state, density, ctx) -> {param name: layer density}`` whose densities average
  (weighted by layer size) to ``density``: uniform, uniform+, ER, ERK, ERK+ from the shapes alone,
  SNIP- / GraSP-ratio from scores (Liu et al., ICLR 2022, Sec. 3 and 4.1);
* an update rule is a class with ``grow(...)`` used by :class:`~prunebench.pruning.sparse.dynamic.DynamicSparsity`.

``ctx`` is a :class:`~prunebench.pruning.base.PruneContext` holding the entry's parsed options. A new
criterion, scheme or rule is one module in this package (or a plug-in) with one decorator line.
"""
from __future__ import annotations

from dataclasses import dataclass

from prunebench.registry import Registry, Spec

PACKAGES = ("prunebench.pruning.sparse",)


@dataclass(frozen=True, kw_only=True)
class CriterionSpec(Spec):
    """A criterion: ``data_informed`` scores need a batch of the validation split."""

    data_informed: bool = False
    label: str | None = None


@dataclass(frozen=True, kw_only=True)
class SchemeSpec(Spec):
    """A layer-wise density scheme: ``data_informed`` ones derive densities from scores on validation data."""

    data_informed: bool = False
    label: str | None = None


@dataclass(frozen=True, kw_only=True)
class UpdateSpec(Spec):
    """A dynamic-sparse-training mask-update rule (drop by magnitude, grow by ``grows_by``)."""

    grows_by: str = ""  # what decides the regrown connections (for listings and the report)
    label: str | None = None


CRITERIA = Registry("sparse criterion", CriterionSpec, packages=PACKAGES)
SCHEMES = Registry("density scheme", SchemeSpec, packages=PACKAGES)
UPDATES = Registry("sparse update rule", UpdateSpec, packages=PACKAGES)
