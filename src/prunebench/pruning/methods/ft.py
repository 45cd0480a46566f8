"""FT, filter thresholding (Li et al., "Pruning Filters for Efficient ConvNets", ICLR 2017; the
torchprune ``FilterThresNet`` baseline of Liebenwein et al., ICLR 2020).

Score of an output channel = the L1 norm of its filter (option ``norm="l2"``: the L2 norm). On a
group of coupled channels (residual stream, see ``prunebench.pruning.structured``) the "filter"
is the concatenation of the rows of every producer, so its L1 norm is the sum of the producers'
row norms (L2: root of the summed squares). Allocation: every group keeps the same fraction f of
its channels (``ceil(f * channels)``, at least one, at most the alive ones); f is found by Brent's
method (``scipy.optimize.brentq``) on the remaining parameter count, then the exact adjustment
step (:func:`~prunebench.pruning.channel_budget.fit_to_budget`) moves a few lowest-scored channels
to land within 0.1% of the budget. On a plain chain a group is one layer, so "every layer keeps
the same fraction of its filters" holds as in the reference; the class outputs are never pruned.
"""
from __future__ import annotations

import torch
from scipy.optimize import brentq
from torch import Tensor, nn

from prunebench.errors import UserError
from prunebench.pruning.base import METHODS, PruneContext
from prunebench.pruning.masks import PruningState
from prunebench.pruning.options import method_options
from prunebench.pruning.channel_budget import Problem, check_reachable, finish, fit_to_budget, normalised, setup


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


def uniform_fraction_keep(prob: Problem, score: Tensor) -> Tensor:
    """Keep vector: every group keeps the same fraction of its channels, the best-scored ones,
    with the fraction found by Brent's method on the remaining weight count, then adjusted."""
    st = prob.struct
    rank = st.rank_in_group(score, prob.alive)
    sizes = torch.tensor([g.size for g in st.groups], dtype=torch.float64)
    live = st.per_group(prob.alive)

    def keep_at(f: float) -> Tensor:
        k = torch.minimum(torch.ceil(f * sizes - 1e-9).long().clamp(min=1), live)
        return prob.alive & (rank < k[st.group_of])

    def excess(f: float) -> float:
        return st.remaining(keep_at(f), prob.counts) - prob.target

    if excess(1.0) <= 0:  # the cascade already removed enough
        keep = keep_at(1.0)
    elif excess(0.0) >= 0:
        keep = keep_at(0.0)
    else:
        f = brentq(excess, 0.0, 1.0, xtol=1e-12, maxiter=500)
        keep = keep_at(f)
    return fit_to_budget(prob, keep, normalised(score, st, prob.alive))


@METHODS.register("ft", structured=True, data_informed=False, options=("norm", "input_shape"))
def ft(model: nn.Module, state: PruningState, ratio: float, ctx: PruneContext) -> dict[str, Tensor]:
    """Filter thresholding: drop the smallest-norm filters, the same fraction in every group.

    Options: ``norm`` ("l1" default, or "l2"); ``input_shape`` (C, H, W) for tracing the channel
    dependencies when no dataset is given (default: guessed from the first layer).
    """
    opts = method_options("ft", ctx.options, norm="l1", input_shape=None)
    norm = str(opts["norm"]).lower()
    if norm not in ("l1", "l2"):
        raise UserError(f"ft option norm must be 'l1' or 'l2', got {norm!r}")
    prob = setup(model, state, ratio, ctx, "ft")
    if prob.current_ratio() >= ratio:  # the cascade already removed enough
        return {k: m.clone() for k, m in state.masks.items()}
    check_reachable(prob, ratio, "ft")
    score = filter_norms(model, prob, state.masks, 1 if norm == "l1" else 2)
    return finish(prob, uniform_fraction_keep(prob, score), state, "ft", ratio)

