"""Pruning-identified exemplars (PIEs): the test examples where pruning changes the population's answer.

Hooker et al., "What Do Compressed Deep Neural Networks Forget?" (2019), sec. 2.2: with populations of
independently trained parents and of pruned models (one per repetition), example i is a PIE at a method and
ratio when the modal (most frequent) predicted class of the pruned models differs from the modal predicted
class of the parents. Ties in the mode go to the smallest class index (a fixed, documented rule; Hooker et
al. do not specify one). With one repetition the rule reduces to "the pruned model's prediction differs from
its parent's": the weaker definition, since a single model's prediction flips also from training noise that
a population would average out (docs/STUDY.md). Numpy only (torch-free).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np


def modal(preds: np.ndarray, num_classes: int | None = None) -> np.ndarray:
    """Modal predicted class per example of predictions (R, n) (or (n,) for one model); ties -> smallest class."""
    p = np.asarray(preds, np.int64)
    p = p[None, :] if p.ndim == 1 else p
    c = int(num_classes if num_classes is not None else p.max(initial=0) + 1)
    counts = np.zeros((c, p.shape[1]), np.int64)
    for row in p:
        np.add.at(counts, (row, np.arange(p.shape[1])), 1)
    return counts.argmax(0)  # argmax returns the first (smallest) class among equal counts


def modal_pair(parent_preds: np.ndarray, pruned_preds: np.ndarray,
               num_classes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The parents' and the pruned models' modal predictions (n,) each, over one class count."""
    a, b = np.asarray(parent_preds), np.asarray(pruned_preds)
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(f"predictions over {a.shape[-1]} vs {b.shape[-1]} examples: not the same examples")
    c = num_classes if num_classes is not None else int(max(a.max(initial=0), b.max(initial=0)) + 1)
    return modal(a, c), modal(b, c)


def pie_mask(parent_preds: np.ndarray, pruned_preds: np.ndarray, num_classes: int | None = None) -> np.ndarray:
    """Boolean (n,): modal prediction of the pruned models != modal prediction of the parents."""
    ma, mb = modal_pair(parent_preds, pruned_preds, num_classes)
    return ma != mb


@dataclass(frozen=True)
class PieSummary:
    """PIE count and fraction, accuracy of the parents and pruned models on the PIEs vs on the rest, and each
    PIE's index with both populations' modal predictions there."""

    n_examples: int
    count: int
    fraction: float
    parent_acc_pie: float
    parent_acc_rest: float
    pruned_acc_pie: float
    pruned_acc_rest: float
    repetitions: int  # 1: the weaker one-repetition definition
    indices: tuple[int, ...]
    parent_modal: tuple[int, ...] = ()  # the parents' modal class at each PIE (aligned with ``indices``)
    pruned_modal: tuple[int, ...] = ()  # the pruned models' modal class at each PIE


def _acc(correct: np.ndarray, where: np.ndarray) -> float:
    return float(correct[:, where].mean()) if where.any() else float("nan")


def pie_summary(parent_preds: np.ndarray, pruned_preds: np.ndarray, labels: np.ndarray,
                num_classes: int | None = None) -> PieSummary:
    """The PIE summary from predictions (R, n) of parents and pruned models and the labels (n,)."""
    a = np.atleast_2d(np.asarray(parent_preds, np.int64))
    b = np.atleast_2d(np.asarray(pruned_preds, np.int64))
    y = np.asarray(labels, np.int64)
    ma, mb = modal_pair(a, b, num_classes)
    mask = ma != mb
    pa, pb = a == y[None, :], b == y[None, :]
    rest = ~mask
    n = len(mask)
    idx = np.flatnonzero(mask)
    return PieSummary(n, int(mask.sum()), float(mask.mean()) if n else 0.0, _acc(pa, mask), _acc(pa, rest),
                      _acc(pb, mask), _acc(pb, rest), int(min(len(a), len(b))), tuple(int(i) for i in idx),
                      tuple(int(v) for v in ma[idx]), tuple(int(v) for v in mb[idx]))


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """|A & B| / |A | B| of two PIE masks (1.0 when both are empty: the sets agree)."""
    x, y = np.asarray(a, bool), np.asarray(b, bool)
    union = int((x | y).sum())
    return 1.0 if union == 0 else float((x & y).sum() / union)


def overlaps(masks: Mapping[str, np.ndarray]) -> dict[tuple[str, str], float]:
    """Jaccard overlap of the PIE sets of every pair of methods at one ratio and distribution."""
    names = sorted(masks)
    return {(m, n): jaccard(masks[m], masks[n]) for i, m in enumerate(names) for n in names[i + 1:]}


__all__ = ["PieSummary", "jaccard", "modal", "modal_pair", "overlaps", "pie_mask", "pie_summary"]
