"""PFP, provable filter pruning, deterministic variant (Liebenwein et al., "Provable Filter
Pruning for Efficient Neural Networks", ICLR 2020, Alg. 1-2; reference: lucaslie/torchprune
``method/pfp``). Formulas as in ``/shared/reference/methods.md``:

* channel sensitivity s_j of an input channel j of layer l: max over the points x in S (drawn
  from ``data.val``, never the test split), output units i, kernel positions and patches of
  g_{ij,p}(x) (SiPP's relative contribution; ``prunebench.pruning.sensitivity``);
* p_j = s_j / S_l, S_l = sum_j s_j;
* alpha_l = 2 C ln(8 (eta + 1) k / delta), C = 3, k = kh * kw, delta = 1e-16 / eta
  (eta = number of outputs of all prunable layers);
* m_l(eps) = ceil(3 (6 + 2 eps) alpha_l S_l / eps^2); n_l = ceil(sum_j 1 - (1 - p_j)^m_l),
  at least 1, at most the alive channels;
* one global eps by Brent's method on log eps over [1e-300, 1e150] so that the remaining
  parameters match the budget; keep the top-n_l channels by s_j, no reweighting.

Groups (see ``prunebench.pruning.structured``): a channel of a coupled group (e.g. a residual
stream) is read by several consumer layers. Each consumer l gives its own count
n_{l,g}(eps) over the group's channels (its p_j normalised by its own S_l); the group keeps
n_g = max_l n_{l,g} channels (enough for every consumer's error bound), ranked by
max_l p^l_j. On a plain chain this is exactly the per-layer rule. For a Linear behind a Flatten,
the channel sensitivity is the max over that channel's H*W input features (more patches).
Pruning an input channel removes the producer's filter; the image channels have no producer and
are never pruned. Because n_g are integers, Brent's root can miss the budget, so the exact
adjustment step (:func:`~prunebench.pruning.channel_budget.fit_to_budget`) follows.

The allocation above is the ``error-tolerance`` policy of
:mod:`prunebench.pruning.structured_allocation`, PFP's default (option ``allocation``).
"""
from __future__ import annotations

import copy
import math

import torch
from pydantic import Field
from torch import Tensor, nn

from prunebench.pruning.base import PruneContext
from prunebench.pruning.channel_budget import Problem
from prunebench.pruning.masks import PruningState
from prunebench.pruning.registry import METHODS
from prunebench.pruning.sensitivity import SampleOptions, channel_sensitivity, layer_output_sizes, sample_size, sensitivity_inputs
from prunebench.pruning.structured_allocation import AllocationName, ChannelScores, StructuredOptions, prune_channels

C_CONST = 3.0  # the constant C of PFP / SiPP
LOG_EPS_RANGE = (math.log(1e-300), math.log(1e150))


class PFPOptions(SampleOptions, StructuredOptions):
    supplies_tolerance = True
    batch_size: int = Field(32, ge=1, description="forward batch size while scoring")
    allocation: AllocationName = "error-tolerance"


def masked_copy(model: nn.Module, masks: dict[str, Tensor]) -> nn.Module:
    """A deep copy in eval mode with the masks multiplied into the weights."""
    work = copy.deepcopy(model).eval()
    params = dict(work.named_parameters())
    with torch.no_grad():
        for key, m in masks.items():
            params[key].mul_(m.to(params[key].device, params[key].dtype))
    return work


class _Pair:
    """Consumer layer l reading (part of) group g: its channels, their p_j and log(coef_l)."""

    def __init__(self, group: int, ids: Tensor, p: Tensor, log_coef: float) -> None:
        self.group, self.ids, self.p, self.log_coef = group, ids, p, log_coef
        self.log1mp = torch.log1p(-p.clamp(max=1.0))

    def count(self, log_eps: float) -> int:
        eps = math.exp(log_eps)
        # m_l(eps) = ceil(3 (6 + 2 eps) alpha_l S_l / eps^2), evaluated in log space (eps spans 450 decades)
        log_m = self.log_coef + math.log(6.0 + 2.0 * eps) - 2.0 * log_eps
        m = float(math.ceil(math.exp(min(log_m, 690.0))))
        expect = -torch.expm1(m * self.log1mp)  # 1 - (1 - p_j)^m, exact for tiny p and huge m
        expect = torch.where(self.p > 0, expect, torch.zeros_like(expect))
        return int(math.ceil(float(expect.sum()) - 1e-9))


