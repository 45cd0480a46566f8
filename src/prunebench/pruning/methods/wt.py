"""WT, weight thresholding: global magnitude pruning (torchprune ``ThresNet``; Han et al. 2015).

Score |w|; one global threshold over all prunable layers keeps the top-(d * total) weights.
"""
from __future__ import annotations

from torch import Tensor, nn

from prunebench.pruning.allocation import global_topk
from prunebench.pruning.base import PruneContext
from prunebench.pruning.masks import PruningState
from prunebench.pruning.registry import METHODS
from prunebench.registry import NoOptions


@METHODS.register("wt", options=NoOptions, structured=False, data_informed=False, color="#1f77b4", label="WT")
def wt(model: nn.Module, state: PruningState, ratio: float, ctx: PruneContext) -> dict[str, Tensor]:
    """Keep the globally largest-magnitude weights."""
    scores = {k: p.detach().abs() for k, p in state.weights().items()}
    return global_topk(scores, state.masks, ratio)
