"""The compute-budget table of the report: every pipeline's total training (study/compute.py), next to its results,
so that a comparison of methods under unequal budgets is visible even when no comparison setup is declared."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from prunebench.analysis.rows import value
from prunebench.report.content import Table

Row = Mapping[str, Any]


def budget_table(rows: Sequence[Row]) -> Table | None:
    """Per method x target ratio (mean over repetitions): the whole pipeline's epochs, optimizer steps, images and
    training FLOPs, and the FLOPs as a multiple of the parent's training; None when no row was accounted."""
    groups: dict[tuple[str, float], list[Row]] = defaultdict(list)
    for r in rows:
        if value(r, "budget_train_flops") is not None:
            groups[(str(r.get("method")), float(r.get("target_ratio") or 0.0))].append(r)
    if not groups:
        return None
    parent = [v for r in groups.get(("parent", 0.0), []) if (v := value(r, "budget_train_flops")) is not None]
    base = float(np.mean(parent)) if parent else None

    def mean(rs: list[Row], key: str) -> float:
        return float(np.mean([value(r, key) or 0.0 for r in rs]))

    body = []
    for (method, ratio), rs in sorted(groups.items(), key=lambda kv: (kv[0][0] != "parent", kv[0])):
        flops = mean(rs, "budget_train_flops")
        body.append([method, "-" if method == "parent" else f"{100 * ratio:.4g}", f"{mean(rs, 'budget_epochs'):g}",
                     f"{mean(rs, 'budget_steps'):,.0f}", f"{mean(rs, 'budget_images'):,.0f}", f"{flops / 1e15:.4g}",
                     f"{flops / base:.3g}" if base else "-"])
    return Table(["pipeline", "ratio [%]", "epochs", "optimizer steps", "images", "train PFLOP", "x parent"], body,
                 "Compute of each whole pipeline (parent training + every prune step and retraining it descends from; "
                 "a sparse run: its own training), mean over repetitions. Train FLOPs = 3 x forward FLOPs x images, "
                 "forward FLOPs of the network as it was in that stage (dense parent, pruned / masked otherwise).",
                 collapsed=len(body) > 30)
