"""The report's "Who pays for pruning" section: which classes and which test examples lose (Hooker et al.,
"What Do Compressed Deep Neural Networks Forget?", 2019), from :func:`prunebench.study.whopays.who_pays`.

Tables (numbers with their paired intervals; the per-class Delta table is shaded like a heat map) and figures
(:mod:`prunebench.report.whopays_plots`: the per-class Delta heat map per method, PIE fraction vs prune ratio;
:mod:`prunebench.report.whopays_pies`: a picture grid of the most affected method's PIEs).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from prunebench.analysis.paired import BEYOND
from prunebench.analysis.perclass import worst_label
from prunebench.report.content import Image, Section, Table, Text, pct, signed
from prunebench.report.plots import method_colors
from prunebench.report.whopays_pies import pie_grid_blocks
from prunebench.report.whopays_plots import heat_figure, heat_matrix, pie_curves, pie_figure


def _iv(est: float, low: float, high: float) -> str:
    return f"{signed(100 * est)} [{signed(100 * low)}, {signed(100 * high)}]"


def _col(rec: Mapping[str, Any]) -> str:
    return f"{rec['method']} {pct(rec['target_ratio'], 0)}%"


def class_heat_table(per_class: Sequence[Mapping[str, Any]], distribution: str) -> Table | None:
    """Class x (method, ratio) per-class Delta [pp] on one distribution, shaded by size (the heat map)."""
    recs = [r for r in per_class if r["distribution"] == distribution]
    if not recs:
        return None
    cols = list(dict.fromkeys(_col(r) for r in sorted(recs, key=lambda r: (r["method"], r["target_ratio"]))))
    classes = sorted({(r["class_index"], r["class"]) for r in recs})
    cell = {(r["class_index"], _col(r)): r for r in recs}
    top = max((r["delta"] for r in recs), default=0.0)
    body, shade = [], {}
    for i, (ci, name) in enumerate(classes):
        line = [name]
        for j, c in enumerate(cols):
            r = cell.get((ci, c))
            line.append("-" if r is None else f"{signed(100 * r['delta'], 1)}{'*' if r['verdict'] == BEYOND else ''}")
            if r is not None and top > 0 and r["delta"] > 0:
                shade[(i, j + 1)] = min(1.0, r["delta"] / top)
        body.append(line)
    level = recs[0]["level"]
    return Table(["class", *cols], body, f"{distribution}: per-class Delta = error increase over the parent on that "
                 f"class's test examples [pp], paired; * = confidently beyond the class tolerance at {100 * level:g}%; "
                 "darker = larger loss", shade)


def who_pays_section(wp: Any, reference: str | None, colors: Mapping[str, str] | None = None) -> Section:
    """The section from a :class:`~prunebench.study.whopays.WhoPays` (``reference``: the heat map's distribution;
    ``colors``: the report's colour per method, by default :func:`~prunebench.report.plots.method_colors`)."""
    blocks: list[Any] = [Text(
        "An accuracy within delta of the parent can hide a class, or a set of inputs, that lost far more. Per class: "
        "the paired error increase over the parent on that class's examples, with its interval from the study's "
        "bootstrap. Pruning-identified exemplars (PIEs, Hooker et al. 2019): test examples whose modal prediction "
        "over the pruned models differs from the modal prediction over the parents (with one repetition: whose "
        "prediction changed, a weaker definition).")]
    if wp.missing:
        blocks.append(Text(wp.missing, "note"))
        return Section("who-pays", "Who pays for pruning", blocks)
    pay = wp.classes_that_pay
    if pay:
        body = [[r["method"], pct(r["target_ratio"], 0), r["distribution"],
                 worst_label(r["worst_class"], r.get("tied_classes", [])),
                 _iv(r["worst_delta"], r["worst_low"], r["worst_high"]),
                 _iv(r["overall_delta"], r["overall_low"], r["overall_high"]),
                 _iv(r["disparity"], r["disparity_low"], r["disparity_high"]) if "disparity_low" in r
                 else signed(100 * r["disparity"])]
                for r in pay]
        open_ = sum(not r.get("worst_resolved", True) for r in pay)
        blocks.append(Table(["method", "target [%]", "distribution", "worst class", "its Delta [pp]", "overall Delta [pp]",
                             "disparity [pp]"], body, f"Classes that pay: the class with the largest error increase, at "
                             f"{100 * pay[0]['level']:g}% confidence; disparity = worst-class Delta minus overall Delta. "
                             "'unresolved: a, b, ...' = the measurement cannot rank the worst class (first) above the "
                             "others named (the paired interval of their difference reaches 0)"
                             + (f"; {open_} of {len(pay)} rankings unresolved" if open_ else ""),
                             collapsed=len(body) > 24))
    dists = list(dict.fromkeys(r["distribution"] for r in wp.per_class))
    shown = reference if reference is not None and reference in dists else (dists[0] if dists else "")
    methods = sorted({r["method"] for r in [*wp.per_class, *wp.pies]})
    if colors is None and methods:
        colors = method_colors(methods)
    colors = colors or {}
    mats = [m for m in (heat_matrix(wp.per_class, shown, meth) for meth in methods) if m is not None]
    if mats:
        blocks.append(Image(heat_figure(mats, colors, wp.per_class[0]["level"]),
                            f"{shown}: per-class Delta [pp] per method, class x target prune ratio (red: the class lost "
                            "accuracy, blue: it gained; one colour scale for all methods)"))
    heat = class_heat_table(wp.per_class, shown)
    if heat is not None:
        blocks.append(heat)
    if wp.pies:
        blocks.append(Image(pie_figure(pie_curves(wp.pies), colors),
                            "PIE fraction (share of test examples whose answer pruning changed) vs target prune ratio"))
        blocks.extend(pie_grid_blocks(wp, reference))
        body = [[r["method"], pct(r["target_ratio"], 0), r["distribution"], r["definition"], str(r["count"]),
                 pct(r["fraction"], 2), f"{pct(r['parent_acc_pie'])} / {pct(r['parent_acc_rest'])}",
                 f"{pct(r['pruned_acc_pie'])} / {pct(r['pruned_acc_rest'])}"] for r in wp.pies]
        blocks.append(Table(["method", "target [%]", "distribution", "definition", "PIEs", "fraction [%]",
                             "parent acc PIEs / rest [%]", "pruned acc PIEs / rest [%]"], body,
                            "PIEs per method and prune ratio: how many, and how both models do on them vs the rest",
                            collapsed=len(body) > 24))
    if wp.pie_overlap:
        body = [[pct(r["target_ratio"], 0), r["distribution"], f"{r['method_a']} / {r['method_b']}", f"{r['jaccard']:.2f}"]
                for r in wp.pie_overlap]
        blocks.append(Table(["target [%]", "distribution", "methods", "Jaccard"], body,
                            "Overlap of the PIE sets of two methods at the same prune ratio (1 = the same examples)",
                            collapsed=len(body) > 24))
    return Section("who-pays", "Who pays for pruning", blocks)


__all__ = ["class_heat_table", "who_pays_section"]
