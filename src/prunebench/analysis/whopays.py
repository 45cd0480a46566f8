"""Who pays for pruning, for a whole study: per-class tables, "classes that pay" and PIE tables as records.

From the result rows, their per-example outcomes (``correct/<dist>``) and, where recorded, the predicted
classes and labels (``pred/<dist>``, ``label/<dist>``, :func:`prunebench.study.results.load_predictions`):

* per method x target ratio x distribution x class: parent and pruned accuracy and Delta_c with its interval,
  pooled over repetitions with one :class:`~prunebench.analysis.paired.Resampler` for the study
  (:mod:`prunebench.analysis.perclass`); every accuracy-type distribution is over the first n test images in
  split order, so the labels of the nominal test set label every distribution;
* the "classes that pay" summary per method x ratio x distribution: the worst class by point estimate,
  ``worst_resolved`` False and ``tied_classes`` naming the classes whose Delta_c the measurement cannot rank
  below it (paired difference interval, :func:`prunebench.analysis.perclass.worst_and_ties`), and the
  disparity = Delta_worst - Delta_overall with its interval from the same replicates;
* PIEs per method x ratio x distribution with recorded predictions (:mod:`prunebench.analysis.pies`), and the
  Jaccard overlap of PIE sets between methods at equal ratio.

Lists of plain dicts (JSON-able, DataFrame-ready). Numpy only (torch-free).
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from prunebench.analysis.paired import CONFIDENCE, N_BOOT, Interval, Resampler, check_confidence, wrong_diff
from prunebench.analysis.perclass import class_deltas, class_names, per_class_accuracy, worst_and_ties
from prunebench.analysis.pies import overlaps, pie_summary

LABEL_PREFIX = "label/"  # test labels of the first n test images, whichever evaluator recorded them


def longest_labels(tags: Mapping[str, np.ndarray]) -> np.ndarray | None:
    """The longest ``label/<distribution>`` array among one model's recorded tags (labels are the same test
    labels in split order for every distribution); None if none."""
    found = [np.asarray(v) for k, v in tags.items() if k.startswith(LABEL_PREFIX)]
    return max(found, key=len) if found else None


def study_labels(predictions: Mapping[str, Mapping[str, np.ndarray]]) -> np.ndarray | None:
    """The test labels (uint8, first n test images) from any model's recorded predictions; None if none."""
    found = [y for tags in predictions.values() if (y := longest_labels(tags)) is not None]
    return max(found, key=len) if found else None


def _groups(rows: Sequence[Mapping[str, Any]]) -> tuple[dict[int, str], dict[tuple[str, float], dict[int, str]]]:
    parents = {int(r["rep"]): r["model_key"] for r in rows if r.get("kind") == "parent"}
    groups: dict[tuple[str, float], dict[int, str]] = defaultdict(dict)
    for r in rows:
        if r.get("kind") == "pruned" and int(r["rep"]) in parents:
            groups[(str(r["method"]), float(r["target_ratio"]))][int(r["rep"])] = r["model_key"]
    return parents, dict(sorted(groups.items()))


