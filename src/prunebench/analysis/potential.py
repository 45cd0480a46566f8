"""Point estimates over result rows: prune potential per repetition, excess error, the plain-text table.

Input rows follow docs/STUDY.md: one dict per model cell (``kind`` "parent" or "pruned", ``method``,
``rep``, ``prune_ratio`` (achieved), ...) with evaluator metrics merged in as ``<evaluator>/<key>``.
Every ``<evaluator>/acc/<distribution>`` metric is an accuracy on a test distribution; error =
1 - accuracy. Definitions: Liebenwein et al., "Lost in Pruning" (MLSys 2021): prune potential and
excess error, as restated in shared/reference/evaluation.md Sec. 2.

Missing values (a failed or not yet finished eval cell) are skipped, never treated as 0.
"""
from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from prunebench.analysis.paired import CONFIDENCE, N_BOOT
from prunebench.analysis.rows import (
    DEFAULT_DELTA,
    Roles,
    Row,
    accuracy_keys,
    evaluator_of,
    parents_by_rep,
    pruned_rows,
    summary_distributions,
    value,
)  # fmt: skip
from prunebench.errors import UserError

TOL = 1e-12  # floating-point slack on the prune-potential inequality (hand-exact ties must qualify)


# ----------------------------------------------------------------------------- prune potential
def prune_potential(rows: Sequence[Row], delta: float = DEFAULT_DELTA, first: str | None = None) -> list[dict[str, Any]]:
    """One record per (method, rep, distribution): the prune potential PP_delta (distribution ``first``,
    the reference, and its group first).

    PP = the largest tested (achieved) prune ratio r with err(pruned_r, D') <= err(parent, D') + delta
    (Lost in Pruning, prune-potential definition), 0 if none qualifies. Every tested ratio is scanned, so qualifying ratios
    need not be contiguous. The parent is the parent row of the same repetition.
    """
    if not (isinstance(delta, (int, float)) and delta >= 0 and math.isfinite(delta)):
        raise UserError(f"delta must be a non-negative number (a tolerated error increase, e.g. 0.005), got {delta!r}")
    keys = accuracy_keys(rows, first)
    leaves = summary_distributions(keys)
    parents = parents_by_rep(rows)
    groups: dict[tuple[str, Any], list[Row]] = defaultdict(list)
    for row in pruned_rows(rows):
        groups[(str(row["method"]), row.get("rep", 0))].append(row)
    records = []
    for (method, rep), members in sorted(groups.items(), key=lambda kv: (kv[0][0], str(kv[0][1]))):
        parent = parents.get(rep)
        if parent is None:
            continue
        for dist, key in keys.items():
            p_acc = value(parent, key)
            if p_acc is None:
                p_acc = _parent_acc_fallback(members, key)
            values = [(value(r, "prune_ratio"), value(r, key)) for r in members]
            tested = [(ratio, acc) for ratio, acc in values if ratio is not None and acc is not None]
            if p_acc is None or not tested:
                continue
            threshold = (1.0 - p_acc) + delta
            ok = sorted(ratio for ratio, acc in tested if (1.0 - acc) <= threshold + TOL)
            records.append({"method": method, "rep": rep, "distribution": dist, "evaluator": evaluator_of(key),
                            "prune_potential": ok[-1] if ok else 0.0, "parent_acc": p_acc,
                            "qualifying": ok, "tested": sorted(ratio for ratio, _ in tested),
                            "leaves": len(leaves.get(dist, ()))})
    return records


def _parent_acc_fallback(members: Sequence[Row], key: str) -> float | None:
    """noise-similarity reports the parent's accuracy under the very same noise as ``parent_acc/<eps>``
    on every pruned row; use it when the parent row itself was not evaluated with that evaluator."""
    ev, _, dist = key.split("/", 2)
    if not dist.startswith("noise-"):
        return None
    vals = [v for r in members if (v := value(r, f"{ev}/parent_acc/{dist[len('noise-'):]}")) is not None]
    return float(np.mean(vals)) if vals else None


