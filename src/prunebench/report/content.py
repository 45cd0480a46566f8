"""The report as a format-neutral document (sections of text, tables, figures), built from result rows.

``build_document`` computes everything once; ``report.html`` and ``summary.md`` render the same
document (the Markdown drops the figures). Numbers come from :mod:`prunebench.analysis`.
"""
from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from prunebench import analysis as A
from prunebench.report import plots as P

Row = Mapping[str, Any]
FIXED = {"model_key", "kind", "method", "rep", "cycle", "target_ratio", "prune_ratio", "params_total",
         "params_nonzero", "flops_dense", "flops_effective"}
MAX_PANELS = 16


@dataclass
class Text:
    text: str
    style: str = "p"  # p | note | alert | finding | finding fails | finding open (an HTML class)


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    caption: str = ""
    shade: dict[tuple[int, int], float] = field(default_factory=dict)  # (row, col) -> 0..1 cell shading (HTML)
    collapsed: bool = False  # long tables go into a <details> element
    muted: set[int] = field(default_factory=set)  # rows shown greyed out (HTML class "flagged"), e.g. flagged distributions
    wrap: bool = False  # long text cells (e.g. error messages) wrap instead of widening the table (HTML)


@dataclass
class Image:
    uri: str
    caption: str


@dataclass
class Code:
    text: str
    caption: str = ""


@dataclass
class Section:
    anchor: str
    title: str
    blocks: list[Any] = field(default_factory=list)
    alert: bool = False  # shown as a warning (HTML class "alert"), e.g. an incomplete study


@dataclass
class Document:
    title: str
    sections: list[Section]


# ----------------------------------------------------------------------------- row helpers
def _sd(vals: Sequence[float]) -> float:
    return float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0


def curve(rows: Sequence[Row], method: str, fn: Callable[[Row], float | None]) -> list[P.Point]:
    """(mean achieved ratio, mean y, std y) per target ratio of a method's pruned rows (mean over reps)."""
    by: dict[float, list[tuple[float, float]]] = defaultdict(list)
    for r in rows:
        if r.get("kind") == "pruned" and r.get("method") == method:
            x, y = A.value(r, "prune_ratio"), fn(r)
            if x is not None and y is not None:
                by[round(A.value(r, "target_ratio") or x, 6)].append((x, y))
    return [(float(np.mean([x for x, _ in v])), float(np.mean([y for _, y in v])), _sd([y for _, y in v]))
            for _, v in sorted(by.items())]


def getter(key: str) -> Callable[[Row], float | None]:
    return lambda r: A.value(r, key)


def mean_getter(keys: Sequence[str]) -> Callable[[Row], float | None]:
    """Mean of the keys a row has (None if it has none of them)."""
    def fn(r: Row) -> float | None:
        vals = [v for k in keys if (v := A.value(r, k)) is not None]
        return float(np.mean(vals)) if vals else None
    return fn


def level(rows: Sequence[Row], fn: Callable[[Row], float | None], kind: str = "parent") -> float | None:
    vals = [v for r in rows if r.get("kind") == kind and (v := fn(r)) is not None]
    return float(np.mean(vals)) if vals else None


def baseline_level(rows: Sequence[Row], key: str) -> float | None:
    """Mean of ``<ev>/baseline_<name>`` over pruned rows (a separately trained network's level), if reported."""
    ev, _, name = key.partition("/")
    vals = [v for r in rows if (v := A.value(r, f"{ev}/baseline_{name}")) is not None]
    return float(np.mean(vals)) if vals else None


def family(dist: str) -> tuple[str, float | None]:
    """'fog-3' -> ('fog', 3.0); 'noise-0.05' -> ('noise', 0.05); 'nominal' -> ('nominal', None)."""
    m = re.fullmatch(r"(.+?)-(\d+(?:\.\d+)?(?:e-?\d+)?)", dist)
    return (m.group(1), float(m.group(2))) if m else (dist, None)


def metric_keys(rows: Sequence[Row]) -> dict[str, list[str]]:
    """``evaluator -> its metric keys`` in first-seen order (keys with a '/' that are not row fields)."""
    out: dict[str, list[str]] = {}
    for r in rows:
        for k in r:
            if "/" in k and k not in FIXED:
                lst = out.setdefault(k.split("/", 1)[0], [])
                if k not in lst:
                    lst.append(k)
    return out


