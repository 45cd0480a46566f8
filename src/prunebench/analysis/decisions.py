"""Prune potential with its uncertainty: per-ratio verdicts, PP intervals, resolution and uninformative flags.

For every (method, distribution), each tested ratio's paired Delta (:mod:`prunebench.analysis.paired`)
gets a verdict against delta: confidently ``within``, confidently ``beyond``, or ``inconclusive``.
The prune potential (Liebenwein et al., "Lost in Pruning", MLSys 2021: the largest tested ratio whose
error stays within delta of the parent's) is computed on the repetition-averaged Delta, and again
under every bootstrap replicate; the replicates give its interval. All comparisons share one
:class:`~prunebench.analysis.paired.Resampler`, so group means, method differences and slopes are
coherent.

Per distribution:

* **resolution**: the median interval half-width of the models whose measured Delta lies in
  [0, 2 delta], where the prune-potential verdict is decided (else of the model nearest delta).
  A Delta smaller than the resolution cannot be told from 0; a distribution whose resolution is
  coarser than delta is flagged ``coarse`` and never ranked (left out of group aggregates and findings);
* **uninformative**: the parent's accuracy is at most ``chance_factor`` x chance (e.g. a large-eps
  attack): pruning cannot be judged there. Flagged, left out of aggregates and findings.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from prunebench.analysis.paired import CONFIDENCE, INCONCLUSIVE, N_BOOT, TOL, WITHIN, Interval, Resampler, wrong_diff
from prunebench.analysis.rows import Row, accuracy_keys, evaluator_of, parents_by_rep, pruned_rows, summary_distributions, value

CHANCE_FACTOR = 2.0


@dataclass(frozen=True)
class RatioVerdict:
    """One tested ratio of one method on one distribution."""

    target_ratio: float
    ratio: float  # achieved, mean over repetitions
    delta: Interval  # err(pruned) - err(parent), paired
    verdict: str  # within | beyond | inconclusive
    reps: int


@dataclass(frozen=True)
class Potential:
    """Prune potential of one method on one distribution (or an aggregate over a group: ``aggregate`` mean/min)."""

    method: str
    distribution: str
    group: str
    pp: Interval  # point estimate on the repetition-averaged Delta, bootstrap interval
    ratios: tuple[RatioVerdict, ...] = ()
    aggregate: str | None = None
    flags: tuple[str, ...] = ()  # coarse | uninformative


@dataclass(frozen=True)
class DistributionInfo:
    name: str
    evaluator: str
    n_examples: int
    draws: int
    parent_acc: float | None
    resolution: float | None
    coarse: bool
    uninformative: bool
    reason: str = ""

    @property
    def ranked(self) -> bool:
        return not (self.coarse or self.uninformative) and self.resolution is not None


@dataclass
class Decisions:
    """Everything decided with uncertainty from one study; ``available`` False when no outcomes were recorded."""

    delta: float
    level: float
    n_boot: int
    reps: int
    distributions: dict[str, DistributionInfo] = field(default_factory=dict)
    potentials: list[Potential] = field(default_factory=list)
    available: bool = True
    note: str = ""
    # bootstrap replicates kept for findings: (method, distribution) -> (ratios (T,), point (T,), boot (T, B))
    replicates: dict[tuple[str, str], tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)
    pp_boot: dict[tuple[str, str], np.ndarray] = field(default_factory=dict, repr=False)
    resampler: Resampler | None = field(default=None, repr=False)

    def potential(self, method: str, distribution: str) -> Potential | None:
        return next((p for p in self.potentials if p.method == method and p.distribution == distribution), None)

    def by_ratio(self, method: str, distribution: str | None) -> dict[float, tuple[float, np.ndarray]]:
        """target ratio -> (point Delta, its bootstrap replicates) of ``method`` on ``distribution``; differences of
        these between methods of the same repetitions are paired (one resample for the whole study)."""
        pot = self.potential(method, distribution) if distribution else None
        rep = self.replicates.get((method, distribution)) if distribution else None
        if pot is None or rep is None:
            return {}
        _, point, boot = rep
        return {rv.target_ratio: (float(point[i]), boot[i]) for i, rv in enumerate(pot.ratios)}


def _pp(ratios: np.ndarray, deltas: np.ndarray, delta: float) -> np.ndarray:
    """Largest ratio whose Delta <= delta (0 if none), along axis 0 of ``deltas`` (T,) or (T, B)."""
    ok = deltas <= delta + TOL
    r = ratios.reshape((-1,) + (1,) * (deltas.ndim - 1))
    return np.where(ok, r, 0.0).max(0) if len(ratios) else np.zeros(deltas.shape[1:])


def decide(rows: Sequence[Row], outcomes: Mapping[str, Mapping[str, np.ndarray]], delta: float, *,
           level: float = CONFIDENCE, n_boot: int = N_BOOT, seed: int = 0, num_classes: int | None = None,
           chance_factor: float = CHANCE_FACTOR, first: str | None = None) -> Decisions:
    """Paired decisions for every (method, distribution) of a study's rows (distribution ``first``, the
    reference, and its group first); see the module docstring."""
    parents = parents_by_rep(rows)
    reps = sorted(parents, key=str)
    keys = accuracy_keys(rows, first)
    summaries = summary_distributions(keys)
    dec = Decisions(delta, level, n_boot, len(reps))
    leaf_dists = [d for d in keys if d not in summaries]
    sizes = [len(outcomes[p["model_key"]][f"correct/{d}"]) for p in parents.values() for d in leaf_dists
             if f"correct/{d}" in outcomes.get(p["model_key"], {})]
    if not sizes:
        dec.available, dec.note = False, ("no per-example outcomes recorded (a run made before prunebench recorded "
                                          "them): intervals and verdicts unavailable, point estimates only")
        return dec
    res = Resampler(max(sizes), len(reps), n_boot, seed)
    dec.resampler = res
    rep_index = {r: i for i, r in enumerate(reps)}
    groups: dict[tuple[str, Any], list[Row]] = defaultdict(list)
    for row in pruned_rows(rows):
        groups[(str(row["method"]), value(row, "target_ratio"))].append(row)
    methods = sorted({m for m, _ in groups})
    chance = 1.0 / num_classes if num_classes else None
    halfwidths: dict[str, list[tuple[float, float]]] = defaultdict(list)
    per_dist: dict[str, list[Potential]] = defaultdict(list)
    for dist in leaf_dists:
        tag = f"correct/{dist}"
        p_all = {r: outcomes.get(p["model_key"], {}).get(tag) for r, p in parents.items()}
        p_out = {r: o for r, o in p_all.items() if o is not None}
        if not p_out:
            continue
        shape = next(iter(p_out.values())).shape
        p_acc = float(np.mean([o.mean() for o in p_out.values()]))
        for method in methods:
            targets = sorted(t for m, t in groups if m == method and t is not None)
            diffs, present, ratios, used = [], [], [], []
            for t in targets:
                d = np.zeros((len(reps), shape[0]))
                pres = np.zeros(len(reps), bool)
                achieved = []
                for row in groups[(method, t)]:
                    r = row.get("rep", 0)
                    q = outcomes.get(row["model_key"], {}).get(tag)
                    if r not in p_out or q is None or q.shape != p_out[r].shape:
                        continue
                    d[rep_index[r]] = wrong_diff(q, p_out[r])
                    pres[rep_index[r]] = True
                    achieved.append(value(row, "prune_ratio") or 0.0)
                if pres.any():
                    diffs.append(d)
                    present.append(pres)
                    ratios.append(float(np.mean(achieved)))
                    used.append(t)
            if not diffs:
                continue
            point, boot = res.deltas(np.stack(diffs), np.stack(present))
            rat = np.asarray(ratios)
            verdicts = []
            for i, t in enumerate(used):
                iv = Interval.from_samples(point[i], boot[i], level)
                verdicts.append(RatioVerdict(float(t), ratios[i], iv, iv.verdict(delta), int(present[i].sum())))
                halfwidths[dist].append((float(point[i]), iv.half_width))
            pp_b = _pp(rat, boot, delta)
            dec.replicates[(method, dist)] = (rat, point, boot)
            dec.pp_boot[(method, dist)] = pp_b
            pp_iv = Interval.from_samples(float(_pp(rat, point, delta)), pp_b, level)
            pot = Potential(method, dist, evaluator_of(keys[dist]), pp_iv, tuple(verdicts))
            per_dist[dist].append(pot)
        resolution = _resolution(halfwidths.get(dist, []), delta)
        unin = chance is not None and p_acc <= chance_factor * chance
        coarse = resolution is not None and resolution > delta + TOL
        reason = (f"parent accuracy {100 * p_acc:.1f}% is near chance ({100 * chance:.1f}%)" if unin and chance
                  else f"resolution {100 * resolution:.2f} pp is coarser than delta {100 * delta:g} pp: evaluate on more "
                       "examples" if coarse and resolution is not None else "")
        dec.distributions[dist] = DistributionInfo(dist, evaluator_of(keys[dist]), shape[0], int(np.prod(shape[1:]) or 1),
                                                   p_acc, resolution, coarse, unin, reason)
        flags = tuple(f for f, on in (("uninformative", unin), ("coarse", coarse)) if on)
        dec.potentials.extend(Potential(p.method, p.distribution, p.group, p.pp, p.ratios, None, flags) for p in per_dist[dist])
    _aggregates(dec, methods)
    return dec


def _resolution(points: list[tuple[float, float]], delta: float) -> float | None:
    """Median half-width of the comparisons with Delta in [0, 2 delta]; else the one nearest delta."""
    if not points:
        return None
    near = [hw for pt, hw in points if -TOL <= pt <= 2 * delta + TOL]
    if near:
        return float(np.median(near))
    return float(min(points, key=lambda p: abs(p[0] - delta))[1])


def _aggregates(dec: Decisions, methods: Sequence[str]) -> None:
    """Per method and evaluator group (>= 2 ranked distributions): PP mean and min over the group, per replicate."""
    by_group: dict[str, list[str]] = defaultdict(list)
    for d, info in dec.distributions.items():
        if info.ranked:
            by_group[info.evaluator].append(d)
    for method in methods:
        for group, dists in by_group.items():
            have = [d for d in dists if (method, d) in dec.pp_boot]
            if len(have) < 2:
                continue
            pts = np.array([dec.potential(method, d).pp.estimate for d in have])  # type: ignore[union-attr]
            boots = np.stack([dec.pp_boot[(method, d)] for d in have])
            for agg, fn in (("mean", np.mean), ("min", np.min)):
                name = f"{group} ({agg})"
                samples = fn(boots, axis=0)
                dec.pp_boot[(method, name)] = samples
                dec.potentials.append(Potential(method, name, group, Interval.from_samples(float(fn(pts)), samples, dec.level),
                                                aggregate=agg))


def verdict_counts(pot: Potential) -> dict[str, int]:
    out = {WITHIN: 0, "beyond": 0, INCONCLUSIVE: 0}
    for rv in pot.ratios:
        out[rv.verdict] += 1
    return out


__all__ = ["CHANCE_FACTOR", "Decisions", "DistributionInfo", "Potential", "RatioVerdict", "decide", "verdict_counts"]
