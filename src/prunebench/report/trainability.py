"""The "Trainability" section (Wang et al. 2023, Sec. 5): trainability accuracy (mean training accuracy over the
first LR stage of retraining) and the Jacobian's mean singular value right after pruning and after retraining,
per pipeline against the prune ratio, and against the retraining LR when the study sweeps it."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from prunebench.analysis.rows import value
from prunebench.report import plots as P
from prunebench.report.content import Image, Section, Text

Row = Mapping[str, Any]


def _curves(rows: Sequence[Row], key: str, x: str, group: str) -> dict[str, list[tuple[float, float, float]]]:
    pts: dict[str, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        v, xv = value(r, key), value(r, x)
        if v is not None and xv is not None:
            pts[str(r.get(group))][xv].append(v)
    return {g: [(xv, float(np.mean(vs)), float(np.std(vs))) for xv, vs in sorted(d.items())] for g, d in pts.items()}


def trainability_section(rows: Sequence[Row], colors: Mapping[str, str]) -> Section | None:
    """None when no row recorded trainability (a study made before it was recorded, or a sparse-train study)."""
    pruned = [r for r in rows if r.get("kind") == "pruned" and value(r, "trainability_acc") is not None]
    if not pruned:
        return None
    panels = [P.Panel("trainability accuracy (first LR stage)", _curves(pruned, "trainability_acc", "target_ratio", "method")),
              P.Panel("Jacobian mean singular value, right after pruning", _curves(pruned, "jac_sv_mean_pruned",
                                                                                  "target_ratio", "method")),
              P.Panel("... after retraining", _curves(pruned, "jac_sv_mean_retrained", "target_ratio", "method"))]
    blocks: list[Any] = [Text("Pruning damages trainability (Wang et al. 2023): trainability accuracy is the mean training "
                              "accuracy over the first LR stage of retraining (every epoch of a cosine or constant "
                              "schedule); the Jacobian statistics are those of the trainability evaluator, on 32 test "
                              "images. Mean ± std over repetitions."),
                         Image(P.curve_grid(panels, colors, percent_y=False, ncols=3), "trainability vs prune ratio")]
    lrs = {value(r, "retrain_lr") for r in pruned}
    if len(lrs) > 1:
        ratios = sorted({float(r["target_ratio"]) for r in pruned})
        names = sorted({str(r.get("method_name", r.get("method"))) for r in pruned})
        lr_panels = [P.Panel(f"ratio {100 * t:g}%", _curves([r for r in pruned if float(r["target_ratio"]) == t],
                                                             "trainability_acc", "retrain_lr", "method_name"))
                     for t in ratios]
        blocks.append(Image(P.curve_grid(lr_panels, P.method_colors(names), xlabel="retraining LR (log scale)",
                                         xlim=None, logx=True, ylabel="trainability accuracy"),
                            "trainability accuracy vs the retraining learning rate, one panel per prune ratio"))
    return Section("trainability", "Trainability", blocks)
