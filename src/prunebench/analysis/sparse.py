"""The sparse-training analysis (Liu et al., "The Unreasonable Effectiveness of Random Pruning", ICLR 2022):
accuracy vs sparsity per run and model size against the dense model of the same size, the gap to dense vs
size, robustness vs dense, realised layer densities, and verdicts on the paper's findings.

Every comparison is paired: a sparse model is compared with the dense model of its own size and seed (the
study makes size x seed the repetition), on the same test examples, under the study's one joint bootstrap
(:func:`prunebench.analysis.decisions.decide`); differences between runs or sizes are differences of those
replicates, so their intervals are coherent. Verdicts follow :mod:`prunebench.analysis.findings`: ``holds``
when the whole interval is on the claimed side of 0, ``does not hold`` when it is on the other side,
``inconclusive`` otherwise. Findings checked, each pooled (mean) over the sparsities and sizes it applies to:

1. ``erk``: ERK beats uniform at >= 90% sparsity (static random masks). Statistic: err(uniform) - err(ERK).
2. ``width``: the gap to dense shrinks as the network grows. Statistic: Delta(smallest size) - Delta(largest),
   Delta = err(sparse) - err(dense of that size), over the static random runs; sizes ordered by the dense
   model's parameter count.
3. ``dynamic``: each dynamic rule (SET, RigL) beats the static random mask of the same scheme at equal
   density and epochs. Statistic: err(static) - err(dynamic).

Torch-free: rows are the study's result rows (``run``, ``size``, ``criterion``, ``scheme``, ``update`` labels).
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from prunebench.analysis.decisions import Decisions
from prunebench.analysis.findings import FAILS, HOLDS, NOT_CHECKED, OPEN, Finding, breakdown, pooled, sign_verdict as _verdict
from prunebench.analysis.paired import Interval
from prunebench.analysis.rows import Row, accuracy_keys, parents_by_rep, pruned_rows, summary_distributions, value

HIGH_SPARSITY = 0.9


@dataclass(frozen=True)
class Point:
    """One run at one size and sparsity: accuracy over seeds and the paired Delta vs the dense model."""

    run: str
    size: str
    sparsity: float
    acc_mean: float
    acc_std: float
    seeds: int
    delta: Interval | None  # err(sparse) - err(dense), paired; None without outcomes


@dataclass
class SparseAnalysis:
    reference: str | None
    level: float
    runs: list[str]
    sizes: list[str]  # smallest dense model first
    dense: dict[str, tuple[float, float, int]]  # size -> (acc mean, std, seeds) on the reference
    points: list[Point] = field(default_factory=list)
    gaps: list[dict[str, Any]] = field(default_factory=list)  # per run x sparsity: Delta at each size + the trend
    robustness: list[dict[str, Any]] = field(default_factory=list)  # per run x size x sparsity: metric - dense
    densities: dict[tuple[str, str, float], dict[str, float]] = field(default_factory=dict)
    grad_norms: list[dict[str, Any]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)


def is_sparse_study(rows: Sequence[Row]) -> bool:
    """True when the rows come from a ``mode: sparse-train`` study (pruned rows carry a ``run`` label)."""
    return any(r.get("kind") == "pruned" and r.get("run") for r in rows)


def _mean_std(vals: Sequence[float]) -> tuple[float, float]:
    a = np.asarray(vals, float)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0


def _cells(parts: Sequence[tuple[float, np.ndarray]], level: float) -> str:
    return f"{breakdown(parts, level)} (per-cell numbers in the report)"


def _pp(x: float) -> str:
    return f"{100 * x:+.2f} pp"


def _iv(iv: Interval) -> str:
    return f"{_pp(iv.estimate)} [{100 * iv.low:+.2f}, {100 * iv.high:+.2f}] at {100 * iv.level:g}%"


def analyze_sparse(rows: Sequence[Row], dec: Decisions, reference: str | None) -> SparseAnalysis:
    """The sparse-training tables and findings of a study's rows (``dec``: its :func:`decide` result)."""
    level = dec.level
    acc_key = next((k for r in rows for k in r if reference and k.endswith(f"/acc/{reference}")), None)
    parents = parents_by_rep(rows)
    sparse = [r for r in pruned_rows(rows) if r.get("run")]
    size_params: dict[str, float] = {}
    dense_acc: dict[str, list[float]] = defaultdict(list)
    for p in parents.values():
        label = str(p.get("size", ""))
        size_params[label] = value(p, "params_total") or 0.0
        a = value(p, acc_key) if acc_key else None
        if a is not None:
            dense_acc[label].append(a)
    sizes = sorted(size_params, key=lambda s: (size_params[s], s))
    runs = list(dict.fromkeys(str(r["run"]) for r in sparse))
    out = SparseAnalysis(reference, level, runs, sizes, {s: (*_mean_std(v), len(v)) for s, v in dense_acc.items()})
    groups: dict[tuple[str, str, float], list[Row]] = defaultdict(list)
    info: dict[str, Row] = {}
    for r in sparse:
        groups[(str(r["run"]), str(r.get("size", "")), float(r["target_ratio"]))].append(r)
        info.setdefault(str(r["run"]), r)
    method_of = {(str(r["run"]), str(r.get("size", ""))): str(r["method"]) for r in sparse}
    reps = {key: dec.by_ratio(m, reference) for key, m in method_of.items()} if reference else {}
    for (run, size, sp), rs in sorted(groups.items(), key=lambda kv: (runs.index(kv[0][0]), sizes.index(kv[0][1])
                                                                      if kv[0][1] in sizes else 0, kv[0][2])):
        accs = [a for r in rs if (a := value(r, acc_key) if acc_key else None) is not None]
        mean, std = _mean_std(accs) if accs else (float("nan"), 0.0)
        pr = reps.get((run, size), {}).get(sp)
        out.points.append(Point(run, size, sp, mean, std, len(accs),
                                Interval.from_samples(pr[0], pr[1], level) if pr else None))
        dens = [r["layer_densities"] for r in rs if isinstance(r.get("layer_densities"), Mapping)]
        if dens:
            out.densities[(run, size, sp)] = {k: float(np.mean([d[k] for d in dens])) for k in dens[0]}
        norms = [g for r in rs if (g := value(r, "grad_norm_init")) is not None]
        dense_norms = [g for p in parents.values() if str(p.get("size", "")) == size
                       and (g := value(p, "grad_norm_init")) is not None]
        if norms:
            out.grad_norms.append({"run": run, "size": size, "sparsity": sp, "grad_norm": float(np.mean(norms)),
                                   "dense_grad_norm": float(np.mean(dense_norms)) if dense_norms else None})
        out.robustness.extend(_robustness(rs, parents, dec, method_of[(run, size)], run, size, sp, reference))
    out.gaps = _gaps(reps, runs, sizes, groups, level)
    out.findings = [_erk_finding(reps, info, sizes, groups, level),
                    _width_finding(reps, info, sizes, groups, level),
                    *_dynamic_findings(reps, info, sizes, groups, level)]
    return out


