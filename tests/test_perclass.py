"""Per-class Delta and PIEs (issue 15): answers known by construction."""
from __future__ import annotations

import numpy as np
import pytest

from prunebench.analysis.paired import BEYOND, WITHIN, Interval, Resampler
from prunebench.analysis.perclass import (
    class_deltas,
    class_gate_status,
    class_rows,
    classes_that_pay,
    per_class_accuracy,
    worst_and_ties,
    worst_label,
)
from prunebench.analysis.pies import jaccard, modal, overlaps, pie_mask, pie_summary

CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
C, N = 10, 3000


def _parent(seed: int = 0, suppressed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Labels and a parent's logits: right on ~80% of examples; its wrong answers never say ``suppressed``."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, C, N)
    logits = rng.normal(0, 1, (N, C))
    right = rng.random(N) < 0.8
    logits[right, y[right]] += 10.0
    wrong = ~right
    logits[wrong, y[wrong]] -= 10.0
    logits[wrong & (y != suppressed), suppressed] -= 10.0
    return y, logits


def test_model_against_itself_has_no_pies_and_no_class_delta() -> None:
    y, logits = _parent()
    pred = logits.argmax(1)
    rows = class_rows(pred == y, pred == y, y, C, 0.02, classes=CLASSES)
    assert len(rows) == C
    for r in rows:
        assert r.delta.estimate == 0.0 and r.parent_acc == r.pruned_acc
        assert r.delta.low <= 0.0 <= r.delta.high and r.verdict == WITHIN
    s = pie_summary(pred, pred, y)
    assert s.count == 0 and s.fraction == 0.0 and s.indices == ()
    assert class_gate_status(rows) == ("within", [], [])


def test_suppressing_one_class_logit_costs_exactly_that_class() -> None:
    k = 1
    y, logits = _parent(suppressed=k)
    parent = logits.argmax(1)
    cut = logits.copy()
    cut[:, k] = -np.inf
    pruned = cut.argmax(1)
    pacc = per_class_accuracy(parent == y, y, C)
    rows = class_rows(parent == y, pruned == y, y, C, 0.05, classes=CLASSES)
    by = {r.index: r for r in rows}
    assert by[k].delta.estimate == pytest.approx(pacc[k], abs=1e-12) and by[k].pruned_acc == 0.0
    for c in range(C):
        if c != k:
            assert by[c].delta.estimate == 0.0 and by[c].verdict == WITHIN
    assert by[k].verdict == BEYOND
    status, beyond, open_ = class_gate_status(rows)
    assert status == BEYOND and beyond == ["Trouser"] and open_ == []
    overall = float((parent == y).mean() - (pruned == y).mean())
    pay = classes_that_pay(rows, overall)
    assert pay is not None and pay.worst == "Trouser"
    assert pay.disparity == pytest.approx(pacc[k] - overall)
    # the PIEs are exactly the examples the parent called class k
    s = pie_summary(parent, pruned, y, C)
    assert set(s.indices) == set(np.flatnonzero(parent == k).tolist())
    assert s.pruned_acc_pie == 0.0 and s.parent_acc_pie == 1.0 and s.pruned_acc_rest == s.parent_acc_rest


def test_modal_rule_on_hand_made_predictions() -> None:
    parents = np.array([[0, 1, 2, 3, 4, 5],
                        [0, 1, 2, 3, 5, 5],
                        [0, 2, 1, 3, 4, 0]])
    pruned = np.array([[0, 2, 2, 1, 4, 0],
                       [1, 2, 1, 1, 4, 0],
                       [0, 1, 1, 3, 5, 5]])
    # parents' modes: 0, 1, 2, 3, 4, 5; pruned modes: 0, 2, 1, 1, 4, 0  (column 4: 4,4,5 -> 4)
    assert modal(parents).tolist() == [0, 1, 2, 3, 4, 5]
    assert modal(pruned).tolist() == [0, 2, 1, 1, 4, 0]
    assert np.flatnonzero(pie_mask(parents, pruned)).tolist() == [1, 2, 3, 5]
    # a tie (one vote each) goes to the smallest class
    assert modal(np.array([[3], [1], [2]])).tolist() == [1]
    # one repetition: the examples whose prediction changed
    assert np.flatnonzero(pie_mask(parents[0], pruned[0])).tolist() == [1, 3, 5]
    y = np.array([0, 1, 2, 3, 4, 5])
    s = pie_summary(parents, pruned, y)
    assert s.count == 4 and s.fraction == pytest.approx(4 / 6) and s.repetitions == 3
    assert s.parent_acc_rest == pytest.approx(5 / 6)  # columns 0 and 4: 3/3 and 2/3 right
    assert s.pruned_acc_pie == pytest.approx(4 / 12)  # one right answer in each PIE column (1, 2, 3, 5)
    # each PIE's modal predictions, aligned with the indices
    assert s.indices == (1, 2, 3, 5) and s.parent_modal == (1, 2, 3, 5) and s.pruned_modal == (2, 1, 1, 0)


def test_pie_overlap_between_methods() -> None:
    a = np.array([1, 1, 0, 0, 1], bool)
    b = np.array([0, 1, 0, 1, 1], bool)
    assert jaccard(a, b) == pytest.approx(2 / 4)
    assert jaccard(np.zeros(3, bool), np.zeros(3, bool)) == 1.0
    assert overlaps({"m2": b, "m1": a}) == {("m1", "m2"): pytest.approx(0.5)}


def test_class_deltas_share_the_study_bootstrap_weights() -> None:
    """The class intervals reuse the very image weights of the overall Delta: weights summed over classes agree."""
    rng = np.random.default_rng(3)
    y = rng.integers(0, 4, 400)
    d = rng.choice([-1.0, 0.0, 0.0, 1.0], size=(2, 1, 400))
    res = Resampler(400, 1, 200, seed=5)
    pts, boot = class_deltas(d, y, 4, res)
    for c in range(4):
        assert pts[:, c] == pytest.approx(d[:, 0, y == c].mean(1))
    # class-weighted replicates without pseudo-counts recombine to the overall one's numerator
    w = res.image_w[:, :400]
    num = sum((d[0, 0, y == c] @ w[:, y == c].T) for c in range(4))
    assert num == pytest.approx(d[0, 0] @ w.T)
    iv = Interval.from_samples(pts[0, 0], boot[0, 0], 0.95)
    assert iv.low <= pts[0, 0] <= iv.high


def _two_payers(second: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels of 4 classes x 200 examples; the parent right everywhere, the pruned model wrong on the first 60
    examples of class 0 and on the first ``second`` of class 2 (classes 1 and 3 untouched)."""
    y = np.repeat(np.arange(4), 200)
    parent = np.ones(len(y), bool)
    pruned = parent.copy()
    pruned[np.flatnonzero(y == 0)[:60]] = False
    pruned[np.flatnonzero(y == 2)[:second]] = False
    return y, parent, pruned


@pytest.mark.parametrize(("second", "tied"), [(0, ()), (56, ("c2",))])
def test_worst_class_is_resolved_only_when_the_paired_difference_excludes_zero(second, tied) -> None:
    """Delta = 0.30 on c0; c2 at 0.00 (resolved: c0 is the worst) or 0.28 (0.02 apart with ~0.05 standard
    error: unresolved, c2 tied); c1 and c3 at 0 are confidently below c0 either way."""
    names = ["c0", "c1", "c2", "c3"]
    y, parent, pruned = _two_payers(second)
    res = Resampler(len(y), 1, 1000, seed=1)
    rows = class_rows(parent, pruned, y, 4, 0.05, classes=names, resampler=res)
    _, boot = class_deltas((parent.astype(float) - pruned)[None, None, :], y, 4, res)
    overall = float(parent.mean() - pruned.mean())
    pay = classes_that_pay(rows, overall, boot[0])
    assert pay is not None and pay.worst == "c0" and pay.worst_delta.estimate == pytest.approx(0.30)
    assert pay.tied == tied and pay.resolved == (not tied)
    assert pay.label() == ("c0" if not tied else "unresolved: c0, c2")
    assert worst_and_ties(np.array([r.delta.estimate for r in rows]), boot[0], 0.95) == (0, [2] if tied else [])
    # without the replicates: overlap of the marginal intervals, never fewer ties than the paired test
    fallback = classes_that_pay(rows, overall)
    assert fallback is not None and set(tied) <= set(fallback.tied) and "c1" not in fallback.tied


def test_worst_label_lists_ties_and_caps_the_names() -> None:
    assert worst_label("shirt", []) == "shirt"
    assert worst_label("shirt", ["coat", "pullover"]) == "unresolved: shirt, coat, pullover"
    assert worst_label("a", list("bcdef"), limit=3) == "unresolved: a, b, c, +3 more"


@pytest.mark.parametrize("second", [0, 56])
def test_study_records_and_report_say_when_the_worst_class_is_unresolved(second) -> None:
    from prunebench.analysis.whopays import class_tables
    from prunebench.report.content import Table
    from prunebench.report.whopays import who_pays_section
    from prunebench.study.whopays import WhoPays

    y, parent, pruned = _two_payers(second)
    rows = [{"kind": "parent", "rep": 0, "model_key": "p"},
            {"kind": "pruned", "rep": 0, "model_key": "q", "method": "m", "target_ratio": 0.5}]
    outcomes = {"p": {"correct/nominal": parent}, "q": {"correct/nominal": pruned}}
    per_class, pay = class_tables(rows, outcomes, y, 4, classes=["c0", "c1", "c2", "c3"], n_boot=1000, seed=1)
    (rec,) = pay
    assert rec["worst_class"] == "c0" and rec["worst_resolved"] == (second == 0)
    assert rec["tied_classes"] == ([] if second == 0 else ["c2"])
    overall = (60 + second) / 800
    assert rec["disparity"] == pytest.approx(0.30 - overall)
    assert rec["disparity_low"] <= rec["disparity"] <= rec["disparity_high"]
    section = who_pays_section(WhoPays(per_class, pay, classes=("c0", "c1", "c2", "c3")), "nominal")
    table = next(b for b in section.blocks if isinstance(b, Table) and "worst class" in b.header)
    cell = table.rows[0][table.header.index("worst class")]
    assert cell == ("c0" if second == 0 else "unresolved: c0, c2")
    assert ("rankings unresolved" in table.caption) == (second != 0)
    assert "[" in table.rows[0][table.header.index("disparity [pp]")]  # the disparity with its interval
