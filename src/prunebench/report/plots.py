"""Report figures as PNG data URIs (matplotlib's Agg canvas; no pyplot, so no global backend state).

Every figure uses the same colour per method (``method_colors``) so a reader can follow one method
through the whole report; the parent is black, separately trained baselines grey.
"""
from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

SPARE_COLORS = ["#2ca02c", "#9467bd", "#e377c2", "#bcbd22", "#7f7f7f", "#393b79", "#637939", "#843c39", "#ad494a",
                "#8ca252", "#6b6ecf", "#d6616b", "#e7ba52", "#5254a3"]
PARENT_COLOR, BASELINE_COLOR = "#000000", "#888888"
DPI = 100


def method_colors(methods: Sequence[str]) -> dict[str, str]:
    """A colour per method: the ``color`` of its registry entry (a row label that is not a registered
    name, e.g. ``ft-l2``, has none), else spare colours in sorted order (deterministic)."""
    from prunebench.pruning.registry import METHODS

    fixed = {m: c for m in methods if m in METHODS and (c := METHODS.spec(m).color)}
    free = [c for c in SPARE_COLORS if c not in fixed.values()] or SPARE_COLORS
    spare = iter(free * (1 + len(methods) // len(free)))
    return {m: fixed.get(m) or next(spare) for m in sorted(methods)}


def to_data_uri(fig: Figure) -> str:
    """Render a figure to a base64 PNG ``data:`` URI (the report embeds it; no external files)."""
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)  # constrained layout already fits; "tight" would draw twice
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


Point = tuple[float, float, float]  # x, mean y, std y


@dataclass
class Panel:
    """One small multiple: per-method curves, an optional parent level (with a +-band) and baseline."""

    title: str
    curves: dict[str, list[Point]] = field(default_factory=dict)
    parent: float | None = None
    band: float | None = None  # shade parent +- band (the prune-potential tolerance delta)
    baseline: float | None = None
    logy: bool = False


def _grid(n: int, ncols: int, w: float, h: float, sharey: bool = False) -> tuple[Figure, list, int, int]:
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(w * ncols, h * nrows + 0.5), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=sharey)
    flat = [ax for row in axes for ax in row]
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n], nrows, ncols


def _legend(fig: Figure, colors: Mapping[str, str | None], extra: Sequence[tuple[str, dict]] = ()) -> None:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=c, marker="o", ms=4, lw=2, label=m) for m, c in colors.items()]
    handles += [Line2D([], [], label=label, **style) for label, style in extra]
    fig.legend(handles=handles, loc="outside upper center", ncols=min(len(handles), 8), frameon=False, fontsize=9)


def curve_grid(panels: Sequence[Panel], colors: Mapping[str, str], *, xlabel: str = "prune ratio", ylabel: str = "",
               percent_y: bool = False, ncols: int = 4, size: tuple[float, float] = (3.3, 2.6), logy: bool = False,
               xlim: tuple[float, float] | None = (0.0, 1.0), logx: bool = False) -> str:
    """Small multiples of y vs x, one line per method (mean over repetitions, +-std shaded when > 1 rep)."""
    fig, axes, nrows, ncols = _grid(len(panels), ncols, *size)
    used: dict[str, str] = {}
    extra: dict[str, dict] = {}
    scale = 100.0 if percent_y else 1.0
    for i, (ax, p) in enumerate(zip(axes, panels, strict=True)):
        if p.parent is not None:
            if p.band:
                ax.axhspan(scale * (p.parent - p.band), scale * (p.parent + p.band), color="0.82", zorder=0)
            extra["parent ± δ (band)" if p.band else "parent"] = dict(color=PARENT_COLOR, ls="--", lw=1)
            ax.axhline(scale * p.parent, color=PARENT_COLOR, ls="--", lw=1, zorder=1)
        if p.baseline is not None:
            ax.axhline(scale * p.baseline, color=BASELINE_COLOR, ls=":", lw=1.5, zorder=1)
            extra["baseline (separately trained)"] = dict(color=BASELINE_COLOR, ls=":", lw=1.5)
        for method, pts in p.curves.items():
            if not pts:
                continue
            pts = sorted(pts)
            xs, ys, ss = zip(*pts, strict=True)
            c = colors.get(method, "#333333")
            used[method] = c
            ax.plot(xs, [scale * y for y in ys], color=c, marker="o", ms=3, lw=1.6, zorder=3)
            if any(s > 0 for s in ss):
                low = [scale * (y - s) for y, s in zip(ys, ss, strict=True)]
                high = [scale * (y + s) for y, s in zip(ys, ss, strict=True)]
                ax.fill_between(xs, low, high, color=c, alpha=0.15, lw=0, zorder=2)
        ax.set_title(p.title, fontsize=10)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
        if xlim:
            ax.set_xlim(*xlim)
        if logy or p.logy:
            ax.set_yscale("log")
        if logx:
            ax.set_xscale("log")
        if i // ncols == nrows - 1 or i + ncols >= len(panels):
            ax.set_xlabel(xlabel, fontsize=9)
        if i % ncols == 0:
            ax.set_ylabel(ylabel, fontsize=9)
    _legend(fig, {m: colors[m] for m in colors if m in used}, list(extra.items()))
    return to_data_uri(fig)