def _bootstrap(values: Sequence[float], n_boot: int, rng: np.random.Generator, level: float) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean, resampling repetitions with replacement."""
    arr = np.asarray(values, dtype=float)
    means = arr[rng.integers(0, len(arr), size=(n_boot, len(arr)))].mean(axis=1)
    lo, hi = np.percentile(means, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def _stats(method: str, name: str, group: str, aggregate: str | None, values: list[float], n_boot: int,
           rng: np.random.Generator, level: float, leaves: int = 0) -> dict[str, Any]:
    mean = float(np.mean(values))
    degenerate = len(values) < 2
    lo, hi = (mean, mean) if degenerate else _bootstrap(values, n_boot, rng, level)
    return {"method": method, "distribution": name, "group": group, "aggregate": aggregate, "n": len(values),
            "mean": mean, "std": float(np.std(values, ddof=1)) if not degenerate else 0.0,
            "ci_low": lo, "ci_high": hi, "level": level, "degenerate": degenerate, "values": list(values),
            "note": "one repetition: no spread, interval = the value" if degenerate else "", "leaves": leaves}


def summarize_prune_potential(records: Sequence[Mapping[str, Any]], n_boot: int = N_BOOT, seed: int = 0,
                              level: float = CONFIDENCE) -> list[dict[str, Any]]:
    """Per (method, distribution): mean, sample std (ddof 1) and a bootstrap percentile interval over reps.

    Also per (method, evaluator group with >= 2 distributions): the per-repetition mean and min of PP
    over the group's distributions, summarised the same way (``aggregate`` "mean" / "min", distribution
    named ``"<group> (mean)"`` / ``"<group> (min)"``); summary distributions (``leaves`` > 0, e.g. a
    corruption averaged over its severities) are summarised on their own but left out of the group
    aggregates. With one repetition the interval is degenerate (``degenerate`` True, interval = the
    value). Deterministic for a given ``seed``.
    """
    if n_boot < 1:
        raise UserError(f"n_boot must be a positive number of bootstrap resamples, got {n_boot}")
    rng = np.random.default_rng(seed)
    per: dict[tuple[str, str], dict[Any, float]] = defaultdict(dict)
    group_of: dict[str, str] = {}
    n_leaves: dict[str, int] = {}  # > 0: a summary distribution (e.g. a corruption over its severities)
    dist_order: list[str] = []
    for rec in records:
        per[(rec["method"], rec["distribution"])][rec["rep"]] = float(rec["prune_potential"])
        group_of.setdefault(rec["distribution"], rec.get("evaluator", ""))
        n_leaves.setdefault(rec["distribution"], int(rec.get("leaves", 0)))
        if rec["distribution"] not in dist_order:
            dist_order.append(rec["distribution"])
    out = []
    meths = sorted({m for m, _ in per})
    for method in meths:
        for dist in dist_order:
            if (method, dist) in per:
                vals = [per[(method, dist)][r] for r in sorted(per[(method, dist)], key=str)]
                out.append(_stats(method, dist, group_of[dist], None, vals, n_boot, rng, level, n_leaves[dist]))
        groups: dict[str, list[str]] = defaultdict(list)
        for dist in dist_order:
            if not n_leaves[dist]:
                groups[group_of[dist]].append(dist)
        for group, dists in groups.items():
            if len(dists) < 2:
                continue
            reps = sorted({r for d in dists for r in per.get((method, d), {})}, key=str)
            by_rep = {r: [per[(method, d)][r] for d in dists if r in per.get((method, d), {})] for r in reps}
            for agg, fn in (("mean", np.mean), ("min", np.min)):
                vals = [float(fn(v)) for v in by_rep.values() if v]
                if vals:
                    out.append(_stats(method, f"{group} ({agg})", group, agg, vals, n_boot, rng, level))
    return out


# ----------------------------------------------------------------------------- excess error
def default_shifted(rows: Sequence[Row], roles: Roles) -> list[str]:
    """The default shifted set: the distributions the evaluators' specs name for it (``roles.shift``; the
    corruptions at severity 3, Lost in Pruning's choice) if present, else every distribution but the reference."""
    keys = accuracy_keys(rows)
    chosen = [d for d, k in keys.items() if (pat := roles.shift.get(evaluator_of(k))) and re.fullmatch(pat, d)]
    return chosen or [d for d in keys if d != roles.reference]


