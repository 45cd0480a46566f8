"""The "Sparse training from scratch" section of a ``mode: sparse-train`` study's report.

Numbers come from :func:`prunebench.analysis.sparse.analyze_sparse`: verdicts on the random-pruning
findings, accuracy vs sparsity per size (dense line +- std), the gap to dense vs model size, robustness
vs dense, the realised per-layer densities and the gradient norm at initialisation.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from prunebench import analysis as A
from prunebench.analysis.paired import Interval
from prunebench.analysis.sparse import SparseAnalysis, analyze_sparse
from prunebench.report import plots as P
from prunebench.report.content import Image, Section, Table, Text
from prunebench.report.decisions import verdict_blocks

Row = Mapping[str, Any]


def _iv(iv: Interval | None) -> str:
    if iv is None:
        return "-"
    return f"{100 * iv.estimate:+.2f} [{100 * iv.low:+.2f}, {100 * iv.high:+.2f}]"


def _size(s: str) -> str:
    return s or "-"


def accuracy_figure(sa: SparseAnalysis, colors: Mapping[str, str]) -> str:
    """Accuracy vs sparsity, one panel per model size, one line per run, the dense model as the reference line."""
    panels = []
    for s in sa.sizes:
        curves = {run: [(p.sparsity, p.acc_mean, p.acc_std) for p in sa.points if p.run == run and p.size == s]
                  for run in sa.runs}
        dense = sa.dense.get(s)
        panels.append(P.Panel(f"{_size(s)}" if s else "accuracy", curves, parent=dense[0] if dense else None))
    return P.curve_grid(panels, colors, xlabel="sparsity", ylabel=f"{sa.reference} accuracy [%]", percent_y=True,
                        xlim=None)


def gap_figure(sa: SparseAnalysis, colors: Mapping[str, str]) -> str:
    """Delta to dense (err(sparse) - err(dense), paired, with its interval) vs model size, one panel per sparsity."""
    sparsities = sorted({g["sparsity"] for g in sa.gaps})
    fig, axes, _, _ = P._grid(len(sparsities), 4, 3.3, 2.6)
    for ax, sp in zip(axes, sparsities, strict=True):
        for g in (g for g in sa.gaps if g["sparsity"] == sp):
            xs, ys, lo, hi = [], [], [], []
            for i, s in enumerate(sa.sizes):
                iv = g["gaps"].get(s)
                if iv is not None:
                    xs.append(i)
                    ys.append(100 * iv.estimate)
                    lo.append(100 * (iv.estimate - iv.low))
                    hi.append(100 * (iv.high - iv.estimate))
            if xs:
                ax.errorbar(xs, ys, yerr=[lo, hi], color=colors.get(g["run"], "#333"), marker="o", ms=3, lw=1.6,
                            capsize=3, label=g["run"])
        ax.axhline(0, color=P.PARENT_COLOR, ls="--", lw=1)
        ax.set_xticks(range(len(sa.sizes)), [_size(s) for s in sa.sizes], fontsize=8)
        ax.set_title(f"sparsity {100 * sp:g}%", fontsize=10)
        ax.set_ylabel("Delta to dense [pp]", fontsize=9)
        ax.grid(alpha=0.3)
    P._legend(fig, {r: colors.get(r, "#333") for r in sa.runs}, [("dense (same size)", dict(color=P.PARENT_COLOR, ls="--"))])
    return P.to_data_uri(fig)


def density_figure(sa: SparseAnalysis, colors: Mapping[str, str]) -> str | None:
    """Realised per-layer density per run (bars), one panel per size x sparsity."""
    keys = sorted({(s, sp) for (_, s, sp) in sa.densities}, key=lambda k: (sa.sizes.index(k[0]) if k[0] in sa.sizes else 0, k[1]))
    if not keys:
        return None
    fig, axes, _, _ = P._grid(len(keys), 2, 6.0, 2.8)
    for ax, (s, sp) in zip(axes, keys, strict=True):
        runs = [r for r in sa.runs if (r, s, sp) in sa.densities]
        layers = list(sa.densities[(runs[0], s, sp)])
        width = 0.8 / max(len(runs), 1)
        for j, run in enumerate(runs):
            d = sa.densities[(run, s, sp)]
            ax.bar([i + j * width for i in range(len(layers))], [d.get(k, 0.0) for k in layers], width,
                   color=colors.get(run, "#333"), label=run)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(layers))], [k.removesuffix(".weight") for k in layers],
                      rotation=60, fontsize=6, ha="right")
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("density", fontsize=9)
        ax.set_title(f"{_size(s)} at sparsity {100 * sp:g}%", fontsize=10)
        ax.grid(alpha=0.3, axis="y")
    P._legend(fig, {r: colors.get(r, "#333") for r in sa.runs})
    return P.to_data_uri(fig)


def _points_table(sa: SparseAnalysis) -> Table:
    body = []
    for s in sa.sizes:
        d = sa.dense.get(s)
        if d:
            body.append(["dense", _size(s), "0", f"{100 * d[0]:.2f} ± {100 * d[1]:.2f}", str(d[2]), "-"])
        for p in (p for p in sa.points if p.size == s):
            body.append([p.run, _size(s), f"{100 * p.sparsity:g}", f"{100 * p.acc_mean:.2f} ± {100 * p.acc_std:.2f}",
                         str(p.seeds), _iv(p.delta)])
    return Table(["run", "size", "sparsity [%]", f"{sa.reference} accuracy [%] (mean ± std over seeds)", "seeds",
                  f"Delta to dense [pp] ({100 * sa.level:g}% interval)"], body,
                 "Delta = err(sparse) - err(dense of the same size and seed), paired on the same test examples")


def _gap_table(sa: SparseAnalysis) -> Table | None:
    if len(sa.sizes) < 2:
        return None
    body = [[g["run"], f"{100 * g['sparsity']:g}", *[_iv(g["gaps"].get(s)) for s in sa.sizes], _iv(g.get("shrink"))]
            for g in sa.gaps]
    return Table(["run", "sparsity [%]", *[f"Delta at {_size(s)} [pp]" for s in sa.sizes],
                  f"shrink: Delta({_size(sa.sizes[0])}) - Delta({_size(sa.sizes[-1])}) [pp]"], body,
                 "sizes from the smallest dense model to the largest; shrink > 0: the gap closes with size")


def _robust_table(sa: SparseAnalysis) -> Table | None:
    if not sa.robustness:
        return None
    metrics = list(dict.fromkeys(r["metric"] for r in sa.robustness))
    cells: dict[tuple[str, str, float], dict[str, str]] = defaultdict(dict)
    for r in sa.robustness:
        scale = 100.0 if "/acc/" in r["metric"] or "auroc" in r["metric"] or r["metric"].endswith("/ece") else 1.0
        text = _iv(r["interval"]) if r["interval"] is not None else f"{scale * r['change']:+.3g} ± {scale * r['std']:.2g}"
        cells[(r["run"], r["size"], r["sparsity"])][r["metric"]] = text
    body = [[run, _size(s), f"{100 * sp:g}", *[c.get(m, "-") for m in metrics]] for (run, s, sp), c in cells.items()]
    return Table(["run", "size", "sparsity [%]", *metrics], body,
                 "sparse minus dense of the same size and seed: accuracies, AUROC and ECE in pp (accuracies with their "
                 "paired interval), NLL / Brier as is, mean ± std over seeds; higher AUROC and accuracy, lower ECE / "
                 "NLL are better", collapsed=len(body) > 30)


def _grad_table(sa: SparseAnalysis) -> Table | None:
    if not sa.grad_norms:
        return None
    body = [[g["run"], _size(g["size"]), f"{100 * g['sparsity']:g}", f"{g['grad_norm']:.4g}",
             "-" if g["dense_grad_norm"] is None else f"{g['dense_grad_norm']:.4g}"] for g in sa.grad_norms]
    return Table(["run", "size", "sparsity [%]", "gradient norm at init (masked)", "dense"], body,
                 "||dL/dtheta * mask||_2 on 256 validation images at initialisation (mean over seeds; Liu et al. 2022, "
                 "Sec. 4.4)")


def sparse_section(rows: Sequence[Row], an: A.Analysis) -> Section:
    """The section; the analysis needs the study's paired decisions (outcomes) for intervals and verdicts."""
    sa = analyze_sparse(rows, an.decisions, an.reference)
    colors = P.method_colors(sa.runs)
    blocks: list[Any] = [Text(
        "Sparse training from scratch (Liu et al., ICLR 2022): every run draws its mask at initialisation (a criterion "
        "chooses which weights, a layer-wise scheme how many) and trains with the dense model's recipe and seed; "
        "static masks stay fixed (re-applied after every optimizer step, verified before saving), dynamic ones (SET, "
        "RigL) move with the number of active weights constant. Each size has its own dense reference.")]
    blocks += verdict_blocks(sa.findings, sa.level)
    if not an.decisions.available:
        blocks.append(Text(an.decisions.note, "note"))
    blocks.append(Image(accuracy_figure(sa, colors), f"{sa.reference} accuracy vs sparsity per model size; dashed: the "
                        "dense model of that size (mean over seeds); shaded: ± std over seeds"))
    blocks.append(_points_table(sa))
    if len(sa.sizes) > 1 and sa.gaps:
        blocks.append(Image(gap_figure(sa, colors), "Delta to the dense model of the same size vs size, with its "
                            f"{100 * sa.level:g}% paired interval"))
    blocks.extend(b for b in (_gap_table(sa), _robust_table(sa)) if b is not None)
    dens = density_figure(sa, colors)
    if dens:
        blocks.append(Image(dens, "realised per-layer density of every run (mean over seeds; dynamic runs: at the end "
                            "of training)"))
    grad = _grad_table(sa)
    if grad is not None:
        blocks.append(grad)
    return Section("sparse", "Sparse training from scratch", blocks)


def terminal_text(rows: Sequence[Row], an: A.Analysis) -> str:
    """What ``prunebench run`` prints for a sparse-train study: the accuracy / Delta table and the verdicts."""
    sa = analyze_sparse(rows, an.decisions, an.reference)
    t = _points_table(sa)
    widths = [max(len(h), *(len(r[i]) for r in t.rows)) if t.rows else len(h) for i, h in enumerate(t.header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(t.header, widths, strict=True)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in t.rows]
    lines.append(t.caption)
    lines += [f"{f.name}: {f.verdict}: {f.claim}; {f.text}" for f in sa.findings]
    return "\n".join(lines)


__all__ = ["sparse_section", "terminal_text"]
