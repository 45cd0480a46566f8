"""Structured allocation, apart from importance: a structured method scores channels, a policy
chosen by name decides how many channels each group keeps (the structured counterpart of
:mod:`prunebench.pruning.allocation`).

Policies (``ALLOCATIONS``; a method names its default in its options model, option ``allocation``):

* ``uniform``: every group keeps the same fraction f of its channels (``ceil(f * size)``), f by
  Brent's method on the remaining weight count (FT, Li et al. 2017; random-filter);
* ``error-tolerance``: one global error tolerance eps; each group keeps the count the method's
  error bound asks at eps, eps by Brent's method on log eps (PFP, Liebenwein et al. 2020). Only
  for methods that supply such counts (:attr:`ChannelScores.tolerance_counts`);
* ``global``: one threshold on the group-normalised scores over all groups (channels scoring at
  least the threshold are kept).

Every policy keeps at least one channel per group and the best-scored ones inside a group, then
the exact adjustment step of :mod:`prunebench.pruning.channel_budget` lands on the budget. The
option ``round_to`` (R > 1: kept counts rounded to blocks of R channels, adjusted block-wise) applies
to every policy.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, ClassVar

import torch
from pydantic import AfterValidator, BeforeValidator, Field, PositiveInt, field_validator
from torch import Tensor, nn

from prunebench.errors import UserError
from prunebench.pruning.base import PruneContext
from prunebench.pruning.channel_budget import (
    Problem,
    check_reachable,
    closest_root,
    finish,
    fit_blocks,
    fit_to_budget,
    normalised,
    rounded_counts,
    setup,
)
from prunebench.pruning.masks import PruningState
from prunebench.registry import Options


@dataclass
class ChannelScores:
    """What a structured method hands to the allocation: importance per global channel (higher is
    kept first) and, optionally, its own one-parameter family of per-group counts."""

    score: Tensor  # float[n]
    tolerance_counts: Callable[[float], Tensor] | None = None  # t -> long[groups] raw kept counts, monotone in t
    tolerance_range: tuple[float, float] = (0.0, 1.0)  # where t is searched
    tolerance_xtol: float = 1e-10


Allocation = Callable[[Problem, ChannelScores, int], Tensor]
ALLOCATIONS: dict[str, Allocation] = {}


def register_allocation(name: str) -> Callable[[Allocation], Allocation]:
    """Decorator adding a policy ``f(problem, scores, round_to) -> keep (bool[n])`` to ``ALLOCATIONS``."""

    def deco(fn: Allocation) -> Allocation:
        if name in ALLOCATIONS:
            raise ValueError(f"structured allocation {name!r} is registered twice")
        ALLOCATIONS[name] = fn
        return fn

    return deco


def keep_from_counts(prob: Problem, scores: ChannelScores, round_to: int, raw_counts: Callable[[float], Tensor],
                     lo: float, hi: float, xtol: float) -> Tensor:
    """The allocation every policy shares: per-group counts ``raw_counts(t)`` (at least one, at most
    the alive channels, rounded to ``round_to`` blocks), t by Brent's method so that the kept weights
    match the budget, the best-scored channels of each group kept, then the adjustment step."""
    st = prob.struct
    rank = st.rank_in_group(scores.score, prob.alive)
    live = st.per_group(prob.alive)

    def counts_at(t: float) -> Tensor:
        return rounded_counts(torch.minimum(raw_counts(t).clamp(min=1), live), live, round_to)

    def excess(t: float) -> float:
        return st.remaining(prob.alive & (rank < counts_at(t)[st.group_of]), prob.counts) - prob.target

    k = counts_at(closest_root(excess, lo, hi, xtol=xtol))
    norm = normalised(scores.score, st, prob.alive)
    if round_to > 1:
        return fit_blocks(prob, rank, k, round_to, norm)
    return fit_to_budget(prob, prob.alive & (rank < k[st.group_of]), norm)


@register_allocation("uniform")
def uniform(prob: Problem, scores: ChannelScores, round_to: int) -> Tensor:
    """Every group keeps the same fraction f of its channels; f in [0, 1] by root finding."""
    sizes = torch.tensor([g.size for g in prob.struct.groups], dtype=torch.float64)
    return keep_from_counts(prob, scores, round_to, lambda f: torch.ceil(f * sizes - 1e-9).long(), 0.0, 1.0, 1e-12)


@register_allocation("error-tolerance")
def error_tolerance(prob: Problem, scores: ChannelScores, round_to: int) -> Tensor:
    """The method's own counts at one global error tolerance (PFP), the tolerance by root finding."""
    if scores.tolerance_counts is None:
        raise UserError("structured allocation 'error-tolerance' needs per-group counts from the method's error "
                        f"bound, which this method does not supply; choose one of: {', '.join(sorted(ALLOCATIONS))}")
    return keep_from_counts(prob, scores, round_to, scores.tolerance_counts, *scores.tolerance_range,
                            scores.tolerance_xtol)


