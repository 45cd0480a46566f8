"""Figures of the "Who pays for pruning" section: the per-class Delta heat map and PIE fraction vs prune ratio.

The data each figure shows is built first, by plain functions over the :func:`~prunebench.study.whopays.who_pays`
records (:func:`heat_matrix`, :func:`pie_curves`; testable without matplotlib), then drawn with the report's
shared helpers (:mod:`prunebench.report.plots`).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from prunebench.analysis.paired import BEYOND
from prunebench.report import plots as P


@dataclass(frozen=True)
class HeatMatrix:
    """Per-class Delta of one method on one distribution: ``values[i, j]`` = Delta of ``classes[i]`` at
    ``ratios[j]`` (NaN where not measured); ``beyond[i, j]`` marks a confident loss beyond the class tolerance."""

    method: str
    classes: tuple[str, ...]
    ratios: tuple[float, ...]
    values: np.ndarray
    beyond: np.ndarray


def heat_matrix(per_class: Sequence[Mapping[str, Any]], distribution: str, method: str) -> HeatMatrix | None:
    """The class x target-ratio matrix of Delta_c for ``method`` on ``distribution`` (None without records).

    Rows: every class of the distribution's records in class-index order (a class only another method has
    stays a NaN row, so all methods' matrices share their rows); columns: the method's target ratios, ascending.
    """
    on = [r for r in per_class if r["distribution"] == distribution]
    mine = [r for r in on if r["method"] == method]
    if not mine:
        return None
    classes = sorted({(int(r["class_index"]), str(r["class"])) for r in on})
    ratios = sorted({float(r["target_ratio"]) for r in mine})
    row = {ci: i for i, (ci, _) in enumerate(classes)}
    col = {t: j for j, t in enumerate(ratios)}
    values = np.full((len(classes), len(ratios)), np.nan)
    beyond = np.zeros(values.shape, bool)
    for r in mine:
        i, j = row[int(r["class_index"])], col[float(r["target_ratio"])]
        values[i, j] = float(r["delta"])
        beyond[i, j] = r["verdict"] == BEYOND
    return HeatMatrix(method, tuple(n for _, n in classes), tuple(ratios), values, beyond)


MAX_ROWS = 30  # classes a heat map shows; with more (e.g. CIFAR-100) the 30 that lost most, the rest in the table


def top_rows(mats: Sequence[HeatMatrix], limit: int = MAX_ROWS) -> tuple[list[HeatMatrix], int]:
    """The matrices restricted to the ``limit`` classes with the largest Delta at any ratio of any method (rows
    kept in class order, ties to the smaller index), and the number of classes there were."""
    n = max((len(m.classes) for m in mats), default=0)
    if n <= limit:
        return list(mats), n
    worst = np.full(n, -np.inf)
    for m in mats:
        with np.errstate(all="ignore"):
            rowmax = np.where(np.isfinite(m.values).any(1), np.nanmax(np.where(np.isfinite(m.values), m.values, -np.inf), 1),
                              -np.inf)
        worst = np.maximum(worst, rowmax)
    keep = np.sort(np.argsort(-worst, kind="stable")[:limit])
    return [HeatMatrix(m.method, tuple(m.classes[i] for i in keep), m.ratios, m.values[keep], m.beyond[keep])
            for m in mats], n


def pie_curves(pies: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, list[tuple[float, float]]]]:
    """Distribution -> method -> [(target ratio, PIE fraction)] ascending in ratio, from the PIE records."""
    out: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for r in pies:
        out.setdefault(str(r["distribution"]), {}).setdefault(str(r["method"]), []).append(
            (float(r["target_ratio"]), float(r["fraction"])))
    return {d: {m: sorted(v) for m, v in sorted(ms.items())} for d, ms in out.items()}


def heat_figure(mats: Sequence[HeatMatrix], colors: Mapping[str, str], level: float) -> str:
    """One heat map per method (class x prune ratio) on a shared diverging scale centred at 0 [pp]."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    mats, total = top_rows(mats)
    top = max((float(np.nanmax(np.abs(m.values))) for m in mats if np.isfinite(m.values).any()), default=0.0)
    top = 100 * top if top > 0 else 1.0
    norm, cmap = Normalize(-top, top), colormaps["RdBu_r"]  # red = the class lost accuracy, blue = it gained
    n_cls = max(len(m.classes) for m in mats)
    fig, axes, _, ncols = P._grid(len(mats), 3, 0.55 * max(len(m.ratios) for m in mats) + 2.4, 0.26 * n_cls + 1.2)
    for i, (ax, m) in enumerate(zip(axes, mats, strict=True)):
        ax.imshow(100 * m.values, cmap=cmap, norm=norm, aspect="auto", interpolation="nearest")
        for (a, b) in zip(*np.nonzero(m.beyond), strict=True):
            ax.text(b, a, "*", ha="center", va="center", fontsize=10, color="black")
        ax.set_xticks(range(len(m.ratios)), [f"{100 * t:g}" for t in m.ratios], fontsize=8)
        ax.set_yticks(range(len(m.classes)), m.classes if i % ncols == 0 else [""] * len(m.classes), fontsize=8)
        ax.set_xlabel("target prune ratio [%]", fontsize=9)
        ax.set_title(m.method, fontsize=10, color=colors.get(m.method, "black"))
    fig.colorbar(ScalarMappable(norm, cmap), ax=axes, label="per-class Delta [pp]", shrink=0.9)
    shown = "" if total <= MAX_ROWS else f"; the {MAX_ROWS} of {total} classes that lost most (all in the table)"
    fig.suptitle(f"* = confidently beyond the class tolerance at {100 * level:g}%{shown}", fontsize=8)
    return P.to_data_uri(fig)


def pie_figure(curves: Mapping[str, Mapping[str, Sequence[tuple[float, float]]]], colors: Mapping[str, str]) -> str:
    """PIE fraction [%] vs target prune ratio, one line per method, one panel per distribution."""
    panels = [P.Panel(d, {m: [(x, y, 0.0) for x, y in pts] for m, pts in ms.items()}) for d, ms in curves.items()]
    return P.curve_grid(panels, colors, xlabel="target prune ratio", ylabel="PIE fraction [%]", percent_y=True,
                        size=(5.0, 3.2) if len(panels) == 1 else (3.3, 2.6))


__all__ = ["MAX_ROWS", "HeatMatrix", "heat_figure", "heat_matrix", "pie_curves", "pie_figure", "top_rows"]
