"""Random pruning with SNIP-ratio and GraSP-ratio layer-wise densities (Liu et al., "The Unreasonable
Effectiveness of Random Pruning", ICLR 2022, Sec. 4.1; methods.md "SNIP-ratio / GraSP-ratio").

The scores only decide *how much* each layer keeps: a global top-k of SNIP (or GraSP) scores at the
target ratio gives per-layer densities, then every layer draws its kept weights uniformly at random
at that density (criterion ``random`` with scheme ``snip-ratio`` / ``grasp-ratio`` of
:func:`prunebench.pruning.sparse.draw_masks`: exact counts, or Bernoulli with ``exact=False``). Meant for
pruning at initialization, so the scores use BatchNorm batch statistics by default
(``train_mode=True``); the score methods' other options pass through.
"""
from __future__ import annotations

from pydantic import Field
from torch import Tensor, nn

from prunebench.pruning.base import PruneContext
from prunebench.pruning.masks import PruningState
from prunebench.pruning.methods.grasp import GraspOptions
from prunebench.pruning.methods.random import RandomOptions
from prunebench.pruning.methods.snip import SnipOptions
from prunebench.pruning.registry import METHODS
from prunebench.pruning.sparse import draw_masks

TRAIN_MODE = Field(True, description="score with BatchNorm batch statistics (default here: pruning at initialization)")


class RandomSnipRatioOptions(RandomOptions, SnipOptions):
    train_mode: bool = TRAIN_MODE


class RandomGraspRatioOptions(RandomOptions, GraspOptions):
    train_mode: bool = TRAIN_MODE


def _score_ratio(name: str, scheme: str, options: type[RandomOptions]) -> None:
    def method(model: nn.Module, state: PruningState, ratio: float, ctx: PruneContext) -> dict[str, Tensor]:
        opts = ctx.opts(options)
        scheme_opts = opts.model_dump(exclude={"exact"})
        masks, _ = draw_masks(model, state, 1.0 - ratio, criterion="random", scheme=scheme, data=ctx.data,
                              seed=ctx.seed, exact=opts.exact, scheme_options=scheme_opts)
        return masks

    method.__name__ = name.replace("-", "_")
    method.__doc__ = f"Random masks at the per-layer densities a global top-k of {scheme.split('-')[0].upper()} scores gives."
    METHODS.register(name, options=options, structured=False, data_informed=True, baseline=True)(method)


_score_ratio("random-snip-ratio", "snip-ratio", RandomSnipRatioOptions)
_score_ratio("random-grasp-ratio", "grasp-ratio", RandomGraspRatioOptions)
