"""Random pruning with SNIP-ratio and GraSP-ratio layer-wise densities (Liu et al., "The Unreasonable
Effectiveness of Random Pruning", ICLR 2022, Sec. 4.1; methods.md "SNIP-ratio / GraSP-ratio").

The scores only decide *how much* each layer keeps: a global top-k of SNIP (or GraSP) scores at the
target ratio gives per-layer densities, then every layer draws its kept weights uniformly at random
at that density (``random_masks``: exact counts, or Bernoulli with ``exact=False``). Meant for
pruning at initialization, so the scores use BatchNorm batch statistics by default
(``train_mode=True``); the score methods' other options pass through.
"""
from __future__ import annotations

from collections.abc import Callable

from pydantic import Field
from torch import Tensor, nn

from prunebench.pruning.allocation import global_topk, random_masks
from prunebench.pruning.base import PruneContext
from prunebench.pruning.masks import PruningState
from prunebench.pruning.methods.grasp import GraspOptions, grasp_layer_scores
from prunebench.pruning.methods.random import RandomOptions
from prunebench.pruning.methods.snip import SnipOptions, snip_scores
from prunebench.pruning.registry import METHODS

TRAIN_MODE = Field(True, description="score with BatchNorm batch statistics (default here: pruning at initialization)")


class RandomSnipRatioOptions(RandomOptions, SnipOptions):
    train_mode: bool = TRAIN_MODE


class RandomGraspRatioOptions(RandomOptions, GraspOptions):
    train_mode: bool = TRAIN_MODE


def _score_ratio(name: str, scorer: Callable[..., dict[str, Tensor]], options: type[RandomOptions],
                 keep_lowest: bool) -> Callable[..., dict[str, Tensor]]:
    def method(model: nn.Module, state: PruningState, ratio: float, ctx: PruneContext) -> dict[str, Tensor]:
        scores = scorer(model, state, ctx, name)
        if keep_lowest:  # GraSP keeps the lowest scores
            scores = {k: -s for k, s in scores.items()}
        top = global_topk(scores, state.masks, ratio)
        densities = {k: float(m.sum()) / m.numel() for k, m in top.items()}
        return random_masks(densities, state.masks, exact=ctx.opts(options).exact, generator=ctx.generator("cpu"))

    method.__name__ = name.replace("-", "_")
    score = name.split("-")[1].upper()
    method.__doc__ = f"Random masks at the per-layer densities a global top-k of {score} scores gives."
    return METHODS.register(name, options=options, structured=False, data_informed=True, baseline=True)(method)


random_snip_ratio = _score_ratio("random-snip-ratio", snip_scores, RandomSnipRatioOptions, keep_lowest=False)
random_grasp_ratio = _score_ratio("random-grasp-ratio", grasp_layer_scores, RandomGraspRatioOptions, keep_lowest=True)
