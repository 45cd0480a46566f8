"""The deployment gate of ``prunebench check``: is the pruned model confidently within delta of its parent
on every distribution? Paired on the same examples (:mod:`prunebench.analysis.paired`).

Per distribution D' the gate estimates Delta = err(pruned, D') - err(parent, D') with its interval and
decides ``within`` / ``beyond`` / ``inconclusive`` against delta (Lost in Pruning's inequality
err(pruned) <= err(parent) + delta, at one ratio, with its uncertainty). Overall: FAIL when any gated
distribution is confidently beyond, else INCONCLUSIVE when any is inconclusive, else PASS. A
distribution where the parent is near chance (at most 2 x chance) says nothing about pruning: it is
reported as ``uninformative`` and gates nothing.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from prunebench.analysis.decisions import CHANCE_FACTOR
from prunebench.analysis.paired import BEYOND, CONFIDENCE, INCONCLUSIVE, N_BOOT, Interval, Resampler, check_confidence, wrong_diff

PASS, FAIL, OPEN = "PASS", "FAIL", "INCONCLUSIVE"
EXIT = {PASS: 0, FAIL: 1, OPEN: 3}  # 2 is bad input


@dataclass(frozen=True)
class GateRow:
    distribution: str
    n_examples: int
    parent_acc: float
    pruned_acc: float
    delta: Interval  # err(pruned) - err(parent)
    verdict: str  # within | beyond | inconclusive | uninformative


@dataclass(frozen=True)
class GateResult:
    rows: tuple[GateRow, ...]
    status: str  # PASS | FAIL | INCONCLUSIVE
    delta: float
    level: float

    @property
    def exit_code(self) -> int:
        return EXIT[self.status]

    def named(self, verdict: str) -> list[str]:
        return [r.distribution for r in self.rows if r.verdict == verdict]


def gate(parent: Mapping[str, np.ndarray], pruned: Mapping[str, np.ndarray], delta: float, *, level: float = CONFIDENCE,
         n_boot: int = N_BOOT, seed: int = 0, num_classes: int | None = None,
         chance_factor: float = CHANCE_FACTOR) -> GateResult:
    """Gate ``pruned`` against ``parent`` on every ``correct/<distribution>`` outcome both have (same shapes)."""
    level = check_confidence(level)
    tags = [t for t in parent if t.startswith("correct/") and t in pruned and parent[t].shape == pruned[t].shape]
    if not tags:
        return GateResult((), OPEN, delta, level)
    res = Resampler(max(len(parent[t]) for t in tags), 1, n_boot, seed)
    chance = 1.0 / num_classes if num_classes else None
    rows = []
    for t in tags:
        d = wrong_diff(pruned[t], parent[t])
        point, boot = res.deltas(d[None, None, :])
        iv = Interval.from_samples(point[0], boot[0], level)
        p_acc, q_acc = float(parent[t].mean()), float(pruned[t].mean())
        verdict = "uninformative" if chance is not None and p_acc <= chance_factor * chance else iv.verdict(delta)
        rows.append(GateRow(t.split("/", 1)[1], len(d), p_acc, q_acc, iv, verdict))
    verdicts = {r.verdict for r in rows}
    status = FAIL if BEYOND in verdicts else OPEN if INCONCLUSIVE in verdicts or verdicts <= {"uninformative"} else PASS
    return GateResult(tuple(rows), status, delta, level)


__all__ = ["EXIT", "FAIL", "GateResult", "GateRow", "OPEN", "PASS", "gate"]