def pct(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{100 * x:.{digits}f}"


def signed(x: float, digits: int = 2) -> str:
    """'+1.25' / '-0.30', never '-0.00'."""
    return f"{round(x, digits) + 0.0:+.{digits}f}"


def human(n: float | None) -> str:
    if n is None:
        return "-"
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.2f}{unit}"
    return f"{n:.0f}"


# ----------------------------------------------------------------------------- shared blocks
def acc_panels(rows: Sequence[Row], dists: Sequence[str], keys: Mapping[str, str], meths: Sequence[str],
               delta: float) -> tuple[list[P.Panel], str]:
    """One panel per distribution; more than MAX_PANELS: one per family (mean over its members)."""
    groups: list[tuple[str, list[str]]] = [(d, [keys[d]]) for d in dists]
    note = ""
    if len(groups) > MAX_PANELS:
        fam: dict[str, list[str]] = {}
        for d in dists:
            fam.setdefault(family(d)[0], []).append(keys[d])
        groups = [(f"{f} (mean of {len(ks)})", ks) for f, ks in fam.items()]
        note = "; panels average each family over its levels (e.g. severities)"
        if len(groups) > MAX_PANELS:
            groups = [(f"mean of {len(dists)} distributions", [keys[d] for d in dists])]
            note = "; one panel: the mean over all distributions"
    panels = []
    for title, ks in groups:
        fn = mean_getter(ks)
        panels.append(P.Panel(title, {m: curve(rows, m, fn) for m in meths}, parent=level(rows, fn), band=delta))
    return panels, note


def pp_table(summary: Sequence[Mapping], names: Sequence[str], meths: Sequence[str], caption: str) -> Table:
    """Prune potential [%] per distribution (rows) and method (columns): mean ± std and the bootstrap interval."""
    stats = {(s["method"], s["distribution"]): s for s in summary}
    body, shade = [], {}
    for i, n in enumerate(names):
        line = [n]
        for j, m in enumerate(meths):
            s = stats.get((m, n))
            if s is None:
                line.append("-")
                continue
            ci = "" if s["degenerate"] else f" [{pct(s['ci_low'])}, {pct(s['ci_high'])}]"
            line.append(A.cell_text(s) + ci)
            shade[(i, j + 1)] = s["mean"]
        body.append(line)
    return Table(["distribution", *meths], body, caption, shade, collapsed=len(body) > 24)


def pp_param_panels(summary: Sequence[Mapping], dists: Sequence[str], meths: Sequence[str]) -> list[tuple[str, dict]]:
    """PP vs the numeric level of each distribution family (noise eps, attack eps, corruption severity).
    Families whose members all have a level and that have >= 2 levels; more than 4 such families are
    averaged into one panel (mean of the per-family means)."""
    stats = {(s["method"], s["distribution"]): s for s in summary}
    fams: dict[str, list[tuple[float, str]]] = {}
    for d in dists:
        f, lv = family(d)
        fams.setdefault(f, []).append((lv, d))  # type: ignore[arg-type]
    fams = {f: v for f, v in fams.items() if len(v) >= 2 and all(lv is not None for lv, _ in v)}
    if not fams:
        return []
    if len(fams) <= 4:
        return [(f, {m: [(lv, stats[(m, d)]["mean"], stats[(m, d)]["std"]) for lv, d in v if (m, d) in stats] for m in meths})
                for f, v in fams.items()]
    levels = sorted({lv for v in fams.values() for lv, _ in v})
    curves = {}
    for m in meths:
        pts = []
        for lv in levels:
            vals = [stats[(m, d)]["mean"] for v in fams.values() for x, d in v if x == lv and (m, d) in stats]
            if vals:
                pts.append((lv, float(np.mean(vals)), 0.0))
        curves[m] = pts
    return [(f"mean over {len(fams)} families", curves)]


