"""Channel budgets for the structured methods: the weight budget of one call, the reachability
check, and the exact adjustment step that follows root finding.

Integer channel counts make the remaining-weight count a step function of the allocation's
scalar (FT's kept fraction, PFP's eps), so Brent's root can miss the 0.5% contract; the
adjustment step (:func:`fit_to_budget`) fixes that by moving a few lowest-scored channels.

How many channels each group keeps is the allocation policy's (:mod:`prunebench.pruning.structured_allocation`);
this module holds what every policy shares. Option ``round_to`` (R > 1) trades that exactness for speed on real
hardware: every group keeps a multiple of R channels (or all of them), because CPU and GPU convolution kernels work on blocks
of channels (16 floats per AVX-512 register; tensor-core tiles of 8-16 on GPUs) and a layer of 23
channels costs what one of 32 does. The adjustment step then moves whole blocks
(:func:`fit_blocks`), so the achieved ratio is as close as the block granularity allows rather
than within 0.5% (a warning says by how much when it is not).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from prunebench.errors import UserError
from prunebench.pruning.selection import module_name
from prunebench.pruning.structured import ChannelStructure, analyse, example_input_for
from prunebench.tolerances import RATIO_TOLERANCE


@dataclass
class Problem:
    """One structured pruning call: the channel structure, what is left, and the weight budget."""

    struct: ChannelStructure
    counts: dict[str, Tensor]
    alive: Tensor  # bool[n]: channels not yet fully pruned (cascade)
    total: int  # prunable weights
    target: float  # prunable weights to keep: (1 - ratio) * total
    tol: float  # the adjustment step aims at |kept - target| <= tol
    example: Tensor  # the tracing input

    def current_ratio(self) -> float:
        """Prune ratio of the masks this call started from."""
        return 1.0 - sum(float(c.sum()) for c in self.counts.values()) / self.total

    def keep_floor(self) -> Tensor:
        """The sparsest admissible keep vector: the best alive channel of every group."""
        return self.alive & (self.struct.rank_in_group(torch.zeros(self.struct.n), self.alive) < 1)


def setup(model: nn.Module, state, ratio: float, ctx, method: str, example: Tensor | None = None,
          input_shape: Sequence[int] | None = None) -> Problem:
    """Validate the call and build the :class:`Problem` (UserError if nothing can be pruned).
    ``method`` names the caller in messages; ``input_shape`` (C, H, W) overrides the tracing shape."""
    from prunebench.pruning.base import check_ratio

    ratio = check_ratio(ratio)
    example = example if example is not None else example_input_for(model, ctx.data, input_shape)
    names = [module_name(k) for k in state.masks]
    struct = analyse(model, names, example)
    if struct.n == 0:
        why = "; ".join(sorted({f"{g.root}: {g.reason}" for g in struct.groups}))[:400]
        raise UserError(f"structured method {method!r} finds no channel group of {type(model).__name__} it can remove "
                        f"as a whole ({why}); use an unstructured method or select the coupled layers")
    counts = struct.counts(state.masks)
    total = state.total
    # aim well inside the 0.5%-relative contract so rounding never breaks it
    tol = max(0.5, 1e-3 * ratio * total)
    return Problem(struct, counts, struct.alive(state.masks, counts), total, (1.0 - ratio) * total, tol, example)


def rounded_counts(k: Tensor, live: Tensor, multiple: int) -> Tensor:
    """Per-group kept-channel counts rounded to the nearest multiple of ``multiple`` (at least one
    block, at most the alive channels). Monotone in ``k``, so root finding over it still works."""
    if multiple <= 1:
        return k
    r = (k + multiple // 2) // multiple * multiple
    return torch.minimum(torch.maximum(r, torch.full_like(r, multiple)), live)


def closest_root(excess, lo: float, hi: float, xtol: float) -> float:
    """The scalar in [lo, hi] whose allocation lands closest to the budget, ``excess`` (kept minus
    budget) being a monotone step function: Brent's root, then the better side of the step it
    stopped on; an endpoint when the budget is out of the range's reach."""
    from scipy.optimize import brentq

    e_lo, e_hi = excess(lo), excess(hi)
    if e_lo * e_hi >= 0:
        return lo if abs(e_lo) <= abs(e_hi) else hi
    root = brentq(excess, lo, hi, xtol=xtol, maxiter=500)
    sides = [min(max(root + d, lo), hi) for d in (-4 * xtol, 0.0, 4 * xtol)]
    return min(sides, key=lambda v: abs(excess(v)))