def pp_bars(names: Sequence[str], methods: Sequence[str], stats: Mapping[tuple[str, str], Mapping], colors: Mapping[str, str],
            title: str = "") -> str:
    """Grouped bars of prune potential [%] (mean, std as error bar): one group per distribution, a bar per method."""
    width = min(0.8 / max(len(methods), 1), 0.25)
    fig = Figure(figsize=(min(max(4.5, 0.9 * len(names) * max(1, len(methods)) ** 0.5 + 2), 14), 3.6), layout="constrained")
    ax = fig.subplots()
    for j, m in enumerate(methods):
        xs, ys, es = [], [], []
        for i, n in enumerate(names):
            s = stats.get((m, n))
            if s is not None:
                xs.append(i + width * (j + 0.5 - len(methods) / 2))
                ys.append(100 * s["mean"])
                es.append(100 * s["std"])
        ax.bar(xs, ys, width * 0.92, yerr=es if any(es) else None, color=colors.get(m), label=m,
               error_kw=dict(lw=1, capsize=2, ecolor="0.25"))
    ax.set_xticks(range(len(names)), names, rotation=30 if len(names) > 4 else 0, ha="right" if len(names) > 4 else "center",
                  fontsize=9)
    ax.set_ylabel("prune potential [%]")
    ax.set_ylim(0, 100)
    ax.set_xlim(-0.7, len(names) - 0.3)
    ax.grid(axis="y", alpha=0.3)
    if title:
        ax.set_title(title, fontsize=10)
    fig.legend(loc="outside upper center", ncols=min(len(methods), 8), fontsize=9, frameon=False)
    return to_data_uri(fig)


def excess_plot(records: Sequence[Mapping], slopes: Mapping[str, float], colors: Mapping[str, str], shifted_label: str) -> str:
    """Excess error [percentage points] vs prune ratio: one point per pruned model, a through-origin fit per method."""
    fig = Figure(figsize=(6.4, 3.9), layout="constrained")
    ax = fig.subplots()
    ax.axhline(0, color=PARENT_COLOR, lw=0.8)
    for m in sorted({r["method"] for r in records}):
        pts = [(r["prune_ratio"], 100 * r["excess_error"]) for r in records if r["method"] == m]
        xs, ys = zip(*pts, strict=True)
        c = colors.get(m)
        ax.scatter(xs, ys, s=18, color=c, alpha=0.8, zorder=3)
        b = slopes.get(m, 0.0)
        ax.plot([0, 1], [0, 100 * b], color=c, lw=1.6, label=f"{m}: slope {round(100 * b, 2) + 0.0:+.2f} pp per unit ratio")
    ax.set_xlim(0, 1)
    ax.set_xlabel("prune ratio")
    ax.set_ylabel("excess error [pp]")
    ax.set_title(f"excess error vs prune ratio (D' = {shifted_label})", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=False, loc="upper left")
    return to_data_uri(fig)


def param_lines(panels: Sequence[tuple[str, Mapping[str, Sequence[tuple[float, float, float]]]]], colors: Mapping[str, str],
                xlabel: str, ylabel: str = "prune potential [%]", percent: bool = True, ncols: int = 3) -> str:
    """Small multiples of a per-method statistic against a numeric parameter (e.g. PP vs noise eps)."""
    fig, axes, nrows, ncols = _grid(len(panels), ncols, *((5.2, 3.3) if len(panels) == 1 else (3.6, 2.7)))
    scale = 100.0 if percent else 1.0
    used: dict[str, str | None] = {}  # None: matplotlib's next colour (a method without one)
    for i, (ax, (title, curves)) in enumerate(zip(axes, panels, strict=True)):
        for m, pts in curves.items():
            pts = sorted(pts)
            if not pts:
                continue
            xs, ys, ss = zip(*pts, strict=True)
            used[m] = colors.get(m)
            ax.errorbar(xs, [scale * y for y in ys], yerr=[scale * s for s in ss] if any(ss) else None, color=colors.get(m),
                        marker="o", ms=3, lw=1.6, capsize=2)
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
        levels = sorted({x for pts in curves.values() for x, _, _ in pts})
        if 1 < len(levels) <= 8:
            ax.set_xticks(levels, [f"{x:g}" for x in levels])
        if percent:
            ax.set_ylim(-3, 103)
        ax.set_xlabel(xlabel, fontsize=9)
        if i % ncols == 0:
            ax.set_ylabel(ylabel, fontsize=9)
    _legend(fig, used)
    return to_data_uri(fig)


def ratio_family(panels: Sequence[tuple[str, Mapping[float, Sequence[tuple[float, float]]]]], xlabel: str,
                 ylabel: str, ncols: int = 4) -> str:
    """One panel per method: y vs a parameter, one line per prune ratio (viridis: light = more pruned);
    the curve under key -1 is the separately trained baseline (grey dotted)."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    cmap, norm = colormaps["viridis"], Normalize(0, 1)
    fig, axes, nrows, ncols = _grid(len(panels), ncols, 3.3, 2.6, sharey=True)  # methods compared on one scale
    for i, (ax, (title, by_ratio)) in enumerate(zip(axes, panels, strict=True)):
        for ratio in sorted(by_ratio):
            pts = sorted(by_ratio[ratio])
            if pts:
                xs, ys = zip(*pts, strict=True)
                if ratio < 0:  # the separately trained baseline
                    ax.plot(xs, ys, color=BASELINE_COLOR, ls=":", lw=1.8, label="baseline")
                else:
                    ax.plot(xs, ys, color=cmap(norm(ratio)), lw=1.3)
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
        ax.set_xlabel(xlabel, fontsize=9)
        if i % ncols == 0:
            ax.set_ylabel(ylabel, fontsize=9)
    if any(-1.0 in by for _, by in panels):
        from matplotlib.lines import Line2D

        fig.legend(handles=[Line2D([], [], color=BASELINE_COLOR, ls=":", lw=1.8, label="separately trained baseline")],
                   loc="outside upper center", frameon=False, fontsize=9)
    fig.colorbar(ScalarMappable(norm, cmap), ax=axes, label="prune ratio", shrink=0.9)
    return to_data_uri(fig)