def _robustness(rs: Sequence[Row], parents: Mapping[Any, Row], dec: Decisions, method: str, run: str, size: str,
                sp: float, reference: str | None) -> list[dict[str, Any]]:
    """Per metric of the robustness evaluators (OoD AUROC, ECE, NLL, robust / shifted accuracy): sparse minus
    dense of the same seed, mean +- std over seeds; accuracy-type distributions also get the paired interval."""
    out = []
    acc = accuracy_keys(rs)
    summaries = {acc[d] for d in summary_distributions(acc)}  # e.g. fog = mean of fog-1..5: not a column of its own
    keys = sorted({k for r in rs for k in r if "/" in k and not k.startswith("nominal/") and k not in summaries})
    for k in keys:
        ev, _, metric = k.partition("/")
        if not (metric.startswith("acc/") or metric in ("ece", "nll", "brier") or "auroc" in metric):
            continue
        diffs = [d - b for r in rs if (d := value(r, k)) is not None and (p := parents.get(r.get("rep"))) is not None
                 and (b := value(p, k)) is not None]
        if not diffs:
            continue
        mean, std = _mean_std(diffs)
        iv = None
        if metric.startswith("acc/"):
            pr = dec.by_ratio(method, metric[4:]).get(sp)
            iv = Interval.from_samples(-pr[0], -pr[1], dec.level) if pr else None  # accuracy change = -Delta
        out.append({"run": run, "size": size, "sparsity": sp, "metric": k, "change": mean, "std": std,
                    "seeds": len(diffs), "interval": iv})
    return out


def _static_random(info: Mapping[str, Row], scheme: str | None = None) -> list[str]:
    return [run for run, r in info.items() if r.get("criterion") == "random" and not r.get("update")
            and (scheme is None or r.get("scheme") == scheme)]


def _gaps(reps: Mapping[tuple[str, str], Mapping[float, tuple[float, np.ndarray]]], runs: Sequence[str],
          sizes: Sequence[str], groups: Mapping[tuple[str, str, float], Any], level: float) -> list[dict[str, Any]]:
    out = []
    for run in runs:
        for sp in sorted({k[2] for k in groups if k[0] == run}):
            per = {s: reps.get((run, s), {}).get(sp) for s in sizes}
            row: dict[str, Any] = {"run": run, "sparsity": sp,
                                   "gaps": {s: Interval.from_samples(v[0], v[1], level) if v else None for s, v in per.items()}}
            lo, hi = per.get(sizes[0]), per.get(sizes[-1])
            if len(sizes) > 1 and lo and hi:
                row["shrink"] = Interval.from_samples(lo[0] - hi[0], lo[1] - hi[1], level)
            out.append(row)
    return out


