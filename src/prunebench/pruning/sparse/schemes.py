"""The layer-wise density schemes (Liu et al., "The Unreasonable Effectiveness of Random Pruning", ICLR 2022,
Sec. 3; methods.md): how much each prunable layer keeps so that the whole network keeps ``density``.

Shape-only schemes (formulas in :mod:`prunebench.pruning.allocation`): ``uniform``, ``uniform-plus``
(first layer dense, last >= 20%), ``er``, ``erk``, ``erk-plus`` (last layer dense). Score schemes:
``snip-ratio`` / ``grasp-ratio`` take the per-layer densities that a global top-k of SNIP / GraSP scores
at initialisation would give (Sec. 4.1). A density a scheme cannot reach on the model (e.g. ERK+ with
a dense classifier bigger than the budget) is a one-line UserError naming the scheme.
"""
from __future__ import annotations

from collections.abc import Callable

from pydantic import Field
from torch import Tensor, nn

from prunebench.pruning.allocation import (
    er_densities,
    erk_densities,
    erk_plus_densities,
    global_topk,
    uniform_densities,
    uniform_plus_densities,
)
from prunebench.pruning.base import PruneContext
from prunebench.pruning.masks import PruningState
from prunebench.pruning.sparse.criteria import GraspInitOptions, SnipInitOptions, grasp as grasp_criterion, snip as snip_criterion
from prunebench.pruning.sparse.registry import SCHEMES
from prunebench.registry import NoOptions, Options

Densities = dict[str, float]


class UniformPlusOptions(Options):
    last_min_density: float = Field(0.2, ge=0.0, le=1.0, description="the last layer keeps at least this density")


class ERKPlusOptions(Options):
    last_density: float = Field(1.0, gt=0.0, le=1.0, description="density of the last layer (1 = dense)")


def _shapes(state: PruningState) -> dict[str, tuple[int, ...]]:
    return {k: tuple(m.shape) for k, m in state.masks.items()}


def _shape_scheme(name: str, fn: Callable[..., Densities], options: type[Options] = NoOptions,
                  label: str | None = None) -> Callable[..., Densities]:
    keys = list(options.model_fields)

    def scheme(model: nn.Module, state: PruningState, density: float, ctx: PruneContext) -> Densities:
        opts = ctx.opts(options)
        return fn(_shapes(state), density, **{k: float(getattr(opts, k)) for k in keys})

    scheme.__name__ = name.replace("-", "_")
    scheme.__doc__ = (fn.__doc__ or name).strip().splitlines()[0]
    return SCHEMES.register(name, options=options, label=label)(scheme)


uniform = _shape_scheme("uniform", uniform_densities, label="uniform")
uniform_plus = _shape_scheme("uniform-plus", uniform_plus_densities, UniformPlusOptions, label="uniform+")
er = _shape_scheme("er", er_densities, label="ER")
erk = _shape_scheme("erk", erk_densities, label="ERK")
erk_plus = _shape_scheme("erk-plus", erk_plus_densities, ERKPlusOptions, label="ERK+")


def _ratio_scheme(name: str, scorer: Callable[..., dict[str, Tensor]], options: type[Options],
                  label: str) -> Callable[..., Densities]:
    def scheme(model: nn.Module, state: PruningState, density: float, ctx: PruneContext) -> Densities:
        top = global_topk(scorer(model, state, ctx), state.masks, 1.0 - density)
        return {k: float(m.sum()) / m.numel() for k, m in top.items()}

    scheme.__name__ = name.replace("-", "_")
    scheme.__doc__ = f"The per-layer densities of a global top-k of {label.split('-')[0]} scores at initialisation."
    return SCHEMES.register(name, options=options, data_informed=True, label=label)(scheme)


snip_ratio = _ratio_scheme("snip-ratio", snip_criterion, SnipInitOptions, "SNIP-ratio")
grasp_ratio = _ratio_scheme("grasp-ratio", grasp_criterion, GraspInitOptions, "GraSP-ratio")
