"""SNIP as a pruning criterion (Lee et al., "SNIP", ICLR 2019, Eq. 6; also usable at initialization).

Score |w * dL/dw| = |dL/dc| for a multiplicative mask c at c = 1, with L the mean cross-entropy
over S (a seeded draw from the validation split, accumulated in chunks), normalised by the sum
over all prunable weights; global top-k. The model runs in eval mode by default (BN running
statistics, deterministic); ``train_mode=True`` uses batch statistics as SNIP-at-init does.

The parameters' ``.grad`` are left untouched.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from prunebench.pruning.allocation import global_topk
from prunebench.pruning.base import PruneContext, scoring
from prunebench.pruning.masks import PruningState
from prunebench.pruning.registry import METHODS
from prunebench.pruning.selection import module_name
from prunebench.pruning.sensitivity import SampleOptions, sample_size, sensitivity_batch


class SnipOptions(SampleOptions):
    train_mode: bool = Field(False, description="score with BatchNorm batch statistics (as at initialization; "
                                                "the whole sample in one batch) instead of running statistics")


def snip_scores(model: nn.Module, state: PruningState, ctx: PruneContext, method: str = "snip") -> dict[str, Tensor]:
    """Normalised |w * dL/dw| of every masked weight (options: ``ctx.opts(SnipOptions)``; ``method`` for messages)."""
    opts = ctx.opts(SnipOptions)
    data = ctx.require_data(method)
    weights = state.weights()
    dev = next(iter(weights.values())).device
    n = opts.num_samples
    if n is None:
        layers = {module_name(k): model.get_submodule(module_name(k)) for k in state.masks}
        x1, _ = sensitivity_batch(data, 1, generator=ctx.generator("cpu"), device=dev)
        n = sample_size(model, layers, x1)
    x, y = sensitivity_batch(data, int(n), generator=ctx.generator("cpu"), device=dev)
    params = list(weights.values())
    grads = [torch.zeros_like(p) for p in params]
    with scoring(model, opts.train_mode):
        bs = len(x) if opts.train_mode else opts.batch_size  # batch statistics: one chunk
        for i in range(0, len(x), bs):
            xb, yb = x[i:i + bs], y[i:i + bs]
            with torch.enable_grad():
                loss = F.cross_entropy(model(xb), yb, reduction="sum") / len(x)  # mean over all of S
                gs = torch.autograd.grad(loss, params, allow_unused=True)
            for acc, g in zip(grads, gs, strict=True):
                if g is not None:
                    acc.add_(g)
    scores = {k: (p.detach() * g).abs() for (k, p), g in zip(weights.items(), grads, strict=True)}
    total = sum(float(s.sum()) for s in scores.values())
    return {k: s / total for k, s in scores.items()} if total > 0 else scores


@METHODS.register("snip", options=SnipOptions, structured=False, data_informed=True, label="SNIP")
def snip(model: nn.Module, state: PruningState, ratio: float, ctx: PruneContext) -> dict[str, Tensor]:
    """Keep the weights with the largest connection sensitivity |w * dL/dw|."""
    return global_topk(snip_scores(model, state, ctx), state.masks, ratio)
