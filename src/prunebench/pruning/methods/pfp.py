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

Options: ``num_samples`` (|S|, default the formula, capped at half the validation split),
``batch_size`` (sensitivity forward batch, default 32), ``input_shape`` (tracing; default the data's).
"""
from __future__ import annotations

import copy
import math

import torch
from torch import Tensor, nn

from prunebench.pruning.base import METHODS, PruneContext
from prunebench.pruning.masks import PruningState
from prunebench.pruning.options import method_options
from prunebench.pruning.sensitivity import channel_sensitivity, layer_output_sizes, sample_size, sensitivity_inputs
from prunebench.pruning.channel_budget import (Problem, check_reachable, closest_root, finish, fit_blocks, fit_to_budget,
                                               normalised, round_to_option, rounded_counts, setup)

C_CONST = 3.0  # the constant C of PFP / SiPP
LOG_EPS_RANGE = (math.log(1e-300), math.log(1e150))


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
    n_pts = ctx.options.get("num_samples") or sample_size(work, all_layers, example)
    x = sensitivity_inputs(data, int(n_pts), generator=ctx.generator("cpu"), device=dev)
    sens = channel_sensitivity(work, layers, x, batch_size=int(ctx.options.get("batch_size", 32)))
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
        k = layer.weight[0, 0].numel()
        alpha = 2.0 * C_CONST * math.log(8.0 * (eta + 1.0) * k / delta)
        log_coef = math.log(3.0 * alpha * s_l)
        p = chan[ids] / s_l
        score[ids] = torch.maximum(score[ids], p)
        gids = st.group_of[ids]
        for g in torch.unique(gids).tolist():
            sel = gids == g
            pairs.append(_Pair(int(g), ids[sel], p[sel], log_coef))
    return score[: st.n], pairs


@METHODS.register("pfp", structured=True, data_informed=True, options=("num_samples", "batch_size", "input_shape", "round_to"))
def pfp(model: nn.Module, state: PruningState, ratio: float, ctx: PruneContext) -> dict[str, Tensor]:
    """Deterministic PFP: keep the top-n_g channels by sensitivity, one eps for the whole net."""
    opts = method_options("pfp", ctx.options, num_samples=None, batch_size=32, input_shape=None, round_to=1)
    round_to = round_to_option("pfp", opts["round_to"])
    ctx.require_data("pfp")  # fail before any work
    prob = setup(model, state, ratio, ctx, "pfp")
    if prob.current_ratio() >= ratio:  # the cascade already removed enough
        return {k: m.clone() for k, m in state.masks.items()}
    check_reachable(prob, ratio, "pfp")
    st = prob.struct
    score, pairs = channel_scores(model, prob, state, ctx)
    rank = st.rank_in_group(score, prob.alive)
    live = st.per_group(prob.alive)

    def counts_at(log_eps: float) -> Tensor:
        n_g = torch.zeros(len(st.groups), dtype=torch.long)
        for pr in pairs:
            n_g[pr.group] = max(int(n_g[pr.group]), pr.count(log_eps))
        return rounded_counts(torch.minimum(n_g.clamp(min=1), live), live, round_to)

    def excess(log_eps: float) -> float:
        return st.remaining(prob.alive & (rank < counts_at(log_eps)[st.group_of]), prob.counts) - prob.target

    k = counts_at(closest_root(excess, *LOG_EPS_RANGE, xtol=1e-10))
    norm = normalised(score, st, prob.alive)
    if round_to > 1:
        keep = fit_blocks(prob, rank, k, round_to, norm)
    else:
        keep = fit_to_budget(prob, prob.alive & (rank < k[st.group_of]), norm)
    return finish(prob, keep, state, "pfp", ratio, round_to)
