"""Who pays for pruning, by class: per-class accuracy and the per-class error increase over the parent.

An aggregate Delta within delta can hide one class that lost far more (Hooker et al., "What Do Compressed
Deep Neural Networks Forget?", 2019, sec. 3). Per class c, on the test examples labelled c only:

    Delta_c = err_c(pruned) - err_c(parent) = mean over i with y_i = c of [wrong(pruned, i) - wrong(parent, i)]

It is paired on the same examples and its interval comes from the study's joint bootstrap
(:class:`prunebench.analysis.paired.Resampler`): the very same Poisson weight per test image, restricted to
the images of class c (so the class estimates and the overall Delta are one coherent resample), plus the
repetition and pseudo-count terms of :meth:`Resampler.deltas`. The "classes that pay" summary names the
worst class, its Delta and the disparity = Delta_worst - Delta_overall, and says when the worst class is not
resolved: when another class's Delta is not confidently below it (paired difference of the same replicates).
Numpy only (torch-free).
"""
from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from prunebench.analysis.paired import BEYOND, CONFIDENCE, INCONCLUSIVE, TOL, Interval, Resampler, check_confidence


def _as_2d(correct: np.ndarray) -> np.ndarray:
    a = np.asarray(correct, bool)
    return a.reshape(len(a), -1)