def _erk_finding(reps: Mapping, info: Mapping[str, Row], sizes: Sequence[str], groups: Mapping, level: float) -> Finding:
    claim = "ERK beats uniform at >= 90% sparsity (static random masks)"
    erk, uni = _static_random(info, "erk"), _static_random(info, "uniform")
    if not erk or not uni:
        return Finding("erk", claim, NOT_CHECKED, "not checked: the study needs static random runs with schemes erk "
                       "and uniform")
    parts = []
    for s in sizes:
        for sp in sorted({k[2] for k in groups if k[0] == erk[0] and k[1] == s}):
            a, b = reps.get((uni[0], s), {}).get(sp), reps.get((erk[0], s), {}).get(sp)
            if sp >= HIGH_SPARSITY - 1e-9 and a and b:
                parts.append((a[0] - b[0], a[1] - b[1]))
    iv = pooled(parts, level)
    if iv is None:
        return Finding("erk", claim, NOT_CHECKED, "not checked: no sparsity >= 90% with both runs evaluated")
    v = _verdict(iv)
    how = {HOLDS: "ERK has the lower error", FAILS: "uniform has the lower error", OPEN: "the difference is not resolved"}[v]
    return Finding("erk", claim, v, f"err(uniform) - err(ERK) = {_iv(iv)}, mean over {len(parts)} size x sparsity "
                   f"cells at >= 90%: {how}; {_cells(parts, level)}.", iv)


def _width_finding(reps: Mapping, info: Mapping[str, Row], sizes: Sequence[str], groups: Mapping, level: float) -> Finding:
    claim = "the gap to the dense network shrinks as the network grows (static random masks)"
    if len(sizes) < 2:
        return Finding("width", claim, NOT_CHECKED, "not checked: the study has one model size (add sparse.widths or "
                       "sparse.depths)")
    parts = []
    for run in _static_random(info):
        for sp in sorted({k[2] for k in groups if k[0] == run}):
            lo, hi = reps.get((run, sizes[0]), {}).get(sp), reps.get((run, sizes[-1]), {}).get(sp)
            if lo and hi:
                parts.append((lo[0] - hi[0], lo[1] - hi[1]))
    iv = pooled(parts, level)
    if iv is None:
        return Finding("width", claim, NOT_CHECKED, "not checked: no static random run evaluated at both the smallest "
                       "and the largest size")
    v = _verdict(iv)
    how = {HOLDS: "the gap is smaller at the larger size", FAILS: "the gap is larger at the larger size",
           OPEN: "the change is not resolved"}[v]
    return Finding("width", claim, v, f"Delta({sizes[0] or 'smallest'}) - Delta({sizes[-1] or 'largest'}) = {_iv(iv)}, "
                   f"mean over {len(parts)} run x sparsity cells: {how}; {_cells(parts, level)}.", iv)


def _dynamic_findings(reps: Mapping, info: Mapping[str, Row], sizes: Sequence[str], groups: Mapping,
                      level: float) -> list[Finding]:
    rules = sorted({str(r["update"]) for r in info.values() if r.get("update")})
    if not rules:
        return [Finding("dynamic", "dynamic sparse training beats static random masks at equal density and epochs",
                        NOT_CHECKED, "not checked: the study has no dynamic run (update: set / rigl)")]
    out = []
    for rule in rules:
        claim = f"{rule.upper() if rule == 'set' else 'RigL' if rule == 'rigl' else rule} beats the static random mask " \
                "of the same scheme at equal density and epochs"
        parts = []
        for run, r in info.items():
            if r.get("update") != rule:
                continue
            static = _static_random(info, str(r.get("scheme")))
            for s in sizes:
                for sp in sorted({k[2] for k in groups if k[0] == run and k[1] == s}):
                    a = reps.get((static[0], s), {}).get(sp) if static else None
                    b = reps.get((run, s), {}).get(sp)
                    if a and b:
                        parts.append((a[0] - b[0], a[1] - b[1]))
        iv = pooled(parts, level)
        if iv is None:
            out.append(Finding(f"dynamic-{rule}", claim, NOT_CHECKED, f"not checked: no static random run with the "
                               f"scheme of the {rule} run(s)"))
            continue
        v = _verdict(iv)
        how = {HOLDS: f"{rule} has the lower error", FAILS: "the static mask has the lower error",
               OPEN: "the difference is not resolved"}[v]
        out.append(Finding(f"dynamic-{rule}", claim, v, f"err(static) - err({rule}) = {_iv(iv)}, mean over "
                           f"{len(parts)} size x sparsity cells: {how}; {_cells(parts, level)}.", iv))
    return out


__all__ = ["HIGH_SPARSITY", "Point", "SparseAnalysis", "analyze_sparse", "is_sparse_study"]
