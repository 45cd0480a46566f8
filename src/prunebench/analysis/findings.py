"""Verdicts on the reference findings, computed from a study's own paired bootstrap replicates.

Each finding is a statistic computed under every replicate of the study's joint bootstrap
(:mod:`prunebench.analysis.paired`); its interval decides: ``holds`` when the whole interval is on the
claimed side of 0, ``does not hold`` when the whole interval is on the other side (or at 0 for a
strict claim), ``inconclusive`` otherwise; ``not checked`` when the study lacks what the claim needs.
Findings (Liebenwein et al., "Lost in Pruning", MLSys 2021; shared/reference/evaluation.md):

1. ``structured``: unstructured methods reach a higher nominal prune potential than structured
   ones. Statistic: PP of the weakest unstructured method minus PP of the strongest structured one.
2. ``shift``: prune potential under distribution shift is lower than on the nominal data.
   Statistic: nominal PP minus the mean PP over the ranked shifted distributions, averaged over methods.
3. ``agreement``: pruned networks (at ratios within their nominal PP) agree with their parent under
   input noise more than a separately trained network does. Statistic per noise level: mean over
   those models of agree(pruned, parent) - agree(baseline, parent) on the same noisy inputs.

Excess-error slopes (per method, through the origin, vs prune ratio) get intervals the same way.
Random baselines are not pruning methods in these claims' sense; they are left out.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from prunebench.analysis.decisions import Decisions
from prunebench.analysis.paired import Interval, wrong_diff
from prunebench.analysis.rows import Row, parents_by_rep, pruned_rows, value
from prunebench.tolerances import RATIO_TOLERANCE

HOLDS, FAILS, OPEN, NOT_CHECKED = "holds", "does not hold", "inconclusive", "not checked"
# Prune potentials are *achieved* prune ratios, which a method may miss its target by up to RATIO_TOLERANCE
# relative (at most that much absolute, ratios being <= 1). Two methods that qualify at the same target ratio
# differ by that rounding alone, so PP differences smaller than this are ties: never a direction a verdict may
# rest on.
PP_TIE = RATIO_TOLERANCE


NO_REFERENCE = "not checked: the study has no reference (nominal) distribution"


@dataclass(frozen=True)
class Finding:
    name: str
    claim: str
    verdict: str
    text: str
    statistic: Interval | None = None


def _verdict(iv: Interval, strict: bool = True) -> str:
    if iv.low > 0:
        return HOLDS
    if iv.high < 0 or (strict and iv.high <= 0):
        return FAILS
    return OPEN


def pooled(parts: Sequence[tuple[float, np.ndarray]], level: float) -> Interval | None:
    """The mean of several paired statistics (point, bootstrap replicates) with its interval; None for none."""
    if not parts:
        return None
    return Interval.from_samples(float(np.mean([p for p, _ in parts])), np.mean([b for _, b in parts], axis=0), level)


def sign_verdict(iv: Interval) -> str:
    """``holds`` above 0, ``does not hold`` below 0, else ``inconclusive`` (the whole interval decides)."""
    return _verdict(iv, strict=False)


def breakdown(parts: Sequence[tuple[float, np.ndarray]], level: float) -> str:
    """How the cells pooled into a verdict decide one by one (a pooled mean can hide cells that disagree)."""
    got = [sign_verdict(Interval.from_samples(p, b, level)) for p, b in parts]
    return f"cell by cell {got.count(HOLDS)} hold, {got.count(FAILS)} do not, {got.count(OPEN)} inconclusive"


def _untie(x: np.ndarray | float) -> np.ndarray:
    """PP differences within :data:`PP_TIE` of 0 set to exactly 0."""
    x = np.asarray(x, dtype=float)
    return np.where(np.abs(x) < PP_TIE, 0.0, x)


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def _iv_text(iv: Interval, unit: str = " points") -> str:
    return f"{100 * iv.estimate:+.1f}{unit} [{100 * iv.low:+.1f}, {100 * iv.high:+.1f}] at {100 * iv.level:g}%"


def structured_finding(dec: Decisions, kind: Callable[[str], tuple[bool | None, bool]], nominal: str | None) -> Finding:
    """``kind(method) -> (structured or None if unknown, is_baseline)``; ``nominal``: the reference distribution."""
    claim = ("unstructured methods (e.g. WT, SiPP) reach a higher nominal prune potential than structured ones "
             "(e.g. FT, PFP); ResNet20/CIFAR-10 reference: WT 84.9%, SiPP 84.9%, FT 52.1%, PFP 44.9%")
    if nominal is None:
        return Finding("structured", claim, NOT_CHECKED, NO_REFERENCE)
    have = {m for (m, d) in dec.pp_boot if d == nominal}
    uns = sorted(m for m in have if kind(m) == (False, False))
    st = sorted(m for m in have if kind(m) == (True, False))
    if not dec.available or not uns or not st:
        missing = "outcomes" if not dec.available else "unstructured" if not uns else "structured"
        return Finding("structured", claim, NOT_CHECKED, f"not checked: the run has no {missing} method with a nominal "
                                                         "prune potential")
    info = dec.distributions.get(nominal)
    if info is not None and not info.ranked:
        return Finding("structured", claim, NOT_CHECKED, f"not checked: the nominal distribution is flagged ({info.reason})")
    pt = {m: dec.potential(m, nominal).pp.estimate for m in uns + st}  # type: ignore[union-attr]
    boot = np.min([dec.pp_boot[(m, nominal)] for m in uns], 0) - np.max([dec.pp_boot[(m, nominal)] for m in st], 0)
    iv = Interval.from_samples(float(_untie(min(pt[m] for m in uns) - max(pt[m] for m in st))), _untie(boot), dec.level)
    verdict = _verdict(iv)
    fmt = lambda ms: ", ".join(f"{m} {_pct(pt[m])}%" for m in ms)  # noqa: E731
    return Finding("structured", claim, verdict, f"{verdict}: unstructured {fmt(uns)} vs structured {fmt(st)}; weakest "
                                                 f"unstructured minus strongest structured = {_iv_text(iv)}", iv)


def shift_finding(dec: Decisions, shifted: Sequence[str], kind: Callable[[str], tuple[bool | None, bool]],
                  nominal: str | None) -> Finding:
    claim = "prune potential under distribution shift (corruptions) is lower than on the nominal test set"
    if nominal is None:
        return Finding("shift", claim, NOT_CHECKED, NO_REFERENCE)
    ranked = [d for d in shifted if d in dec.distributions and dec.distributions[d].ranked]
    meths = sorted(m for (m, d) in dec.pp_boot if d == nominal and not kind(m)[1]
                   and all((m, s) in dec.pp_boot for s in ranked))
    if not dec.available or not ranked or not meths:
        return Finding("shift", claim, NOT_CHECKED, "not checked: no ranked shifted distribution with outcomes "
                                                    "(or no method evaluated on them)")
    def stat(get: Callable[[str, str], np.ndarray | float]) -> np.ndarray:
        return np.mean([np.asarray(get(m, nominal)) - np.mean([np.asarray(get(m, s)) for s in ranked], 0) for m in meths], 0)

    iv = Interval.from_samples(float(_untie(stat(lambda m, d: dec.potential(m, d).pp.estimate))),  # type: ignore[union-attr]
                               _untie(stat(lambda m, d: dec.pp_boot[(m, d)])), dec.level)
    verdict = _verdict(iv)
    return Finding("shift", claim, verdict, f"{verdict}: nominal PP minus mean PP over {len(ranked)} shifted "
                                            f"distribution(s), averaged over {', '.join(meths)}: {_iv_text(iv)}", iv)


def agreement_finding(dec: Decisions, rows: Sequence[Row], outcomes: Mapping[str, Mapping[str, np.ndarray]],
                      kind: Callable[[str], tuple[bool | None, bool]], nominal: str | None) -> Finding:
    claim = ("pruned networks within their nominal prune potential agree with their parent under input noise more "
             "than a separately trained network of the same architecture does")
    if nominal is None:
        return Finding("agreement", claim, NOT_CHECKED, NO_REFERENCE)
    res = dec.resampler
    parents = parents_by_rep(rows)
    reps = sorted(parents, key=str)
    eps_tags = sorted({t.split("/", 1)[1] for o in outcomes.values() for t in o if t.startswith("baseline_agree/noise-")
                       and t != "baseline_agree/noise-0"}, key=lambda d: float(d.split("-", 1)[1]))
    if res is None or not eps_tags:
        return Finding("agreement", claim, NOT_CHECKED, "not checked: needs noise-similarity with a separately trained "
                                                        "baseline (two or more repetitions)")
    within = []
    for row in pruned_rows(rows):
        m = str(row["method"])
        pot = dec.potential(m, nominal)
        if kind(m)[1] or pot is None or (value(row, "target_ratio") or 0) > pot.pp.estimate + 1e-9:
            continue
        within.append(row)
    if not within:
        return Finding("agreement", claim, NOT_CHECKED, "not checked: no pruned model within its nominal prune potential")
    parts, lows = [], []
    verdicts = []
    for dist in eps_tags:
        diffs, present = [], []
        for row in within:
            o = outcomes.get(row["model_key"], {})
            a, b = o.get(f"agree/{dist}"), o.get(f"baseline_agree/{dist}")
            if a is None or b is None:
                continue
            d = np.zeros((len(reps), len(a)))
            p = np.zeros(len(reps), bool)
            i = reps.index(row.get("rep", 0))
            d[i], p[i] = -wrong_diff(a, b), True  # agree(pruned) - agree(baseline), per image
            diffs.append(d)
            present.append(p)
        if not diffs:
            continue
        point, boot = res.deltas(np.stack(diffs), np.stack(present))
        iv = Interval.from_samples(float(point.mean()), boot.mean(0), dec.level)
        verdicts.append(_verdict(iv, strict=False))
        parts.append(f"{dist}: {_iv_text(iv, ' pp')}")
        lows.append(iv)
    if not verdicts:
        return Finding("agreement", claim, NOT_CHECKED, "not checked: no agreement outcomes recorded")
    verdict = FAILS if FAILS in verdicts else HOLDS if all(v == HOLDS for v in verdicts) else OPEN
    return Finding("agreement", claim, verdict, f"{verdict}: agreement of {len(within)} pruned model(s) minus the "
                                                f"baseline's, per noise level: " + "; ".join(parts), lows[0])


def slope_intervals(dec: Decisions, shifted: Sequence[str], nominal: str | None) -> dict[str, Interval]:
    """Per method: excess-error slope (through the origin) vs prune ratio, with its bootstrap interval.

    Excess error of a model = mean_{D'} Delta(D') - Delta(nominal) (the parent's terms cancel in the
    paired form of Lost in Pruning's definition)."""
    out: dict[str, Interval] = {}
    if nominal is None:
        return out
    ranked = [d for d in shifted if d in dec.distributions and dec.distributions[d].ranked]
    for (m, d), (ratios, point, boot) in dec.replicates.items():
        if d != nominal or not ranked or any((m, s) not in dec.replicates for s in ranked):
            continue
        sh = [dec.replicates[(m, s)] for s in ranked]
        if any(len(r) != len(ratios) or not np.allclose(r, ratios) for r, _, _ in sh):
            continue
        e_pt = np.mean([p for _, p, _ in sh], 0) - point
        e_bt = np.mean([b for _, _, b in sh], 0) - boot
        den = float((ratios ** 2).sum())
        if den <= 0:
            continue
        out[m] = Interval.from_samples(float((ratios * e_pt).sum() / den), (ratios[:, None] * e_bt).sum(0) / den, dec.level)
    return out


__all__ = ["FAILS", "Finding", "HOLDS", "NOT_CHECKED", "OPEN", "agreement_finding", "shift_finding", "slope_intervals",
           "structured_finding"]
