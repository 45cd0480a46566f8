"""Random filter pruning: FT's allocation (the same fraction of channels in every group, the
fraction found by Brent's method, then the exact adjustment step) with the channels chosen
uniformly at random (seeded by ``ctx.seed``) instead of by filter norm. The structured baseline
of Liebenwein et al. (ICLR 2020); groups of coupled channels as in ``prunebench.pruning.structured``.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from prunebench.pruning.base import METHODS, PruneContext
from prunebench.pruning.masks import PruningState
from prunebench.pruning.options import method_options
from prunebench.pruning.methods.ft import uniform_fraction_keep
from prunebench.pruning.channel_budget import check_reachable, finish, round_to_option, setup


@METHODS.register("random-filter", structured=True, data_informed=False, baseline=True,
                  options=("input_shape", "round_to"))
def random_filter(model: nn.Module, state: PruningState, ratio: float, ctx: PruneContext) -> dict[str, Tensor]:
    """Remove uniformly random channels, the same fraction of every group (options ``input_shape``
    and ``round_to`` as for ft)."""
    opts = method_options("random-filter", ctx.options, input_shape=None, round_to=1)
    round_to = round_to_option("random-filter", opts["round_to"])
    prob = setup(model, state, ratio, ctx, "random-filter")
    if prob.current_ratio() >= ratio:  # the cascade already removed enough
        return {k: m.clone() for k, m in state.masks.items()}
    check_reachable(prob, ratio, "random-filter")
    score = torch.rand(prob.struct.n, generator=ctx.generator("cpu"), dtype=torch.float64)
    return finish(prob, uniform_fraction_keep(prob, score, round_to), state, "random-filter", ratio, round_to)
