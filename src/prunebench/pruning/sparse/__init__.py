"""Sparse networks from initialisation: a criterion (which weights) x a layer-wise density scheme (how many).

    state, densities = sparse_init(model, 0.1, criterion="random", scheme="erk", seed=0)
    train(model, data, recipe, callbacks=[state])                  # static mask, enforced after every step
    train(model, data, recipe, callbacks=[DynamicSparsity(state, "rigl")])   # dynamic sparse training

:func:`draw_masks` is the one mechanism: the ``random-*`` pruning methods are shorthands for the random
criterion with a scheme, so a method name and a (criterion, scheme) pair give identical masks.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from prunebench.data.base import Dataset
from prunebench.errors import UserError
from prunebench.pruning.allocation import masks_at_densities
from prunebench.pruning.base import PruneContext
from prunebench.pruning.masks import PruningState
from prunebench.pruning.selection import Selection
from prunebench.pruning.sparse.registry import CRITERIA, SCHEMES, UPDATES

DENSITY_TOLERANCE = 1e-3  # realised overall density within 0.1% (relative) of the target


def check_density(density: float, where: str = "density") -> float:
    """``density`` as a float in (0, 1], else a one-line UserError."""
    try:
        d = float(density)
    except (TypeError, ValueError):
        raise UserError(f"{where} must be a number in (0, 1], got {density!r}") from None
    if not 0.0 < d <= 1.0:
        raise UserError(f"{where} must be in (0, 1] (the fraction of prunable weights kept; sparsity = 1 - density), "
                        f"got {density!r}")
    return d


def scheme_densities(model: nn.Module, state: PruningState, density: float, scheme: str, *,
                     data: Dataset | None = None, seed: int = 0, options: Mapping[str, Any] | None = None) -> dict[str, float]:
    """The per-layer densities scheme ``scheme`` gives ``state``'s layers at overall ``density`` (checked)."""
    spec = SCHEMES.spec(scheme)
    ctx = PruneContext(data=data, device=_device(model), seed=seed, options=spec.parse_options(options))
    if spec.data_informed:
        ctx.require_data(f"density scheme {scheme}")
    dens = spec.obj(model, state, check_density(density), ctx)
    bad = [k for k, d in dens.items() if not 0.0 <= d <= 1.0 + 1e-9]
    if set(dens) != set(state.masks) or bad:
        raise UserError(f"density scheme {scheme!r} cannot reach density {density} on this model "
                        f"(layer {bad[0] if bad else '?'}); choose a higher density or another scheme")
    return {k: min(1.0, max(0.0, float(dens[k]))) for k in state.masks}


def criterion_scores(model: nn.Module, state: PruningState, criterion: str, *, data: Dataset | None = None,
                     seed: int = 0, options: Mapping[str, Any] | None = None) -> dict[str, Tensor]:
    """The scores (higher = keep) criterion ``criterion`` gives every prunable weight of ``state``."""
    spec = CRITERIA.spec(criterion)
    ctx = PruneContext(data=data, device=_device(model), seed=seed, options=spec.parse_options(options))
    if spec.data_informed:
        ctx.require_data(f"criterion {criterion}")
    return spec.obj(model, state, ctx)


def draw_masks(model: nn.Module, state: PruningState, density: float, *, criterion: str = "random",
               scheme: str = "erk", data: Dataset | None = None, seed: int = 0, exact: bool = True,
               criterion_options: Mapping[str, Any] | None = None,
               scheme_options: Mapping[str, Any] | None = None) -> tuple[dict[str, Tensor], dict[str, float]]:
    """New masks at overall ``density``: per layer the scheme's count, chosen by the criterion's top scores.

    Returns ``(masks, scheme densities)``. ``exact=False`` (random criterion only) draws Bernoulli(density_l)
    per weight as the reference code does; the realised density then drifts. Weights ``state`` already
    prunes stay pruned (a cascade; the other layers absorb the difference).
    """
    if not exact and criterion != "random":
        raise UserError(f"exact: false (Bernoulli draws) applies to the random criterion only, not {criterion!r}; "
                        "remove exact or use criterion random")
    state.apply()  # criteria score the weights the masks describe
    dens = scheme_densities(model, state, density, scheme, data=data, seed=seed, options=scheme_options)
    scores = criterion_scores(model, state, criterion, data=data, seed=seed, options=criterion_options)
    if exact:
        return masks_at_densities(scores, dens, state.masks), dens
    return {k: (scores[k] < dens[k]).to(m.device) & m.bool() for k, m in state.masks.items()}, dens


def sparse_init(model: nn.Module, density: float, *, criterion: str = "random", scheme: str = "erk",
                data: Dataset | None = None, selection: Selection | None = None, seed: int = 0, exact: bool = True,
                criterion_options: Mapping[str, Any] | None = None,
                scheme_options: Mapping[str, Any] | None = None) -> tuple[PruningState, dict[str, float]]:
    """Mask ``model`` (in place) at overall ``density`` of its prunable weights; returns (state, scheme densities).

    Call it on the freshly initialised model (pruning at initialisation); the state's ``layer_densities()``
    are the realised ones.
    """
    state = PruningState.dense(model, selection)
    masks, dens = draw_masks(model, state, density, criterion=criterion, scheme=scheme, data=data, seed=seed,
                             exact=exact, criterion_options=criterion_options, scheme_options=scheme_options)
    state.update(masks)
    state.apply()
    return state, dens


def _device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


__all__ = ["CRITERIA", "DENSITY_TOLERANCE", "SCHEMES", "UPDATES", "check_density", "criterion_scores", "draw_masks",
           "scheme_densities", "sparse_init"]
