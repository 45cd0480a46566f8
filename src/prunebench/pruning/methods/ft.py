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
from torch import Tensor, nn

from prunebench.errors import UserError
from prunebench.pruning.base import METHODS, PruneContext
from prunebench.pruning.masks import PruningState
from prunebench.pruning.options import method_options
from prunebench.pruning.channel_budget import (Problem, check_reachable, closest_root, finish, fit_blocks, fit_to_budget,
                                               normalised, round_to_option, rounded_counts, setup)


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


def uniform_fraction_keep(prob: Problem, score: Tensor, round_to: int = 1) -> Tensor:
    """Keep vector: every group keeps the same fraction of its channels, the best-scored ones,
    with the fraction found by Brent's method on the remaining weight count, then adjusted
    (``round_to`` > 1: counts rounded up to channel blocks, no single-channel adjustment)."""
    st = prob.struct
    rank = st.rank_in_group(score, prob.alive)
    sizes = torch.tensor([g.size for g in st.groups], dtype=torch.float64)
    live = st.per_group(prob.alive)

    def counts_at(f: float) -> Tensor:
        k = torch.minimum(torch.ceil(f * sizes - 1e-9).long().clamp(min=1), live)
        return rounded_counts(k, live, round_to)

    def excess(f: float) -> float:
        return st.remaining(prob.alive & (rank < counts_at(f)[st.group_of]), prob.counts) - prob.target

    k = counts_at(closest_root(excess, 0.0, 1.0, xtol=1e-12))
    norm = normalised(score, st, prob.alive)
    if round_to > 1:
        return fit_blocks(prob, rank, k, round_to, norm)
    return fit_to_budget(prob, prob.alive & (rank < k[st.group_of]), norm)


@METHODS.register("ft", structured=True, data_informed=False, options=("norm", "input_shape", "round_to"))
def ft(model: nn.Module, state: PruningState, ratio: float, ctx: PruneContext) -> dict[str, Tensor]:
    """Filter thresholding: drop the smallest-norm filters, the same fraction in every group.

    Options: ``norm`` ("l1" default, or "l2"); ``input_shape`` (C, H, W) for tracing the channel
    dependencies when no dataset is given (default: guessed from the first layer); ``round_to``
    (keep a multiple of this many channels per group, for hardware speed; default 1, exact ratio).
    """
    opts = method_options("ft", ctx.options, norm="l1", input_shape=None, round_to=1)
    round_to = round_to_option("ft", opts["round_to"])
    norm = str(opts["norm"]).lower()
    if norm not in ("l1", "l2"):
        raise UserError(f"ft option norm must be 'l1' or 'l2', got {norm!r}")
    prob = setup(model, state, ratio, ctx, "ft")
    if prob.current_ratio() >= ratio:  # the cascade already removed enough
        return {k: m.clone() for k, m in state.masks.items()}
    check_reachable(prob, ratio, "ft")
    score = filter_norms(model, prob, state.masks, 1 if norm == "l1" else 2)
    return finish(prob, uniform_fraction_keep(prob, score, round_to), state, "ft", ratio, round_to)