def channel_scores(model: nn.Module, prob: Problem, state: PruningState, ctx: PruneContext) -> tuple[Tensor, list[_Pair]]:
    """Per global channel max_l p^l_j, and the (consumer, group) pairs for the allocation."""
    st = prob.struct
    data = ctx.require_data("pfp")
    work = masked_copy(model, state.masks)
    dev = next(work.parameters()).device
    example = prob.example.to(dev)
    all_layers = {n: work.get_submodule(n) for n in st.layers}
    consumers = sorted({c for g in st.prunable_groups for c in g.consumers}, key=list(st.layers).index)
    layers = {n: all_layers[n] for n in consumers}
    opts = ctx.opts(PFPOptions)
    n_pts = opts.num_samples or sample_size(work, all_layers, example)
    x = sensitivity_inputs(data, int(n_pts), generator=ctx.generator("cpu"), device=dev)
    sens = channel_sensitivity(work, layers, x, batch_size=opts.batch_size)
    sizes = layer_output_sizes(work, all_layers, example)
    eta = float(sum(sizes.values()))
    delta = 1e-16 / eta

    score = torch.zeros(st.n + 1, dtype=torch.float64)
    pairs: list[_Pair] = []
    for name in consumers:
        s_col = sens[name].detach().to("cpu", torch.float64).clamp(min=0)
        in_map = st.in_map[name]
        chan = torch.zeros(st.n + 1, dtype=torch.float64).scatter_reduce(0, in_map, s_col, "amax")
        ids = torch.unique(in_map[in_map < st.n])
        s_l = float(chan[ids].sum() + s_col[in_map == st.n].sum())
        if s_l <= 0:
            continue  # the layer's inputs carry nothing on S: every channel scores 0
        layer = all_layers[name]
        k = layer.weight[0, 0].numel()  # type: ignore[index]  # torch types Module attributes as Tensor | Module; a prunable layer's weight is a Tensor
        alpha = 2.0 * C_CONST * math.log(8.0 * (eta + 1.0) * k / delta)
        log_coef = math.log(3.0 * alpha * s_l)
        p = chan[ids] / s_l
        score[ids] = torch.maximum(score[ids], p)
        gids = st.group_of[ids]
        for g in torch.unique(gids).tolist():
            sel = gids == g
            pairs.append(_Pair(int(g), ids[sel], p[sel], log_coef))
    return score[: st.n], pairs


def pfp_scores(model: nn.Module, prob: Problem, state: PruningState, ctx: PruneContext) -> ChannelScores:
    """Channel scores max_l p^l_j and PFP's per-group counts n_g(log eps) for the allocation."""
    st = prob.struct
    score, pairs = channel_scores(model, prob, state, ctx)

    def counts(log_eps: float) -> Tensor:
        n_g = torch.zeros(len(st.groups), dtype=torch.long)
        for pr in pairs:
            n_g[pr.group] = max(int(n_g[pr.group]), pr.count(log_eps))
        return n_g

    return ChannelScores(score, counts, LOG_EPS_RANGE, 1e-10)


@METHODS.register("pfp", options=PFPOptions, structured=True, data_informed=True, color="#ff7f0e", label="PFP")
def pfp(model: nn.Module, state: PruningState, ratio: float, ctx: PruneContext) -> dict[str, Tensor]:
    """Deterministic PFP: keep the top-n_g channels by sensitivity, one eps for the whole net."""
    ctx.require_data("pfp")  # fail before any work
    return prune_channels(model, state, ratio, ctx, "pfp", lambda prob: pfp_scores(model, prob, state, ctx))
