"""Report blocks for the decisions made with uncertainty: verdicts on the findings, prune potential with
intervals and per-ratio verdicts, and each distribution's resolution and flags (greyed out when flagged)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prunebench import analysis as A
from prunebench.analysis.decisions import verdict_counts
from prunebench.report.content import Section, Table, Text

STYLE = {"holds": "finding", "does not hold": "finding fails", "inconclusive": "finding open", "not checked": "finding open"}


def pct(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{100 * x:.{digits}f}"


def verdict_blocks(findings: Sequence[Any], level: float) -> list[Text]:
    """One coloured paragraph per finding of a study-specific analysis (sparse training, fair comparisons)."""
    return [Text(f"Finding ({f.name}): {f.claim}. Verdict at {100 * level:g}% confidence: {f.verdict}: "
                 f"{f.text.rstrip('.')}.", STYLE[f.verdict]) for f in findings]


def finding_blocks(an: A.Analysis) -> list[Any]:
    """One coloured paragraph per reference finding: verdict, claim, the numbers behind it."""
    level = f"{100 * an.level:g}%"
    out: list[Any] = []
    for f in an.findings:
        out.append(Text(f"Finding ({f.name}): {f.claim}. Verdict at {level} confidence: {f.text}.", STYLE[f.verdict]))
    if not an.decisions.available:
        out.append(Text(an.decisions.note, "note"))
    return out


def decisions_section(an: A.Analysis) -> Section:
    dec = an.decisions
    if not dec.available:
        return Section("decisions", "Decisions with uncertainty", [Text(dec.note, "note")])
    blocks: list[Any] = [Text(
        f"Every comparison is paired: a pruned model and its parent are evaluated on the same examples (and noise "
        f"draws), and Delta = err(pruned) - err(parent) gets a {100 * an.level:g}% interval from one joint bootstrap "
        "over test images and repetitions (Poisson weights per image, multinomial per repetition, Agresti-Min "
        "pseudo-counts; docs/STUDY.md). A ratio is 'within' when its whole interval is <= delta, 'beyond' when it is "
        "> delta, else 'inconclusive'. PP is the paper's prune potential on the repetition-averaged Delta; its "
        "interval comes from recomputing PP under every resample. Flagged distributions (grey) are not ranked.")]
    meths = an.methods
    body, muted = [], set()
    names = [d for d in dec.distributions] + list(dict.fromkeys(p.distribution for p in dec.potentials if p.aggregate))
    for i, d in enumerate(names):
        info = dec.distributions.get(d)
        line = [d]
        for m in meths:
            p = dec.potential(m, d)
            if p is None:
                line.append("-")
                continue
            c = verdict_counts(p)
            tail = "" if p.aggregate else f" ({c['within']}/{c['inconclusive']}/{c['beyond']})"
            line.append(f"{pct(p.pp.estimate)} [{pct(p.pp.low)}, {pct(p.pp.high)}]{tail}")
        if info is not None:
            line += [str(info.n_examples) + (f" x {info.draws}" if info.draws > 1 else ""), pct(info.parent_acc),
                     pct(info.resolution, 2), info.reason or "ranked"]
            if not info.ranked:
                muted.add(i)
        else:
            line += ["", "", "", "aggregate of ranked distributions"]
        body.append(line)
    header = ["distribution", *meths, "examples", "parent acc [%]", "resolution [pp]", "flag"]
    blocks.append(Table(header, body, f"Prune potential [%]: point [{100 * an.level:g}% interval] (ratios within / "
                                      "inconclusive / beyond delta); resolution = typical interval half-width where "
                                      f"the verdict is decided; delta = {pct(an.delta, 2)} pp", muted=muted))
    rows = []
    for p in dec.potentials:
        if p.distribution != an.reference or p.aggregate:
            continue
        for rv in p.ratios:
            rows.append([p.method, f"{100 * rv.ratio:.1f}", f"{100 * rv.delta.estimate:+.2f}",
                         f"[{100 * rv.delta.low:+.2f}, {100 * rv.delta.high:+.2f}]", rv.verdict, str(rv.reps)])
    if rows:
        blocks.append(Table(["method", "prune ratio [%]", "Delta [pp]", f"{100 * an.level:g}% interval [pp]", "verdict",
                             "reps"], rows, "Nominal distribution: paired error increase over the parent per tested "
                                            "ratio", collapsed=len(rows) > 24))
    if an.slope_intervals:
        blocks.append(Table(["method", "excess-error slope [pp per unit ratio]", f"{100 * an.level:g}% interval"],
                            [[m, f"{100 * iv.estimate:+.2f}", f"[{100 * iv.low:+.2f}, {100 * iv.high:+.2f}]"]
                             for m, iv in sorted(an.slope_intervals.items())],
                            "Excess error (paired form) vs prune ratio, through-origin slope with its interval"))
    return Section("decisions", "Decisions with uncertainty", blocks)


__all__ = ["decisions_section", "finding_blocks"]