def fit_blocks(prob: Problem, rank: Tensor, k: Tensor, multiple: int, score: Tensor, max_steps: int = 500) -> Tensor:
    """The adjustment step of ``round_to``: per-group kept counts ``k`` (multiples of ``multiple`` or
    all alive channels) move one block at a time while that brings the kept weights closer to the
    budget. Among such moves the one that does not overshoot and costs the least ``score`` per weight
    (removing) or gains the most (reviving) is taken; if every move overshoots, the closest one.
    Returns the keep vector (top-``k`` ranked channels per group)."""
    st = prob.struct
    live = st.per_group(prob.alive)
    score = score.double()

    def keep_of(counts: Tensor) -> Tensor:
        return prob.alive & (rank < counts[st.group_of])

    kept = st.remaining(keep_of(k), prob.counts)
    for _ in range(max_steps):
        err = kept - prob.target
        if abs(err) <= prob.tol:
            break
        moves: list[tuple[bool, float, float, Tensor, float]] = []  # (overshoots, key, |new err|, counts, kept)
        for g in range(len(st.groups)):
            cur, cap = int(k[g]), int(live[g])
            new = (cur - 1) // multiple * multiple if err > 0 else min(cap, (cur // multiple + 1) * multiple)
            if new == cur or new < min(multiple, cap) or new <= 0:
                continue
            trial = k.clone()
            trial[g] = new
            r = st.remaining(keep_of(trial), prob.counts)
            new_err = r - prob.target
            if abs(new_err) >= abs(err) or r == kept:
                continue
            lo, hi = min(cur, new), max(cur, new)
            moved = float(score[prob.alive & (st.group_of == g) & (rank >= lo) & (rank < hi)].sum())
            per_weight = moved / abs(kept - r)
            overshoots = new_err * err < 0 and abs(new_err) > prob.tol
            moves.append((overshoots, per_weight if err > 0 else -per_weight, abs(new_err), trial, r))
        if not moves:
            break
        fitting = [m for m in moves if not m[0]]
        best = min(fitting, key=lambda m: m[1]) if fitting else min(moves, key=lambda m: m[2])
        k, kept = best[3], best[4]
    return keep_of(k)


def check_reachable(prob: Problem, ratio: float, method: str) -> None:
    """UserError if even one channel per group leaves more than the budget."""
    floor = prob.struct.remaining(prob.keep_floor(), prob.counts)
    if floor > prob.target + prob.tol:
        best = 1.0 - floor / prob.total
        raise UserError(f"{method!r} cannot reach prune ratio {ratio:.4f} on this model: keeping one channel per "
                        f"group and the unprunable layers leaves ratio {best:.4f} at most; ask for <= {best:.3f} "
                        "or use an unstructured method")


def fit_to_budget(prob: Problem, keep: Tensor, score: Tensor, max_steps: int = 5000) -> Tensor:
    """The exact adjustment step after root finding (integer channel counts make the parameter
    count a step function, so Brent alone can miss the target).

    Greedy: while more than ``tol`` weights above the budget, remove the lowest-``score`` kept
    channel whose removal does not undershoot by more than ``tol`` (never the last channel of a
    group); while below, revive the highest-scored channel this call removed that fits. If no
    channel fits, the smallest one is toggled when that brings the count closer. ``score`` should
    be comparable across groups (the callers normalise within each group). Each channel is
    toggled at most once, so the loop ends; the best keep vector seen is returned.
    """
    st, counts = prob.struct, prob.counts
    keep = keep.clone() & prob.alive
    gid = st.group_of
    per_group = st.per_group(keep)
    kept = st.remaining(keep, counts)
    best_err, best = abs(kept - prob.target), keep.clone()
    touched = torch.zeros(st.n, dtype=torch.bool)
    for _ in range(max_steps):
        err = kept - prob.target
        if abs(err) <= prob.tol:
            break
        pot = st.potential(keep, counts)
        if err > 0:
            cand = keep & (per_group[gid] > 1) & ~touched & (pot > 0)
            fits = cand & (pot <= err + prob.tol)
            pick_from, lowest_first = fits, True
        else:
            cand = prob.alive & ~keep & ~touched & (pot > 0)
            fits = cand & (pot <= -err + prob.tol)
            pick_from, lowest_first = fits, False
        if bool(fits.any()):
            s = torch.where(pick_from, score.double(), torch.full((st.n,), torch.inf if lowest_first else -torch.inf,
                                                                  dtype=torch.float64))
            c = int(s.argmin() if lowest_first else s.argmax())
        elif bool(cand.any()):
            c = int(torch.where(cand, pot, torch.full_like(pot, torch.inf)).argmin())
            if abs(abs(err) - float(pot[c])) >= abs(err):
                break
        else:
            break
        keep[c] = not bool(keep[c])
        per_group[gid[c]] += 1 if bool(keep[c]) else -1
        touched[c] = True
        kept = st.remaining(keep, counts)
        if abs(kept - prob.target) < best_err:
            best_err, best = abs(kept - prob.target), keep.clone()
    return _swap_refine(prob, best, score)


