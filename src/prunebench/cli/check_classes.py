"""``prunebench check --per-class``: no class may lose more than its tolerance either (issue 15).

For every distribution the gate decides (not the uninformative ones), the per-class Delta_c on the examples
of class c, paired and with its interval (:func:`prunebench.analysis.perclass.class_rows`), against
``--class-delta`` (default: ``--delta``). A class confidently beyond makes the check FAIL, one undecided makes
it INCONCLUSIVE (unless it already fails), naming ``distribution:class``.
"""
from __future__ import annotations

from typing import Any

from prunebench.analysis.paired import BEYOND, INCONCLUSIVE
from prunebench.analysis.perclass import ClassRow, class_rows


def class_gate(result: Any, parent: Any, pruned: Any, num_classes: int, classes: Any, class_delta: float,
               level: float, n_boot: int, seed: int) -> dict[str, list[ClassRow]]:
    """Distribution -> class rows, for each gated distribution of ``result`` (a GateResult) with labels."""
    from prunebench.analysis.whopays import longest_labels
    from prunebench.errors import UserError

    y = longest_labels(parent.labels)
    if y is None:
        raise UserError("--per-class needs the test labels, which the nominal evaluator records; keep nominal in --suite")
    out: dict[str, list[ClassRow]] = {}
    for r in result.rows:
        if r.verdict == "uninformative":
            continue
        tag = f"correct/{r.distribution}"
        p, q = parent.outcomes[tag], pruned.outcomes[tag]
        if len(p) > len(y):
            continue
        out[r.distribution] = class_rows(p, q, y[:len(p)], num_classes, class_delta, classes=classes, level=level,
                                         n_boot=n_boot, seed=seed)
    return out


def named(tables: dict[str, list[ClassRow]], verdict: str) -> list[str]:
    return [f"{d}:{r.name}" for d, rows in tables.items() for r in rows if r.verdict == verdict]


def format_classes(tables: dict[str, list[ClassRow]], class_delta: float) -> str:
    """The classes that are not confidently within, one line each (or a line saying all are)."""
    lines = [f"per class (tolerance {100 * class_delta:g} pp per class):"]
    for d, rows in tables.items():
        for r in rows:
            if r.verdict in (BEYOND, INCONCLUSIVE):
                lines.append(f"  {d}  {r.name}: parent {100 * r.parent_acc:.2f}%  pruned {100 * r.pruned_acc:.2f}%  "
                             f"Delta {100 * r.delta.estimate:+.2f} pp [{100 * r.delta.low:+.2f}, {100 * r.delta.high:+.2f}]"
                             f"  {r.verdict}")
    if len(lines) == 1:
        lines.append("  every class of every gated distribution confidently within")
    return "\n".join(lines)


__all__ = ["class_gate", "format_classes", "named"]
