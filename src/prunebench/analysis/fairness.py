"""Verdicts on the fair-comparison findings of Wang et al. 2023, "Why is the State of Neural Network Pruning so
Confusing?" (shared/reference/study.md), from a study's own paired bootstrap (:func:`decide` replicates).

Rows come from a study with a retraining-LR axis (``retrain_lrs``: rows carry ``pipeline``, ``retrain_lr``,
``retrain_epochs``) and / or scratch baselines (rows carry ``scratch``: the setup). Every comparison is of two
models of the same repetition against the same parent on the same examples, so differences of their Deltas are
paired; each statistic is pooled (mean) over the prune ratios (and pipelines) it covers, with a per-cell breakdown.

1. ``lr-short``: under the shortest retraining budget, the largest retraining LR beats the smallest
   (Wang et al.: a larger LR wins because pruning damages trainability). Statistic: err(smallest LR) - err(largest).
2. ``lr-gap``: the advantage of the larger LR shrinks with the longer budget. Statistic: the advantage under the
   shortest budget minus the advantage under the longest.
3. ``inherit-<setup>``: inheriting the parent's weights beats training the pruned architecture from scratch under
   that setup. Statistic: err(scratch) - err(pruned), the pruned model retrained at the largest LR of its
   pipeline (the paper's recommendation), pooled over ratios and pipelines. Wang et al.: no value under S3,
   a value under SX-A.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from prunebench.analysis.decisions import Decisions
from prunebench.analysis.findings import NOT_CHECKED, Finding, breakdown, pooled, sign_verdict as _verdict
from prunebench.analysis.paired import Interval
from prunebench.analysis.rows import Row, pruned_rows, value

Reps = dict[float, tuple[float, np.ndarray]]  # target ratio -> (point Delta, bootstrap replicates)


@dataclass
class FairAnalysis:
    reference: str | None
    level: float
    budgets: dict[str, float] = field(default_factory=dict)  # pipeline -> retraining epochs
    lrs: dict[str, dict[float, str]] = field(default_factory=dict)  # pipeline -> LR -> row label
    findings: list[Finding] = field(default_factory=list)


def is_fair_study(rows: Sequence[Row]) -> bool:
    """True when the rows hold a retraining-LR sweep or scratch baselines."""
    pr = pruned_rows(rows)
    return any(r.get("scratch") for r in pr) or len({value(r, "retrain_lr") for r in pr if r.get("pipeline")}) > 1


def _diff(a: Reps, b: Reps) -> Reps:
    """Per shared ratio: Delta(a) - Delta(b) = err(a) - err(b), paired."""
    return {t: (a[t][0] - b[t][0], a[t][1] - b[t][1]) for t in sorted(set(a) & set(b))}


def _text(stat: str, iv: Interval, parts: Sequence[tuple[float, np.ndarray]], level: float, what: str) -> str:
    return (f"{stat} = {100 * iv.estimate:+.2f} pp [{100 * iv.low:+.2f}, {100 * iv.high:+.2f}] at {100 * level:g}%, "
            f"mean over {len(parts)} {what}; {breakdown(parts, level)}")


def analyze_fairness(rows: Sequence[Row], dec: Decisions, reference: str | None) -> FairAnalysis:
    """The fair-comparison verdicts of a study's rows (``dec``: its :func:`decide` result)."""
    out = FairAnalysis(reference, dec.level)
    lrs: dict[str, dict[float, str]] = defaultdict(dict)
    scratch: dict[str, dict[str, str]] = defaultdict(dict)  # setup -> pipeline -> label
    for r in pruned_rows(rows):
        pipe, lr = r.get("pipeline"), value(r, "retrain_lr")
        if not pipe:
            continue
        if r.get("scratch"):
            scratch[str(r["scratch"])][str(pipe)] = str(r["method"])
        elif lr is not None:
            lrs[str(pipe)][lr] = str(r["method"])
            out.budgets[str(pipe)] = float(value(r, "retrain_epochs") or 0)
    out.lrs = dict(lrs)
    level = dec.level
    swept = {p: d for p, d in lrs.items() if len(d) > 1}

    def advantage(pipe: str) -> Reps:
        d = swept[pipe]
        return _diff(dec.by_ratio(d[min(d)], reference), dec.by_ratio(d[max(d)], reference))

    claim1 = "under the shortest retraining budget, the largest retraining LR beats the smallest"
    claim2 = "the larger retraining LR's advantage shrinks with a longer retraining budget"
    if not swept:
        out.findings += [Finding("lr-short", claim1, NOT_CHECKED, "not checked: the study has no retraining-LR axis "
                                 "(retrain_lrs)"), Finding("lr-gap", claim2, NOT_CHECKED, "not checked: no LR axis")]
    else:
        short = min(swept, key=lambda p: (out.budgets.get(p, 0), p))
        long = max(swept, key=lambda p: (out.budgets.get(p, 0), p))
        adv = advantage(short)
        parts = list(adv.values())
        iv = pooled(parts, level)
        lo, hi = min(swept[short]), max(swept[short])
        out.findings.append(Finding("lr-short", claim1, _verdict(iv) if iv else NOT_CHECKED, _text(
            f"{short} ({out.budgets.get(short, 0):g} epochs): err(lr {lo:g}) - err(lr {hi:g})", iv, parts, level,
            "prune ratios") if iv else "not checked: no ratio evaluated at both LRs", iv))
        if out.budgets.get(long, 0) > out.budgets.get(short, 0):
            gap = list(_diff(adv, advantage(long)).values())
            iv2 = pooled(gap, level)
            out.findings.append(Finding("lr-gap", claim2, _verdict(iv2) if iv2 else NOT_CHECKED, _text(
                f"advantage at {out.budgets[short]:g} epochs - advantage at {out.budgets[long]:g} epochs", iv2, gap,
                level, "prune ratios") if iv2 else "not checked: no ratio evaluated under both budgets", iv2))
        else:
            out.findings.append(Finding("lr-gap", claim2, NOT_CHECKED, "not checked: every swept pipeline has the same "
                                        "retraining budget (add a pipeline with more retraining epochs)"))
    for setup, by_pipe in sorted(scratch.items()):
        claim = f"inheriting the parent's weights beats training from scratch under {setup}"
        parts = []
        for pipe, label in by_pipe.items():
            d = lrs.get(pipe)
            if d:
                parts += list(_diff(dec.by_ratio(label, reference), dec.by_ratio(d[max(d)], reference)).values())
        iv = pooled(parts, level)
        out.findings.append(Finding(f"inherit-{setup}", claim, _verdict(iv) if iv else NOT_CHECKED, _text(
            "err(scratch) - err(pruned, largest LR)", iv, parts, level, "pipeline x ratio cells") if iv else
            "not checked: no pruned pipeline evaluated beside its scratch baseline", iv))
    return out


__all__ = ["FairAnalysis", "analyze_fairness", "is_fair_study"]
