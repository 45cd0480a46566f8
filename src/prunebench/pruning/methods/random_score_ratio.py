"""Random pruning with SNIP-ratio and GraSP-ratio layer-wise densities (Liu et al., "The Unreasonable
Effectiveness of Random Pruning", ICLR 2022, Sec. 4.1; methods.md "SNIP-ratio / GraSP-ratio").

The scores only decide *how much* each layer keeps: a global top-k of SNIP (or GraSP) scores at the
target ratio gives per-layer densities, then every layer draws its kept weights uniformly at random
at that density (``random_masks``: exact counts, or Bernoulli with ``exact=False``). Meant for
pruning at initialization, so the scores use BatchNorm batch statistics by default
(``train_mode=True``); the score methods' other options pass through.
"""
from __future__ import annotations

from typing import Callable

from torch import Tensor, nn

from prunebench.pruning.allocation import global_topk, random_masks
from prunebench.pruning.base import METHODS, PruneContext
from prunebench.pruning.masks import PruningState
from prunebench.pruning.methods import grasp as _grasp
from prunebench.pruning.methods import snip as _snip


def _score_ratio(name: str, scorer: Callable[..., dict[str, Tensor]], score_options: dict, keep_lowest: bool):
    def method(model: nn.Module, state: PruningState, ratio: float, ctx: PruneContext) -> dict[str, Tensor]:
        exact = bool(ctx.options.get("exact", True))
        score_ctx = PruneContext(data=ctx.data, device=ctx.device, seed=ctx.seed,
                                 options={k: v for k, v in ctx.options.items() if k != "exact"})
        scores = scorer(model, state, score_ctx, name, **{**score_options, "train_mode": True})
        if keep_lowest:  # GraSP keeps the lowest scores
            scores = {k: -s for k, s in scores.items()}
        top = global_topk(scores, state.masks, ratio)
        densities = {k: float(m.sum()) / m.numel() for k, m in top.items()}
        return random_masks(densities, state.masks, exact=exact, generator=ctx.generator("cpu"))

    method.__name__ = name.replace("-", "_")
    method.__doc__ = f"Random masks at the per-layer densities a global top-k of {name.split('-')[1].upper()} scores gives."
    return METHODS.register(name, structured=False, data_informed=True, baseline=True,
                            options=("exact", *score_options))(method)


random_snip_ratio = _score_ratio("random-snip-ratio", _snip.snip_scores, _snip.OPTIONS, keep_lowest=False)
random_grasp_ratio = _score_ratio("random-grasp-ratio", _grasp.grasp_layer_scores, _grasp.OPTIONS, keep_lowest=True)