@register_allocation("global")
def global_threshold(prob: Problem, scores: ChannelScores, round_to: int) -> Tensor:
    """One threshold on the group-normalised scores over the whole network."""
    st = prob.struct
    norm = normalised(scores.score, st, prob.alive)
    top = float(norm[prob.alive].max()) if bool(prob.alive.any()) else 0.0
    return keep_from_counts(prob, scores, round_to, lambda t: st.per_group(prob.alive & (norm >= t)),
                            0.0, top * (1 + 1e-9) + 1e-12, 1e-12 * max(top, 1.0))


# ----------------------------------------------------------------------------- shared structured options
def _round_to(value: object) -> int:
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
            or value != int(value) or int(value) < 1):
        raise ValueError(f"round_to must be a positive integer (channel block size, e.g. 8 or 16; 1 = no rounding), "
                         f"got {value!r}")
    return int(value)


def _known_allocation(name: str) -> str:
    if name not in ALLOCATIONS:
        raise ValueError(f"unknown structured allocation {name!r}; choose one of: {', '.join(sorted(ALLOCATIONS))}")
    return name


RoundTo = Annotated[int, BeforeValidator(_round_to), Field(
    description="keep a multiple of this many channels per group (hardware blocks, e.g. 16); 1 = exact ratio")]
AllocationName = Annotated[str, AfterValidator(_known_allocation), Field(
    description=f"how many channels each group keeps: one of {', '.join(sorted(ALLOCATIONS))}")]
InputShape = Annotated[tuple[PositiveInt, ...], Field(min_length=1, max_length=3)]


class StructuredOptions(Options):
    """Options every structured method takes (subclasses add ``allocation`` with their default)."""

    supplies_tolerance: ClassVar[bool] = False  # the method fills ChannelScores.tolerance_counts (PFP)

    round_to: RoundTo = 1
    input_shape: InputShape | None = Field(
        None, description="(C, H, W) input for tracing channel dependencies; default: the dataset's, else guessed")
    allocation: AllocationName = "uniform"

    @field_validator("allocation")
    @classmethod
    def _fits_method(cls, name: str) -> str:
        if name == "error-tolerance" and not cls.supplies_tolerance:
            raise ValueError("allocation 'error-tolerance' needs per-group counts from the method's own error bound "
                             "(as PFP has); choose " + " or ".join(sorted(set(ALLOCATIONS) - {name})))
        return name


def prune_channels(model: nn.Module, state: PruningState, ratio: float, ctx: PruneContext, method: str,
                   scorer: Callable[[Problem], ChannelScores]) -> dict[str, Tensor]:
    """The flow of every structured method: build the channel problem, score channels with
    ``scorer``, allocate with the ``allocation`` option, expand to weight masks."""
    opts = ctx.opts(StructuredOptions)
    prob = setup(model, state, ratio, ctx, method, input_shape=opts.input_shape)
    if prob.current_ratio() >= ratio:  # the cascade already removed enough
        return {k: m.clone() for k, m in state.masks.items()}
    check_reachable(prob, ratio, method)
    keep = ALLOCATIONS[opts.allocation](prob, scorer(prob), opts.round_to)
    return finish(prob, keep, state, method, ratio, opts.round_to)