def excess_error(rows: Sequence[Row], roles: Roles, shifted: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Excess error of every pruned row (Lost in Pruning, excess-error definition):

    e = [err(pruned, D') - err(pruned, D)] - [err(parent, D') - err(parent, D)],

    D the reference distribution (``roles.reference``, the nominal test set), err(., D') the mean error
    over the ``shifted`` distributions (default :func:`default_shifted`; those present in both the pruned
    row and its parent). Positive e: pruning hurt the shifted distribution more than the nominal one.
    """
    keys = accuracy_keys(rows)
    nominal = roles.reference
    if nominal is None or nominal not in keys:
        raise UserError(f"no accuracy for the reference distribution {nominal!r} in the rows; evaluate with the "
                        f"evaluator that reports it (found: {', '.join(keys) or 'none'})")
    shifted = list(default_shifted(rows, roles) if shifted is None else shifted)
    unknown = [d for d in shifted if d not in keys]
    if unknown:
        raise UserError(f"unknown shifted distribution(s) {unknown}; choose from {', '.join(keys)}")
    parents = parents_by_rep(rows)
    out = []
    for row in pruned_rows(rows):
        parent = parents.get(row.get("rep", 0))
        ratio = value(row, "prune_ratio")
        if parent is None or ratio is None:
            continue
        en, pn = value(row, keys[nominal]), value(parent, keys[nominal])
        both = [d for d in shifted if d != nominal and value(row, keys[d]) is not None and value(parent, keys[d]) is not None]
        if en is None or pn is None or not both:
            continue
        es = float(np.mean([1.0 - value(row, keys[d]) for d in both]))  # type: ignore[operator]
        ps = float(np.mean([1.0 - value(parent, keys[d]) for d in both]))  # type: ignore[operator]
        e = (es - (1.0 - en)) - (ps - (1.0 - pn))
        out.append({"model_key": row.get("model_key"), "method": str(row["method"]), "rep": row.get("rep", 0),
                    "cycle": row.get("cycle"), "prune_ratio": ratio, "excess_error": e,
                    "err_nominal": 1.0 - en, "err_shifted": es, "parent_err_nominal": 1.0 - pn,
                    "parent_err_shifted": ps, "n_shifted": len(both)})
    return out


def fit_through_origin(x: Sequence[float], y: Sequence[float]) -> float:
    """Least-squares slope b of y = b x (no intercept): b = sum(x y) / sum(x^2); 0 when all x are 0."""
    xa, ya = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    den = float((xa * xa).sum())
    return float((xa * ya).sum() / den) if den > 0 else 0.0


def excess_error_slopes(records: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Per method, the through-origin least-squares slope of excess error vs prune ratio."""
    by: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for rec in records:
        by[rec["method"]].append(rec)
    return {m: fit_through_origin([r["prune_ratio"] for r in rs], [r["excess_error"] for r in rs])
            for m, rs in sorted(by.items())}


# ----------------------------------------------------------------------------- terminal table, finding
def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def cell_text(stat: Mapping[str, Any]) -> str:
    """'84.9 ± 1.2' (percent); no ± part with a single repetition."""
    return _pct(stat["mean"]) if stat["degenerate"] else f"{_pct(stat['mean'])} ± {_pct(stat['std'])}"


def prune_potential_table(rows: Sequence[Row], delta: float = DEFAULT_DELTA,
                          summary: Sequence[Mapping[str, Any]] | None = None, max_lines: int = 40,
                          decisions: Any = None, reference: str | None = None) -> str:
    """Plain-text table of prune potential in percent (mean ± std over reps): one line per distribution
    (then its group's mean / min), one column per method; '-' where a method was not evaluated.

    A summary distribution with a single member (``fog`` = ``fog-3`` when only severity 3 ran) is not
    repeated. Beyond ``max_lines`` distributions, the members of large groups (> 16) are left out in
    favour of their summaries and the group mean / min, and a last line says how many. ``reference``: the reference
    distribution, listed first (when the summary is computed here).
    """
    summary = summary if summary is not None else summarize_prune_potential(prune_potential(rows, delta, reference))
    summary = [s for s in summary if s.get("leaves", 0) != 1]
    meths = sorted({s["method"] for s in summary})
    first: dict[str, tuple[int, bool, int]] = {}
    group_rank: dict[str, int] = {}
    for i, s in enumerate(summary):  # per group: its distributions, then the group's mean / min
        rank = group_rank.setdefault(s["group"], len(group_rank))
        first.setdefault(s["distribution"], (rank, s["aggregate"] is not None, i))
    names = sorted(first, key=first.__getitem__)
    if not names:
        return f"prune potential (delta = {_pct(delta)}%): no pruned rows with accuracies to compare"
    hidden = 0
    if len(names) > max_lines:
        info = {s["distribution"]: s for s in summary}
        size: defaultdict[str, int] = defaultdict(int)
        for n in names:
            if info[n]["aggregate"] is None and not info[n].get("leaves"):
                size[info[n]["group"]] += 1
        keep = [n for n in names
                if info[n]["aggregate"] is not None or info[n].get("leaves") or size[info[n]["group"]] <= 16]
        hidden, names = len(names) - len(keep), keep
    cells = {(s["method"], s["distribution"]): cell_text(s) for s in summary}
    flags: dict[str, str] = {}
    paired = decisions is not None and decisions.available
    if paired:  # PP on the repetition-averaged paired Delta, with its bootstrap interval
        for p in decisions.potentials:
            cells[(p.method, p.distribution)] = f"{_pct(p.pp.estimate)} [{_pct(p.pp.low)}, {_pct(p.pp.high)}]"
        flags = {d: ("uninformative" if i.uninformative else "coarse") for d, i in decisions.distributions.items()
                 if i.uninformative or i.coarse}
    header = ["distribution", *meths]
    body = [[n + (f" ({flags[n]})" if n in flags else ""), *(cells.get((m, n), "-") for m in meths)] for n in names]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]

    def fmt(r: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))

    n_reps = max((s["n"] for s in summary), default=0)
    reps = f"{n_reps} repetition{'s' * (n_reps != 1)}"
    title = (f"prune potential [%] at delta = {_pct(delta)}%: point [{100 * decisions.level:g}% interval], paired "
             f"on shared examples, {reps}" if paired else
             f"prune potential [%] at delta = {_pct(delta)}% (mean ± std over {reps}; no per-example outcomes: "
             "intervals unavailable)")
    foot = [f"({hidden} more distributions in summary.md / report.html)"] if hidden else []
    if flags:
        foot.append("flagged distributions are not ranked: coarse = resolution coarser than delta (evaluate on more "
                    "examples), uninformative = the parent is near chance")
    return "\n".join([title, fmt(header), "  ".join("-" * w for w in widths), *map(fmt, body), *foot])