def gains(rows: Sequence[Row]) -> Callable[[Row], tuple[float | None, float | None]]:
    """Per row: (compression, speedup) against the dense parent of the same repetition (ShrinkBench):
    compression = parent's total parameters / nonzero parameters, speedup = parent's dense FLOPs /
    effective FLOPs. Falls back to the row's own dense counts when the parent row is missing."""
    parents = {r.get("rep"): r for r in rows if r.get("kind") == "parent"}

    def fn(r: Row) -> tuple[float | None, float | None]:
        ref = parents.get(r.get("rep"), r)
        pt = A.value(ref, "params_total") or A.value(r, "params_total")
        fd = A.value(ref, "flops_dense") or A.value(r, "flops_dense")
        pn, fe = A.value(r, "params_nonzero"), A.value(r, "flops_effective")
        return (pt / pn if pt and pn else None), (fd / fe if fd and fe else None)
    return fn


def cost_rows(rows: Sequence[Row], reference: str | None) -> Table:
    """Parameters, FLOPs (and latency metrics, if any) of every model row; accuracy on ``reference``."""
    lat = sorted({k for r in rows for k in r if "latency" in k.lower()})
    nominal = A.accuracy_keys(rows).get(reference) if reference else None
    header = ["model", "method", "rep", "cycle", "target", "achieved", "params (nonzero / total)", "compression",
              "FLOPs (effective / dense)", "speedup", *lat, "nominal acc [%]"]
    order = sorted(rows, key=lambda r: (r.get("kind") != "parent", str(r.get("method")), str(r.get("rep")),
                                        A.value(r, "target_ratio") or 0.0))
    body, gain = [], gains(rows)
    for r in order:
        pt, pn, fd, fe = (A.value(r, k) for k in ("params_total", "params_nonzero", "flops_dense", "flops_effective"))
        comp, speed = gain(r)
        body.append([str(r.get("model_key", ""))[:10], str(r.get("method")), str(r.get("rep")), str(r.get("cycle")),
                     pct(A.value(r, "target_ratio")), pct(A.value(r, "prune_ratio")), f"{human(pn)} / {human(pt)}",
                     f"{comp:.2f}x" if comp else "-", f"{human(fe)} / {human(fd)}", f"{speed:.2f}x" if speed else "-",
                     *(f"{v:.3g}" if (v := A.value(r, k)) is not None else "-" for k in lat),
                     pct(A.value(r, nominal)) if nominal else "-"])
    return Table(header, body, "compression = parent's total / nonzero parameters; speedup = parent's dense / effective "
                 "FLOPs (theoretical, ShrinkBench convention); target and achieved prune ratios in %", collapsed=len(body) > 30)


def cost_summary(rows: Sequence[Row], reference: str | None) -> Table:
    """Per method and target ratio (mean over repetitions): achieved ratio, compression, speedup, accuracy on
    ``reference`` (the nominal test set)."""
    nominal = A.accuracy_keys(rows).get(reference) if reference else None
    groups: dict[tuple[str, float], list[Row]] = defaultdict(list)
    for r in rows:
        groups[(str(r.get("method")), round(A.value(r, "target_ratio") or 0.0, 6))].append(r)

    def mean(rs: Sequence[Row], fn: Callable[[Row], float | None]) -> float | None:
        vals = [v for r in rs if (v := fn(r)) is not None]
        return float(np.mean(vals)) if vals else None

    gain = gains(rows)

    body = []
    for (m, t), rs in sorted(groups.items(), key=lambda kv: (kv[0][0] != "parent", kv[0])):
        comp, speed = mean(rs, lambda r: gain(r)[0]), mean(rs, lambda r: gain(r)[1])
        acc = [v for r in rs if nominal and (v := A.value(r, nominal)) is not None]
        body.append([m, pct(t), pct(mean(rs, getter("prune_ratio"))), human(mean(rs, getter("params_nonzero"))),
                     f"{comp:.2f}x" if comp else "-", human(mean(rs, getter("flops_effective"))),
                     f"{speed:.2f}x" if speed else "-",
                     (f"{100 * np.mean(acc):.2f}" + (f" ± {100 * _sd(acc):.2f}" if len(acc) > 1 else "")) if acc else "-",
                     str(len(rs))])
    return Table(["method", "target [%]", "achieved [%]", "nonzero params", "compression", "effective FLOPs", "speedup",
                  "nominal acc [%]", "models"], body,
                 "Mean over repetitions per method and target ratio; every model row in the table below",
                 collapsed=len(body) > 60)
