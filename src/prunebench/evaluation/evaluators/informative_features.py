"""``informative-features``: does the pruned network rely on the same pixels as its parent?

Liebenwein et al., "Lost in Pruning" (MLSys 2021) compare networks through Sufficient Input Subsets
(SIS, Carter et al. 2019): backward selection repeatedly masks the pixel (set to 0 in normalized
space, all channels at once) whose removal least lowers the softmax probability of the class the
network predicts on the full image; the order of removal ranks pixels from least to most
informative. Exact backward selection costs one forward pass per remaining pixel per step
(O(HW^2) passes per image), so we use a documented batched approximation:

* pixels are removed in groups: each round removes ``round_frac`` of the pixels still present
  (at least ``min_group``), so early rounds are coarse and the last, most informative pixels are
  ordered one by one;
* the effect of removing pixel p is estimated to first order by gradient x input,
  delta_p = -sum_c x[c, p] * d log p_y / d x[c, p] (one forward + backward pass per round for the
  whole batch). Ranking by the change of log p_y is the same as ranking by the change of p_y
  within an image (p_y is a per-image constant factor) but does not underflow when p_y ~ 1.
  The pixels with the largest delta (least decrease, or increase) are removed first.

The top-k% pixels of a network are the last ceil-rounded k% it removed. Metrics compare the
model's and the parent's top-k% sets and measure accuracy when only some pixels are kept; a
separately trained baseline compared with the same parent gives the reference level.
"""
from __future__ import annotations

import math

import torch
from pydantic import Field
from torch import nn

from prunebench.evaluation._common import Percentages, as_tuple, eval_mode, forward_batched, num_key, test_images
from prunebench.evaluation.base import EvalContext
from prunebench.evaluation.registry import EVALUATORS
from prunebench.registry import Options
from prunebench.tolerances import INFERENCE_BATCH

DEFAULT_KS = (5.0, 10.0, 25.0, 50.0)


def removal_order(net: nn.Module, xn: torch.Tensor, round_frac: float = 0.05, min_group: int = 1,
                  batch_size: int = INFERENCE_BATCH) -> torch.Tensor:
    """Per-image pixel indices (into H*W) in backward-selection removal order, [n, H*W] long.

    ``xn`` is a normalized batch [n, C, H, W]; the last entries of each row are the most informative
    pixels. ``net`` must be in eval mode. See the module docstring for the approximation.
    """
    orders = []
    for i in range(0, len(xn), batch_size):
        orders.append(_removal_order_batch(net, xn[i : i + batch_size], round_frac, min_group))
    return torch.cat(orders)


def _removal_order_batch(net: nn.Module, xn: torch.Tensor, round_frac: float, min_group: int) -> torch.Tensor:
    n, c, h, w = xn.shape
    p = h * w
    with torch.no_grad():
        target = net(xn).argmax(1)
    kept = torch.ones(n, p, dtype=torch.bool, device=xn.device)
    order = torch.empty(n, p, dtype=torch.long, device=xn.device)
    rows = torch.arange(n, device=xn.device)
    pos, remaining = 0, p
    while remaining > 0:
        group = min(remaining, max(min_group, math.ceil(round_frac * remaining)))
        xm = (xn * kept.view(n, 1, h, w).to(xn.dtype)).detach().requires_grad_(True)
        with torch.enable_grad():
            logp = net(xm).float().log_softmax(1)[rows, target]
            (grad,) = torch.autograd.grad(logp.sum(), xm)
        delta = -(grad * xm.detach()).sum(1).reshape(n, p)  # first-order change of log p_y if p -> 0
        delta = delta.masked_fill(~kept, float("-inf"))
        chosen = delta.topk(group, dim=1).indices
        order[:, pos : pos + group] = chosen
        kept.scatter_(1, chosen, False)
        pos += group
        remaining -= group
    return order


