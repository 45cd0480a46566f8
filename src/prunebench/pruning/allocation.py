"""Allocation: how much to prune where, kept apart from importance scores.

Two kinds of rules live here:
  * score -> mask rules: :func:`global_topk` (one threshold over all layers) and
    :func:`uniform_per_layer` (same density in every layer, best scores inside each layer);
  * layer-wise density schemes for pruning at initialization (Liu et al., ICLR 2022, "The
    Unreasonable Effectiveness of Random Pruning"): uniform, uniform+, ER, ERK, ERK+, turned into
    masks by :func:`random_masks`.

Every rule is exact (integer counts) and cascade-safe: a weight already pruned in
``current`` counts as pruned and is never chosen again.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from prunebench.errors import UserError

Masks = dict[str, Tensor]


def keep_count(total: int, ratio: float) -> int:
    """Number of weights to keep so that ``ratio`` of ``total`` is removed (nearest integer)."""
    return int(round((1.0 - ratio) * total))


def _check_keys(scores: Mapping[str, Tensor], current: Mapping[str, Tensor]) -> None:
    if list(scores) != list(current):
        missing = set(current) ^ set(scores)
        if missing:
            raise KeyError(f"scores and masks cover different weights: {sorted(missing)}")


def _top_live(flat: Tensor, live: Tensor, k: int, n_live: int | None = None) -> Tensor:
    """Bool mask (same size as ``flat``) of the ``k`` highest scores among ``live`` entries.

    Exact count; ties at the threshold are broken by position (earlier layer / index wins), so
    the result is deterministic on every device. NaN scores rank lowest. ``n_live`` (the number
    of live entries, if known) saves a pass.
    """
    n_live = int(live.sum()) if n_live is None else n_live
    k = min(int(k), n_live)
    if k <= 0:
        return torch.zeros_like(live)
    if k == n_live:
        return live.clone()
    all_live = n_live == live.numel()
    idx = None if all_live else live.nonzero().squeeze(1)
    vals = flat if all_live else flat[idx]
    if vals.is_floating_point():
        vals = torch.nan_to_num(vals, nan=-math.inf)
    # k-th largest = (n-k+1)-th smallest; kthvalue is a linear-time selection
    thr = vals.kthvalue(n_live - k + 1).values
    chosen = vals > thr
    need = k - int(chosen.sum())
    if need > 0:
        chosen[(vals == thr).nonzero().squeeze(1)[:need]] = True
    if all_live:
        return chosen
    assert idx is not None  # not all_live
    keep = torch.zeros_like(live)
    keep[idx[chosen]] = True
    return keep


def _flat(tensors: Sequence[Tensor], dtype: torch.dtype | None = None) -> Tensor:
    return torch.cat([t.detach().reshape(-1).to(dtype) if dtype else t.detach().reshape(-1) for t in tensors])


def _split(flat: Tensor, like: Mapping[str, Tensor]) -> Masks:
    out: Masks = {}
    start = 0
    for k, t in like.items():
        n = t.numel()
        out[k] = flat[start:start + n].view(t.shape).to(t.device)
        start += n
    return out


def global_topk(scores: Mapping[str, Tensor], current: Mapping[str, Tensor], ratio: float) -> Masks:
    """Keep the top-``(1 - ratio) * total`` scores over all layers together (one global threshold).

    ``total`` counts every prunable weight, pruned or not; already-pruned weights are never
    chosen (they act as score -inf), so if ``ratio`` asks for fewer removals than already made,
    the current masks come back unchanged.
    """
    _check_keys(scores, current)
    dev = next(iter(scores.values())).device
    dtype = torch.promote_types(torch.float32, next(iter(scores.values())).dtype)
    flat = _flat([scores[k].to(dev) for k in current], dtype)
    live = _flat([m.to(dev) for m in current.values()]).bool()
    keep = _top_live(flat, live, keep_count(flat.numel(), ratio))
    return _split(keep, current)


def waterfill(weights: Sequence[float], caps: Sequence[int], total: int) -> list[int]:
    """Integer counts ``n_l = min(cap_l, lam * w_l)`` summing exactly to ``total``.

    Finds the common scale ``lam`` (layers hitting their cap keep the cap, the rest share the
    remainder in proportion to ``w_l``), then rounds by largest remainder (ties: earlier layer).
    Used to keep per-layer rules exact when a cascade left some layers sparser than asked.
    """
    w = [max(0.0, float(x)) for x in weights]
    c = [int(x) for x in caps]
    total = min(int(total), sum(c))
    if total <= 0:
        return [0] * len(w)
    # breakpoints lam_l = cap_l / w_l in increasing order; sum(min(cap, lam w)) is piecewise linear
    order = sorted((i for i in range(len(w)) if w[i] > 0), key=lambda i: c[i] / w[i])
    capped_sum, free_w = 0.0, sum(w[i] for i in order)
    lam = math.inf
    for i in order:
        lam_i = c[i] / w[i]
        if capped_sum + lam_i * free_w >= total:
            lam = (total - capped_sum) / free_w
            break
        capped_sum += c[i]
        free_w -= w[i]
    real = [min(float(c[i]), lam * w[i]) if w[i] > 0 else 0.0 for i in range(len(w))]
    counts = [min(c[i], int(math.floor(real[i] + 1e-9))) for i in range(len(w))]
    short = total - sum(counts)
    rema = sorted((i for i in range(len(w)) if counts[i] < c[i]), key=lambda i: (-(real[i] - counts[i]), i))
    for i in rema:
        if short <= 0:
            break
        counts[i] += 1
        short -= 1
    return counts


def uniform_per_layer(scores: Mapping[str, Tensor], current: Mapping[str, Tensor], ratio: float) -> Masks:
    """Same density in every layer (water-filled around layers already sparser), best scores per layer."""
    _check_keys(scores, current)
    sizes = [m.numel() for m in current.values()]
    caps = [int(m.sum()) for m in current.values()]
    counts = waterfill(sizes, caps, keep_count(sum(sizes), ratio))
    return {k: _top_live(scores[k].detach().reshape(-1), m.reshape(-1).bool(), n).view(m.shape)
            for (k, m), n in zip(current.items(), counts, strict=True)}


# ---------------------------------------------------------------------------------------------
# Layer-wise density schemes (Liu et al. 2022, Sec. 3; reference: sparselearning/core.py)
# ``shapes`` is the ordered ``param name -> weight shape`` of the prunable layers.

def _numel(shape: Sequence[int]) -> int:
    return int(math.prod(shape))


def _check_density(density: float) -> float:
    if not 0.0 < float(density) <= 1.0:
        raise UserError(f"density must be in (0, 1], got {density}; density = 1 - prune ratio")
    return float(density)


def uniform_densities(shapes: Mapping[str, Sequence[int]], density: float) -> dict[str, float]:
    """Every layer gets the overall density."""
    density = _check_density(density)
    return {k: density for k in shapes}


def uniform_plus_densities(shapes: Mapping[str, Sequence[int]], density: float,
                           last_min_density: float = 0.2) -> dict[str, float]:
    """uniform+: first layer dense, last layer at density >= ``last_min_density``, the rest uniform.

    Solves for the common density ``d'`` of the other layers so the overall density is exact:
    ``N_first + max(last_min, d') N_last + d' N_rest = d N``.
    """
    density = _check_density(density)
    keys = list(shapes)
    if len(keys) < 3:
        raise UserError("uniform+ needs at least 3 prunable layers (first dense, last >= 20%, rest shared); use uniform")
    n = {k: _numel(s) for k, s in shapes.items()}
    total = sum(n.values())
    first, last = keys[0], keys[-1]
    rest = total - n[first] - n[last]
    budget = density * total - n[first]
    d_rest = budget / (rest + n[last])  # case: last shares the uniform density
    if d_rest >= last_min_density:
        d_last = d_rest
    else:
        d_last = last_min_density
        d_rest = (budget - d_last * n[last]) / rest
    if d_rest < 0 or d_rest > 1:
        raise UserError(f"density {density} is infeasible for uniform+ (dense first layer, last layer >= "
                        f"{last_min_density}); choose a density above {(n[first] + last_min_density * n[last]) / total:.4f}")
    out = {k: d_rest for k in keys}
    out[first], out[last] = 1.0, d_last
    return out


def _raw_er(shape: Sequence[int], kernel: bool) -> float:
    # ER: (n_in + n_out) / (n_in n_out); ERK adds the kernel dims: sum(shape) / prod(shape)
    if len(shape) >= 3 and kernel:
        return sum(shape) / _numel(shape)
    n_out, n_in = shape[0], _numel(shape[1:])
    return (n_in + n_out) / (n_in * n_out)


def _scaled_densities(shapes: Mapping[str, Sequence[int]], density: float, raw: Mapping[str, float],
                      fixed: Mapping[str, float]) -> dict[str, float]:
    """density_l = eps * raw_l with the iterative dense set (Liu et al. 2022; Evci et al. 2020, RigL).

    eps = (d N - sum_{fixed} f_l N_l - sum_{D} N_l) / sum_{free} raw_l N_l; while max eps raw_l > 1,
    the layer(s) attaining the max join the dense set D and eps is recomputed.
    """
    n = {k: _numel(s) for k, s in shapes.items()}
    total = sum(n.values())
    dense: set[str] = set()
    while True:
        free = [k for k in shapes if k not in dense and k not in fixed]
        budget = density * total - sum(fixed[k] * n[k] for k in fixed) - sum(n[k] for k in dense)
        divisor = sum(raw[k] * n[k] for k in free)
        if not free or divisor <= 0:
            break
        eps = budget / divisor
        top = max(raw[k] for k in free)
        if eps * top <= 1.0:
            break
        dense |= {k for k in free if raw[k] == top}
    if budget < -1e-9 * total:
        raise UserError(f"density {density} is infeasible with the layers kept fixed {sorted(fixed)}; raise the density")
    out = {}
    for k in shapes:
        out[k] = fixed[k] if k in fixed else 1.0 if k in dense else max(0.0, eps * raw[k])
    return out


def er_densities(shapes: Mapping[str, Sequence[int]], density: float) -> dict[str, float]:
    """Erdos-Renyi: density proportional to (n_in + n_out) / (n_in n_out)."""
    density = _check_density(density)
    return _scaled_densities(shapes, density, {k: _raw_er(s, kernel=False) for k, s in shapes.items()}, {})


def erk_densities(shapes: Mapping[str, Sequence[int]], density: float) -> dict[str, float]:
    """Erdos-Renyi-Kernel: density proportional to (n_in + n_out + kh + kw) / (n_in n_out kh kw)."""
    density = _check_density(density)
    return _scaled_densities(shapes, density, {k: _raw_er(s, kernel=True) for k, s in shapes.items()}, {})


def erk_plus_densities(shapes: Mapping[str, Sequence[int]], density: float,
                       last_density: float = 1.0) -> dict[str, float]:
    """ERK+: the last layer (the classifier) is held at ``last_density``; ERK shares the rest."""
    density = _check_density(density)
    last = list(shapes)[-1]
    raw = {k: _raw_er(s, kernel=True) for k, s in shapes.items()}
    return _scaled_densities(shapes, density, raw, {last: _check_density(last_density)})


DENSITY_SCHEMES = {
    "uniform": uniform_densities,
    "uniform-plus": uniform_plus_densities,
    "er": er_densities,
    "erk": erk_densities,
    "erk-plus": erk_plus_densities,
}


def random_scores(current: Mapping[str, Tensor], generator: torch.Generator) -> dict[str, Tensor]:
    """Uniform noise in [0, 1) per weight, drawn on CPU layer after layer from ``generator`` (identical on every
    device): the random criterion. Kept weights = the top noise values, or those below the density (Bernoulli)."""
    return {k: torch.rand(m.numel(), generator=generator).view(m.shape) for k, m in current.items()}


def masks_at_densities(scores: Mapping[str, Tensor], densities: Mapping[str, float],
                       current: Mapping[str, Tensor]) -> Masks:
    """Per layer, keep the ``round(density_l * N_l)`` highest scores among the weights ``current`` keeps.

    The one score -> mask rule of sparse initialisation: any criterion (random noise, magnitude, SNIP,
    GraSP) with any layer-wise density scheme. Counts are exact and water-filled: a layer that a cascade
    left sparser than asked keeps what it has and the others absorb the difference, so the total is
    ``round(sum_l density_l N_l)``.
    """
    keys = list(current)
    if set(densities) != set(keys) or set(scores) != set(keys):
        raise KeyError(f"densities, scores and masks cover different weights: "
                       f"{sorted((set(densities) | set(scores)) ^ set(keys))}")
    sizes = [current[k].numel() for k in keys]
    caps = [int(current[k].sum()) for k in keys]
    targets = [densities[k] * s for k, s in zip(keys, sizes, strict=True)]
    counts = waterfill(targets, caps, int(round(sum(targets))))
    out: Masks = {}
    for k, n in zip(keys, counts, strict=True):
        m, s = current[k], scores[k].detach().reshape(-1)
        out[k] = _top_live(s, m.reshape(-1).to(s.device).bool(), n).view(m.shape).to(m.device)
    return out


def random_masks(densities: Mapping[str, float], current: Mapping[str, Tensor], *, exact: bool = True,
                 generator: torch.Generator | None = None) -> Masks:
    """Random masks at the given per-layer densities, drawn among the weights ``current`` keeps.

    ``exact=True`` keeps exactly ``round(density * N_l)`` weights per layer (:func:`masks_at_densities`
    of :func:`random_scores`); ``exact=False`` draws Bernoulli(density) per weight as the reference code
    does (realised densities drift). Random numbers are drawn on CPU from ``generator`` so masks are
    identical on every device.
    """
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    if set(densities) != set(current):
        raise KeyError(f"densities and masks cover different weights: {sorted(set(densities) ^ set(current))}")
    noise = random_scores(current, gen)
    if exact:
        return masks_at_densities(noise, densities, current)
    return {k: (noise[k] < densities[k]).to(m.device) & m.bool() for k, m in current.items()}
