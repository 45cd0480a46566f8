"""The "Fair comparison" section (Wang et al. 2023): the retraining-LR comparison per pipeline and ratio, the scratch
baselines, and verdicts on the paper's findings (:mod:`prunebench.analysis.fairness`), each with its interval."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from prunebench import analysis as A
from prunebench.analysis.fairness import analyze_fairness
from prunebench.report.content import Section, Table, Text
from prunebench.report.decisions import verdict_blocks

Row = Mapping[str, Any]


def _iv(an: A.Analysis, method: str, ratio: float) -> str:
    pot = an.decisions.potential(method, an.reference) if an.reference else None
    rv = next((v for v in (pot.ratios if pot else ()) if v.target_ratio == ratio), None)
    if rv is None:
        return "-"
    d = rv.delta
    return f"{100 * d.estimate:+.2f} [{100 * d.low:+.2f}, {100 * d.high:+.2f}]"


def fairness_section(rows: Sequence[Row], an: A.Analysis) -> Section:
    fa = analyze_fairness(rows, an.decisions, an.reference)
    blocks: list[Any] = [Text(
        "Fair comparisons (Wang et al. 2023): an advantage must come from the pruning stage, not from a longer or "
        "better retraining. Delta = err(model) - err(parent) on the same test examples; the scratch baselines train "
        "the pruned architecture from a fresh initialisation (S3: the retraining epochs; SX-A: the same total "
        "epochs; SX-B: the same total FLOPs). Budgets per pipeline are in 'Model size and cost'.")]
    blocks += verdict_blocks(fa.findings, fa.level)
    ratios = sorted({float(r["target_ratio"]) for r in rows if r.get("kind") == "pruned"})
    scratch = sorted({(str(r["pipeline"]), str(r["scratch"]), str(r["method"])) for r in rows
                      if r.get("kind") == "pruned" and r.get("scratch") and r.get("pipeline")})
    body = []
    for pipe, by_lr in fa.lrs.items():
        for lr, label in sorted(by_lr.items()):
            body.append([pipe, f"{fa.budgets.get(pipe, 0):g}", f"{lr:g}", *[_iv(an, label, t) for t in ratios]])
        for p, setup, label in scratch:
            if p == pipe:
                body.append([pipe, f"scratch {setup}", "-", *[_iv(an, label, t) for t in ratios]])
    blocks.append(Table(["pipeline", "retraining epochs", "retraining LR", *[f"Delta at {100 * t:g}% [pp]" for t in ratios]],
                        body, f"{an.reference} error increase over the parent, with its {100 * fa.level:g}% paired "
                        "interval; scratch rows: the pruned architecture trained from scratch under that setup"))
    return Section("fairness", "Fair comparison: retraining LR, budget and scratch baselines", blocks)
