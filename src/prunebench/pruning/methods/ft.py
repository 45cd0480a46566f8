"""FT, filter thresholding (Li et al., "Pruning Filters for Efficient ConvNets", ICLR 2017; the
torchprune ``FilterThresNet`` baseline of Liebenwein et al., ICLR 2020).

Score of an output channel = the L1 norm of its filter (option ``norm="l2"``: the L2 norm). On a
group of coupled channels (residual stream, see ``prunebench.pruning.structured``) the "filter"
is the concatenation of the rows of every producer, so its L1 norm is the sum of the producers'
row norms (L2: root of the summed squares). Allocation (default ``uniform``, see
:mod:`prunebench.pruning.structured_allocation`): every group keeps the same fraction f of its
channels (``ceil(f * channels)``, at least one, at most the alive ones); f is found by Brent's
method (``scipy.optimize.brentq``) on the remaining parameter count, then the exact adjustment
step (:func:`~prunebench.pruning.channel_budget.fit_to_budget`) moves a few lowest-scored channels
to land within 0.1% of the budget. On a plain chain a group is one layer, so "every layer keeps
the same fraction of its filters" holds as in the reference; the class outputs are never pruned.
"""
from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from prunebench.pruning.base import PruneContext
from prunebench.pruning.channel_budget import Problem
from prunebench.pruning.masks import PruningState
from prunebench.pruning.registry import METHODS
from prunebench.pruning.structured_allocation import AllocationName, ChannelScores, StructuredOptions, prune_channels


class FTOptions(StructuredOptions):
    norm: Literal["l1", "l2"] = Field("l1", description="filter norm: l1 (Li et al.) or l2")
    allocation: AllocationName = "uniform"


def filter_norms(model: nn.Module, prob: Problem, masks: dict[str, Tensor], p: int = 1) -> Tensor:
    """Per global channel: L_p norm of the (masked) rows of all its producers."""
    params = dict(model.named_parameters())
    rows: dict[str, Tensor] = {}
    for name in prob.struct.layers:
        w, m = params[f"{name}.weight"].detach(), masks[f"{name}.weight"]
        if not bool(m.all()):
            w = w * m
        w = w.reshape(w.shape[0], -1)
        rows[name] = w.abs().sum(1, dtype=torch.float64) if p == 1 else w.pow(2).sum(1, dtype=torch.float64)
    acc = prob.struct.gather_rows(rows)
    return acc if p == 1 else acc.sqrt()


@METHODS.register("ft", options=FTOptions, structured=True, data_informed=False, color="#d62728", label="FT")
def ft(model: nn.Module, state: PruningState, ratio: float, ctx: PruneContext) -> dict[str, Tensor]:
    """Filter thresholding: drop the smallest-norm filters, the same fraction in every group."""
    p = 1 if ctx.opts(FTOptions).norm == "l1" else 2
    return prune_channels(model, state, ratio, ctx, "ft",
                          lambda prob: ChannelScores(filter_norms(model, prob, state.masks, p)))