def per_class_accuracy(correct: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Accuracy per class (C,) from outcomes (n,) or (n, k) and labels (n,); NaN for a class with no example."""
    c = _as_2d(correct).mean(1)
    y = np.asarray(labels, np.int64)
    if len(y) != len(c):
        raise ValueError(f"{len(c)} outcomes but {len(y)} labels: not the same examples")
    n_c = np.bincount(y, minlength=num_classes)[:num_classes].astype(np.float64)
    s_c = np.bincount(y, weights=c, minlength=num_classes)[:num_classes]
    return np.divide(s_c, n_c, out=np.full(num_classes, np.nan), where=n_c > 0)


def class_deltas(diffs: np.ndarray, labels: np.ndarray, num_classes: int, resampler: Resampler,
                 present: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-class Delta: points (M, C) and bootstrap replicates (M, C, B) for M comparisons at once.

    ``diffs`` (M, R, n) as for :meth:`Resampler.deltas` (wrong(pruned) - wrong(parent) per example); the
    image weights of class c are the resampler's own weights of those images. A class without examples
    gets NaN.
    """
    d = np.asarray(diffs, np.float64)
    y = np.asarray(labels, np.int64)
    m, _, n = d.shape
    if len(y) != n:
        raise ValueError(f"{n} examples but {len(y)} labels")
    points = np.full((m, num_classes), np.nan)
    boot = np.full((m, num_classes, resampler.n_boot), np.nan)
    for c in range(num_classes):
        idx = np.flatnonzero(y == c)
        if len(idx) == 0:
            continue
        sub = copy.copy(resampler)
        sub.image_w = resampler.image_w[:, idx]
        p, b = sub.deltas(d[:, :, idx], present)
        points[:, c], boot[:, c] = p, b
    return points, boot


@dataclass(frozen=True)
class ClassRow:
    """One class of one comparison: accuracies, Delta_c with its interval, and the verdict against a tolerance."""

    index: int
    name: str
    n_examples: int
    parent_acc: float
    pruned_acc: float
    delta: Interval
    verdict: str  # within | beyond | inconclusive (against the class tolerance)


def class_names(classes: Sequence[str] | None, num_classes: int) -> list[str]:
    """The dataset's class names where it has them (``DataInfo.classes``), else ``class 0`` ... ``class C-1``."""
    if classes and len(classes) == num_classes:
        return [str(c) for c in classes]
    return [f"class {c}" for c in range(num_classes)]


def class_rows(parent_correct: np.ndarray, pruned_correct: np.ndarray, labels: np.ndarray, num_classes: int,
               class_delta: float, *, classes: Sequence[str] | None = None, level: float = CONFIDENCE,
               resampler: Resampler | None = None, n_boot: int = 1000, seed: int = 0) -> list[ClassRow]:
    """Per-class rows for one pruned model against its parent (one repetition), verdicts against ``class_delta``."""
    level = check_confidence(level)
    p, q = _as_2d(parent_correct), _as_2d(pruned_correct)
    if p.shape != q.shape:
        raise ValueError(f"outcomes of different shapes {q.shape} vs {p.shape}: not the same examples")
    y = np.asarray(labels, np.int64)
    res = resampler or Resampler(len(y), 1, n_boot, seed)
    diff = (p.astype(np.float64) - q.astype(np.float64)).mean(1)
    pts, boot = class_deltas(diff[None, None, :], y, num_classes, res)
    pa, qa = per_class_accuracy(p, y, num_classes), per_class_accuracy(q, y, num_classes)
    names = class_names(classes, num_classes)
    counts = np.bincount(y, minlength=num_classes)[:num_classes]
    rows = []
    for c in range(num_classes):
        if counts[c] == 0:
            continue
        iv = Interval.from_samples(pts[0, c], boot[0, c], level)
        rows.append(ClassRow(c, names[c], int(counts[c]), float(pa[c]), float(qa[c]), iv, iv.verdict(class_delta)))
    return rows


def worst_and_ties(points: np.ndarray, boot: np.ndarray, level: float = CONFIDENCE) -> tuple[int, list[int]]:
    """The class with the largest point Delta_c (ties in the point: the smallest index) and the classes the
    measurement cannot rank below it.

    ``points`` (C,) and ``boot`` (C, B): per-class Delta and its replicates from one joint bootstrap
    (:func:`class_deltas`), so Delta_worst - Delta_c has replicates ``boot[w] - boot[c]``. Class c is tied with
    the worst when that paired difference's interval at ``level`` does not lie wholly above 0. Each comparison
    at ``level`` is the right test for "the worst class is worse than every other" (it holds only if every
    one of them holds). Classes with a NaN point (no examples) are skipped.
    """
    level = check_confidence(level)
    pts, b = np.asarray(points, np.float64), np.asarray(boot, np.float64)
    ok = np.flatnonzero(np.isfinite(pts))
    if len(ok) == 0:
        raise ValueError("no class has examples")
    w = int(ok[np.argmax(pts[ok])])  # argmax: the first (smallest) index among equal points
    tied = [int(c) for c in ok if c != w
            and Interval.from_samples(pts[w] - pts[c], b[w] - b[c], level).low <= TOL]
    return w, tied


@dataclass(frozen=True)
class ClassesThatPay:
    """The worst class of a comparison: its name, Delta_c (with interval), disparity = Delta_worst - Delta_overall,
    and whether the ranking is resolved (``tied``: the classes the measurement cannot rank below it)."""

    worst: str
    worst_delta: Interval
    overall_delta: float
    disparity: float
    tied: tuple[str, ...] = ()

    @property
    def resolved(self) -> bool:
        """True when every other class is confidently below the worst one."""
        return not self.tied

    def label(self, limit: int = 4) -> str:
        """The worst class's name, or ``unresolved: worst, tied, ...`` (at most ``limit`` names, then ``+k more``)."""
        return worst_label(self.worst, self.tied, limit)


def worst_label(worst: str, tied: Sequence[str], limit: int = 4) -> str:
    """``worst`` when nothing is tied with it, else ``unresolved: worst, a, b, ...`` (``+k more`` past ``limit``)."""
    if not tied:
        return worst
    names = [worst, *tied]
    more = f", +{len(names) - limit} more" if len(names) > limit else ""
    return "unresolved: " + ", ".join(names[:limit]) + more


def classes_that_pay(rows: Sequence[ClassRow], overall_delta: float, replicates: np.ndarray | None = None,
                     ) -> ClassesThatPay | None:
    """The summary over one comparison's class rows (the class with the largest point Delta_c); None if no rows.

    ``replicates`` (C, B), indexed by class index: the bootstrap replicates of every Delta_c (from
    :func:`class_deltas`); the ties then come from the paired differences (:func:`worst_and_ties`). Without
    them, a class is tied when its interval overlaps the worst class's (more conservative: it calls more ties).
    """
    if not rows:
        return None
    worst = max(rows, key=lambda r: (r.delta.estimate, -r.index))
    if replicates is not None:
        by = {r.index: r for r in rows}
        idx = sorted(by)
        pts = np.array([by[c].delta.estimate for c in idx])
        _, tied_pos = worst_and_ties(pts, np.asarray(replicates)[idx], worst.delta.level)
        tied = tuple(by[idx[i]].name for i in tied_pos)
    else:
        tied = tuple(r.name for r in sorted(rows, key=lambda r: r.index)
                     if r is not worst and r.delta.high >= worst.delta.low - TOL)
    return ClassesThatPay(worst.name, worst.delta, float(overall_delta), float(worst.delta.estimate - overall_delta), tied)


def class_gate_status(rows: Sequence[ClassRow]) -> tuple[str, list[str], list[str]]:
    """(``beyond`` | ``inconclusive`` | ``within``, classes beyond, classes inconclusive) for the gate."""
    beyond = [r.name for r in rows if r.verdict == BEYOND]
    open_ = [r.name for r in rows if r.verdict == INCONCLUSIVE]
    return (BEYOND if beyond else INCONCLUSIVE if open_ else "within"), beyond, open_


__all__ = ["ClassRow", "ClassesThatPay", "class_deltas", "class_gate_status", "class_names", "class_rows",
           "classes_that_pay", "per_class_accuracy", "worst_and_ties", "worst_label"]
