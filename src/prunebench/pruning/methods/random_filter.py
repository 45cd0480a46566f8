"""Random filter pruning: FT's allocation (``uniform``: the same fraction of channels in every
group, the fraction found by Brent's method, then the exact adjustment step) with the channels
chosen uniformly at random (seeded by ``ctx.seed``) instead of by filter norm. The structured
baseline of Liebenwein et al. (ICLR 2020); groups of coupled channels as in
``prunebench.pruning.structured``.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from prunebench.pruning.base import PruneContext
from prunebench.pruning.masks import PruningState
from prunebench.pruning.registry import METHODS
from prunebench.pruning.structured_allocation import AllocationName, ChannelScores, StructuredOptions, prune_channels


class RandomFilterOptions(StructuredOptions):
    allocation: AllocationName = "uniform"


@METHODS.register("random-filter", options=RandomFilterOptions, structured=True, data_informed=False, baseline=True,
                  color="#8c564b")
def random_filter(model: nn.Module, state: PruningState, ratio: float, ctx: PruneContext) -> dict[str, Tensor]:
    """Remove uniformly random channels, the same fraction of every group."""
    return prune_channels(model, state, ratio, ctx, "random-filter", lambda prob: ChannelScores(
        torch.rand(prob.struct.n, generator=ctx.generator("cpu"), dtype=torch.float64)))