def class_tables(rows: Sequence[Mapping[str, Any]], outcomes: Mapping[str, Mapping[str, np.ndarray]],
                 labels: np.ndarray, num_classes: int, *, classes: Sequence[str] | None = None,
                 class_delta: float = 0.05, level: float = CONFIDENCE, n_boot: int = N_BOOT,
                 seed: int = 0) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(per-class records, "classes that pay" records) for every method x ratio x distribution."""
    level = check_confidence(level)
    y = np.asarray(labels, np.int64)
    names = class_names(classes, num_classes)
    parents, groups = _groups(rows)
    reps = sorted(parents)
    res = Resampler(len(y), len(reps), n_boot, seed)
    per_class: list[dict[str, Any]] = []
    pay: list[dict[str, Any]] = []
    for (method, ratio), members in groups.items():
        tags = sorted(set.intersection(*[set(outcomes.get(k, {})) for k in [*members.values(), *(parents[r] for r in members)]]))
        for tag in (t for t in tags if t.startswith("correct/")):
            n = len(outcomes[next(iter(members.values()))][tag])
            if n > len(y):
                continue
            yy = y[:n]
            diffs = np.zeros((1, len(reps), n))
            present = np.zeros((1, len(reps)), bool)
            p_acc, q_acc = np.zeros(num_classes), np.zeros(num_classes)
            for j, r in enumerate(reps):
                if r not in members:
                    continue
                p, q = outcomes[parents[r]][tag], outcomes[members[r]][tag]
                if len(p) != n or p.shape != q.shape:
                    continue
                diffs[0, j], present[0, j] = wrong_diff(q, p), True
                p_acc += per_class_accuracy(p, yy, num_classes)
                q_acc += per_class_accuracy(q, yy, num_classes)
            if not present.any():
                continue
            cnt = int(present.sum())
            pts, boot = class_deltas(diffs, yy, num_classes, res, present)
            opt, oboot = res.deltas(diffs, present)
            overall = Interval.from_samples(opt[0], oboot[0], level)
            dist = tag.split("/", 1)[1]
            recs: list[dict[str, Any]] = []
            for c in range(num_classes):
                if not np.isfinite(pts[0, c]):
                    continue
                iv = Interval.from_samples(pts[0, c], boot[0, c], level)
                recs.append({"method": method, "target_ratio": ratio, "distribution": dist, "class": names[c],
                             "class_index": c, "n_examples": int((yy == c).sum()), "repetitions": cnt,
                             "parent_acc": float(p_acc[c] / cnt), "pruned_acc": float(q_acc[c] / cnt),
                             "delta": iv.estimate, "low": iv.low, "high": iv.high, "level": level,
                             "verdict": iv.verdict(class_delta)})
            per_class.extend(recs)
            if recs:
                w, tied = worst_and_ties(pts[0], boot[0], level)
                worst = next(r for r in recs if r["class_index"] == w)
                disp = Interval.from_samples(pts[0, w] - opt[0], boot[0, w] - oboot[0], level)
                pay.append({"method": method, "target_ratio": ratio, "distribution": dist, "worst_class": worst["class"],
                            "worst_resolved": not tied, "tied_classes": [names[c] for c in tied],
                            "worst_delta": worst["delta"], "worst_low": worst["low"], "worst_high": worst["high"],
                            "overall_delta": overall.estimate, "overall_low": overall.low, "overall_high": overall.high,
                            "disparity": disp.estimate, "disparity_low": disp.low, "disparity_high": disp.high,
                            "level": level})
    return per_class, pay


def pie_tables(rows: Sequence[Mapping[str, Any]], predictions: Mapping[str, Mapping[str, np.ndarray]],
               num_classes: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(PIE records per method x ratio x distribution, Jaccard overlap records between methods at equal ratio).

    With R repetitions the PIEs follow the modal rule over the R parents and the R pruned models; with one
    repetition they are the examples whose prediction changed (``definition`` says which). Each record lists
    the PIEs' ``indices`` into the test split, their ``labels`` and the parents' and pruned models' modal
    predictions there (``parent_pred``, ``pruned_pred``, aligned with ``indices``)."""
    y = study_labels(predictions)
    if y is None:
        return [], []
    parents, groups = _groups(rows)
    records: list[dict[str, Any]] = []
    masks: dict[tuple[float, str], dict[str, np.ndarray]] = defaultdict(dict)
    for (method, ratio), members in groups.items():
        reps = sorted(members)
        keys = [*members.values(), *(parents[r] for r in reps)]
        tags = sorted(set.intersection(*[set(predictions.get(k, {})) for k in keys]))
        for tag in (t for t in tags if t.startswith("pred/")):
            a = [predictions[parents[r]][tag] for r in reps]
            b = [predictions[members[r]][tag] for r in reps]
            n = len(a[0])
            if any(len(v) != n for v in [*a, *b]) or n > len(y):
                continue
            s = pie_summary(np.stack(a), np.stack(b), y[:n], num_classes)
            dist = tag.split("/", 1)[1]
            mask = np.zeros(n, bool)
            mask[list(s.indices)] = True
            masks[(ratio, dist)][method] = mask
            records.append({"method": method, "target_ratio": ratio, "distribution": dist, "n_examples": n,
                            "count": s.count, "fraction": s.fraction, "repetitions": s.repetitions,
                            "definition": "modal" if s.repetitions > 1 else "changed (one repetition)",
                            "parent_acc_pie": s.parent_acc_pie, "parent_acc_rest": s.parent_acc_rest,
                            "pruned_acc_pie": s.pruned_acc_pie, "pruned_acc_rest": s.pruned_acc_rest,
                            "indices": list(s.indices), "labels": [int(v) for v in y[list(s.indices)]],
                            "parent_pred": list(s.parent_modal), "pruned_pred": list(s.pruned_modal)})
    over = [{"target_ratio": ratio, "distribution": dist, "method_a": m1, "method_b": m2, "jaccard": j}
            for (ratio, dist), ms in sorted(masks.items()) for (m1, m2), j in overlaps(ms).items()]
    return records, over


__all__ = ["class_tables", "pie_tables", "study_labels"]
