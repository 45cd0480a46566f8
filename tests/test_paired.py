"""The paired comparison machinery: interval coverage on synthetic outcomes with a known Delta, resolution,
prune-potential intervals, bad input."""
from __future__ import annotations

import numpy as np
import pytest

from prunebench.analysis import Roles, analyze
from prunebench.analysis.paired import Interval, Resampler, check_confidence, paired_interval
from prunebench.errors import UserError


@pytest.mark.parametrize("reps", [1, 2, 3])
@pytest.mark.parametrize("n", [200, 1000, 4000])
@pytest.mark.parametrize("discordance", [0.02, 0.1, 0.3])
def test_interval_covers_the_true_delta_95_percent_of_the_time(reps, n, discordance):
    """1000 simulated studies per case: examples where the pruned model alone is wrong (rate 0.6 q) or the parent
    alone is wrong (0.4 q), so Delta = 0.2 q; the 95% interval must cover it in 93-97% of trials."""
    rng = np.random.default_rng(1000 * reps + n + int(100 * discordance))
    trials = 1000
    b, c = 0.6 * discordance, 0.4 * discordance
    u = rng.random((trials, reps, n))
    d = np.where(u < b, 1.0, np.where(u < b + c, -1.0, 0.0))  # wrong(pruned) - wrong(parent) per example
    point, boot = Resampler(n, reps, n_boot=400, seed=int(rng.integers(1 << 30))).deltas(d)
    lo, hi = np.percentile(boot, [2.5, 97.5], axis=1)
    covered = ((np.minimum(lo, point) <= b - c) & (b - c <= np.maximum(hi, point))).mean()
    assert 0.93 <= covered <= 0.97, covered


def _self(n: int) -> np.ndarray:
    return np.random.default_rng(n).random(n) < 0.9


def test_a_model_against_itself_is_within_at_10000_and_inconclusive_at_20():
    big = paired_interval(_self(10_000), _self(10_000))
    assert big.estimate == 0 and big.verdict(0.005) == "within" and big.half_width < 0.001
    small = paired_interval(_self(20), _self(20))
    assert small.estimate == 0 and small.verdict(0.005) == "inconclusive"  # 20 agreeing examples prove little


def test_interval_shrinks_with_n_and_verdicts_follow():
    rng = np.random.default_rng(0)
    widths = []
    for n in (500, 2000, 8000):
        parent = rng.random(n) < 0.9
        pruned = parent.copy()
        flip = rng.random(n) < 0.03  # 3% discordant, mostly against the pruned model: Delta ~ +1 pp
        pruned[flip] = rng.random(flip.sum()) < 0.3
        iv = paired_interval(pruned, parent)
        widths.append(iv.half_width)
    assert widths[0] > widths[1] > widths[2]
    assert Interval(0.02, 0.012, 0.028, 0.95).verdict(0.005) == "beyond"
    assert Interval(0.0, -0.002, 0.004, 0.95).verdict(0.005) == "within"
    assert Interval(0.003, -0.001, 0.007, 0.95).verdict(0.005) == "inconclusive"


def _study(n: int, seed: int = 0) -> tuple[list[dict], dict]:
    """One parent (nominal 0.9) and one method at 4 ratios losing 0, 0.2, 1 and 5 pp, outcomes on n examples."""
    rng = np.random.default_rng(seed)
    p = rng.random(n) < 0.9
    rows = [{"model_key": "p", "kind": "parent", "method": "parent", "rep": 0, "prune_ratio": 0.0,
             "nominal/acc/nominal": p.mean()}]
    out = {"p": {"correct/nominal": p}}
    for i, (ratio, loss) in enumerate([(0.3, 0.0), (0.5, 0.002), (0.7, 0.01), (0.9, 0.05)]):
        q = p.copy()
        right = np.flatnonzero(q)
        q[rng.choice(right, int(loss * n), replace=False)] = False
        key = f"m{i}"
        rows.append({"model_key": key, "kind": "pruned", "method": "wt", "rep": 0, "cycle": i + 1, "target_ratio": ratio,
                     "prune_ratio": ratio, "nominal/acc/nominal": q.mean()})
        out[key] = {"correct/nominal": q}
    return rows, out


def test_prune_potential_interval_shrinks_with_n_and_resolution_flags_small_samples():
    small, big = (analyze(*_study(n), 0.005, n_boot=400, num_classes=10, roles=Roles("nominal")) for n in (100, 20_000))
    ps, pb = small.decisions.potential("wt", "nominal"), big.decisions.potential("wt", "nominal")
    assert pb.pp.estimate == pytest.approx(0.5) and pb.pp.high - pb.pp.low <= ps.pp.high - ps.pp.low
    assert [r.verdict for r in pb.ratios] == ["within", "within", "beyond", "beyond"]
    assert big.decisions.distributions["nominal"].ranked
    info = small.decisions.distributions["nominal"]
    assert info.coarse and not info.ranked and "more examples" in info.reason and "(coarse)" in small.table


def test_near_chance_distribution_is_uninformative():
    rows, out = _study(2000)
    for r in rows:  # a second distribution where every model (parent included) is at 12% accuracy
        r["adversarial/acc/pgd-0.1"] = 0.12
        out[r["model_key"]]["correct/pgd-0.1"] = np.arange(2000) < 240
    an = analyze(rows, out, 0.005, n_boot=200, num_classes=10, roles=Roles("nominal"))
    info = an.decisions.distributions["pgd-0.1"]
    assert info.uninformative and "near chance" in info.reason and "(uninformative)" in an.table
    assert an.decisions.distributions["nominal"].ranked


@pytest.mark.parametrize("bad", [0, 1, -0.5, 1.5, float("nan"), "x"])
def test_confidence_outside_0_1_is_a_user_error(bad):
    with pytest.raises(UserError, match="confidence"):
        check_confidence(bad)