def top_mask(order: torch.Tensor, k_percent: float) -> torch.Tensor:
    """Boolean [n, H*W] mask of the top-k% (last removed) pixels of each ordering (at least one pixel)."""
    n, p = order.shape
    m = max(1, round(k_percent / 100.0 * p))
    mask = torch.zeros(n, p, dtype=torch.bool, device=order.device)
    return mask.scatter_(1, order[:, p - m :], True)


def _acc_keeping(net: nn.Module, xn: torch.Tensor, y: torch.Tensor, keep: torch.Tensor, batch_size: int) -> float:
    n, _, h, w = xn.shape
    xk = xn * keep.view(n, 1, h, w).to(xn.dtype)
    return (forward_batched(net, xk, batch_size).argmax(1) == y).float().mean().item()


def _overlap(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a & b).sum(1).float() / a.sum(1).float()).mean().item()


class InformativeFeaturesOptions(Options):
    n: int = Field(200, gt=0, description="first test images")
    ks: Percentages = Field(DEFAULT_KS, description="top-k% pixel sets compared, percentages in (0, 100]")
    round_frac: float = Field(0.05, gt=0, le=1, description="fraction of the remaining pixels removed per round")
    min_group: int = Field(1, gt=0, description="fewest pixels removed per round")


@EVALUATORS.register("informative-features", options=InformativeFeaturesOptions, needs_parent=True,
                     panels=("overlap/", "acc_own/"), description=(
                         "Which pixels the networks rely on (SIS-style backward selection): overlap of the top-k% "
                         "pixel sets with the parent's, and accuracy keeping only them."))
def informative_features(model: nn.Module, ctx: EvalContext, opts: InformativeFeaturesOptions) -> dict[str, float]:
    """SIS-style pixel orderings of model, parent (and baseline) compared at top-k% (k in ``ks``).

    Metrics per k (key ``num_key(k)``, e.g. ``10``): ``overlap/<k>`` (fraction of the parent's
    top-k% pixels that are also in the model's, mean over images; chance level k/100),
    ``acc_own/<k>`` (model accuracy keeping only its own top-k% pixels, the rest set to 0 in
    normalized space), ``acc_parent_feat/<k>`` (model accuracy keeping only the parent's top-k%),
    ``parent_acc_own/<k>``; with ``ctx.baseline``: ``baseline_overlap/<k>``, ``baseline_acc_own/<k>``,
    ``baseline_acc_parent_feat/<k>``.
    """
    parent = ctx.require_parent("informative-features")
    baseline = ctx.baseline
    k_list, round_frac, min_group = as_tuple(opts.ks), opts.round_frac, opts.min_group
    x01, y = test_images(ctx, opts.n)
    xn = ctx.data.normalize(x01)
    out: dict[str, float] = {}
    with eval_mode(model, parent, baseline):
        nets = {"model": model, "parent": parent} | ({"baseline": baseline} if baseline is not None else {})
        orders = {name: removal_order(net, xn, round_frac, min_group, ctx.batch_size) for name, net in nets.items()}
        for k in k_list:
            key = num_key(k)
            tops = {name: top_mask(o, k) for name, o in orders.items()}
            out[f"overlap/{key}"] = _overlap(tops["parent"], tops["model"])
            out[f"acc_own/{key}"] = _acc_keeping(model, xn, y, tops["model"], ctx.batch_size)
            out[f"acc_parent_feat/{key}"] = _acc_keeping(model, xn, y, tops["parent"], ctx.batch_size)
            out[f"parent_acc_own/{key}"] = _acc_keeping(parent, xn, y, tops["parent"], ctx.batch_size)
            if baseline is not None:
                out[f"baseline_overlap/{key}"] = _overlap(tops["parent"], tops["baseline"])
                out[f"baseline_acc_own/{key}"] = _acc_keeping(baseline, xn, y, tops["baseline"], ctx.batch_size)
                out[f"baseline_acc_parent_feat/{key}"] = _acc_keeping(baseline, xn, y, tops["parent"], ctx.batch_size)
    return out