def _edge(score: Tensor, flags: Tensor, group_of: Tensor, ngroups: int, lowest: bool) -> Tensor:
    """bool[n]: among ``flags``, the lowest- (or highest-) scored channel(s) of each group."""
    fill = torch.inf if lowest else -torch.inf
    s = torch.where(flags, score.double(), torch.full(score.shape, fill, dtype=torch.float64))
    ext = torch.full((ngroups,), fill, dtype=torch.float64).scatter_reduce(0, group_of, s, "amin" if lowest else "amax")
    return flags & (s == ext[group_of])


def _swap_refine(prob: Problem, keep: Tensor, score: Tensor, max_swaps: int = 64) -> Tensor:
    """Second half of the adjustment step, needed only where channels are coarse against the
    tolerance (small models): swap a kept channel a for a removed channel b (of another group)
    with a different footprint, choosing the pair whose footprint difference best cancels the
    error (sort + searchsorted, O(n log n)), while that brings the count closer to the budget.
    a is always the lowest-scored kept channel of its group and b the highest-scored removed one,
    so within every group the kept channels still outscore the removed ones."""
    st, counts = prob.struct, prob.counts
    kept = st.remaining(keep, counts)
    for _ in range(max_swaps):
        err = kept - prob.target
        if abs(err) <= prob.tol:
            break
        pot = st.potential(keep, counts)
        per_group = st.per_group(keep)
        ng = len(st.groups)
        a_ids = (_edge(score, keep & prob.alive, st.group_of, ng, True) & (per_group[st.group_of] > 1)
                 & (pot > 0)).nonzero().flatten()
        b_ids = (_edge(score, prob.alive & ~keep, st.group_of, ng, False) & (pot > 0)).nonzero().flatten()
        if a_ids.numel() == 0 or b_ids.numel() == 0:
            break
        pb, order = torch.sort(pot[b_ids])
        want = pot[a_ids] - err  # new err = err - pot[a] + pot[b] -> 0
        pos = torch.searchsorted(pb, want).clamp(max=pb.numel() - 1)
        cand = torch.stack([pos, (pos - 1).clamp(min=0)])
        miss = (pb[cand] - want).abs()
        which = miss.argmin(0)
        j = cand[which, torch.arange(a_ids.numel())]
        best_a = int(miss[which, torch.arange(a_ids.numel())].argmin())
        a, b = int(a_ids[best_a]), int(b_ids[order[j[best_a]]])
        trial = keep.clone()
        trial[a], trial[b] = False, True
        new = st.remaining(trial, counts)
        if abs(new - prob.target) >= abs(err):
            break
        keep, kept = trial, new
    return keep


def normalised(score: Tensor, struct: ChannelStructure, alive: Tensor) -> Tensor:
    """Scores divided by their group's mean over alive channels (comparable across groups)."""
    s = score.to(torch.float64).clamp(min=0)
    sums = torch.zeros(len(struct.groups), dtype=torch.float64).index_add_(0, struct.group_of, torch.where(alive, s, 0.0))
    cnt = struct.per_group(alive).clamp(min=1).double()
    mean = (sums / cnt)[struct.group_of]
    return torch.where(mean > 0, s / mean.clamp(min=1e-300), s)


def finish(prob: Problem, keep: Tensor, state, method: str, ratio: float, round_to: int = 1) -> dict[str, Tensor]:
    """Expand ``keep`` to weight masks and warn if the 0.5% contract could not be met."""
    import warnings

    masks = prob.struct.expand(keep, state.masks)
    achieved = 1.0 - sum(int(m.count_nonzero()) for m in masks.values()) / prob.total
    if abs(achieved - ratio) > RATIO_TOLERANCE * ratio and prob.current_ratio() < ratio:
        why = (f"round_to={round_to} keeps whole blocks of channels" if round_to > 1
               else "channel granularity too coarse for this model")
        warnings.warn(f"{method}: achieved prune ratio {achieved:.4f} misses the target {ratio:.4f} by more than 0.5% "
                      f"({why})", stacklevel=5)  # finish < prune_channels < method < its options wrapper < caller
    return masks
