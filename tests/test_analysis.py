"""Prune potential, its summary, excess error and the terminal table against hand-computed numbers."""
from __future__ import annotations

import math

import pytest

from prunebench.errors import UserError
from prunebench import analysis as A

NOM, FOG, SNOW = "nominal/acc/nominal", "corruptions/acc/fog-3", "corruptions/acc/snow-3"
# The reference distribution and the default shifted set; the report reads them from the evaluators' specs
# (test_roles_come_from_the_evaluator_specs).
ROLES = A.Roles("nominal", {"corruptions": r".+-3"})


def parent(rep: int, nominal: float, fog: float | None = None, snow: float | None = None) -> dict:
    row = {"model_key": f"p{rep}", "kind": "parent", "method": "parent", "rep": rep, "cycle": 0,
           "target_ratio": 0.0, "prune_ratio": 0.0, NOM: nominal}
    if fog is not None:
        row[FOG] = fog
    if snow is not None:
        row[SNOW] = snow
    return row


# What the study writes into each pruned row from the method's registry entry (structured, baseline).
KINDS = {"wt": (False, False), "ft": (True, False), "random": (False, True)}


def pruned(method: str, rep: int, cycle: int, target: float, achieved: float, **acc: float | None) -> dict:
    row = {"model_key": f"{method}{rep}-{cycle}", "kind": "pruned", "method": method, "rep": rep, "cycle": cycle,
           "target_ratio": target, "prune_ratio": achieved}
    if method in KINDS:
        row["structured"], row["baseline"] = KINDS[method]
    names = {"nominal": NOM, "fog": FOG, "snow": SNOW}
    row.update({names[k]: v for k, v in acc.items()})
    return row


# Parent rep 0: nominal 0.90 -> an error threshold of 0.10 + 0.005 = 0.105 (pruned acc >= 0.895 qualifies).
# Parent rep 1: nominal 0.92 -> threshold 0.085 (pruned acc >= 0.915).
ROWS = [
    parent(0, 0.90, fog=0.80, snow=0.70),
    parent(1, 0.92, fog=0.78, snow=0.72),
    # wt rep 0: qualifies at 0.21 and at 0.59 (an exact tie: err 0.105) but not at 0.41 -> PP 0.59 (non-contiguous)
    pruned("wt", 0, 1, 0.2, 0.21, nominal=0.899, fog=0.80, snow=0.70),
    pruned("wt", 0, 2, 0.4, 0.41, nominal=0.880, fog=0.796, snow=0.69),
    pruned("wt", 0, 3, 0.6, 0.59, nominal=0.895, fog=0.70, snow=0.60),
    pruned("wt", 0, 4, 0.8, 0.80, nominal=0.850, fog=0.60, snow=0.50),
    # wt rep 1: qualifies at 0.21 and 0.80 only -> PP 0.80
    pruned("wt", 1, 1, 0.2, 0.21, nominal=0.930, fog=0.79, snow=0.72),
    pruned("wt", 1, 2, 0.4, 0.41, nominal=0.910, fog=0.776, snow=0.716),
    pruned("wt", 1, 3, 0.6, 0.59, nominal=0.900, fog=0.70, snow=0.70),
    pruned("wt", 1, 4, 0.8, 0.80, nominal=0.919, fog=0.60, snow=0.60),
    # ft rep 0: achieved ratios differ from the targets; only 0.19 qualifies -> PP 0.19 (not the target 0.2)
    pruned("ft", 0, 1, 0.2, 0.19, nominal=0.897, fog=0.70, snow=0.696),
    pruned("ft", 0, 2, 0.4, 0.38, nominal=0.894, fog=0.70, snow=0.60),
    pruned("ft", 0, 3, 0.6, 0.61, nominal=0.700, fog=0.50, snow=0.50),
    # ft rep 1: nothing qualifies -> 0; the missing nominal value at 0.61 must not count as anything
    pruned("ft", 1, 1, 0.2, 0.19, nominal=0.910, fog=0.776, snow=0.70),
    pruned("ft", 1, 2, 0.4, 0.38, nominal=0.500, fog=0.50, snow=0.50),
    pruned("ft", 1, 3, 0.6, 0.61, nominal=None, fog=0.50, snow=0.50),
    # bad: never qualifies anywhere -> 0 in both reps
    pruned("bad", 0, 1, 0.5, 0.5, nominal=0.5, fog=0.1, snow=0.1),
    pruned("bad", 1, 1, 0.5, 0.5, nominal=0.5, fog=0.1, snow=0.1),
]

# hand-computed: (method, rep) -> {distribution: PP}
# fog thresholds: rep 0 err 0.205 (acc >= 0.795), rep 1 err 0.225 (acc >= 0.775)
# snow thresholds: rep 0 err 0.305 (acc >= 0.695), rep 1 err 0.285 (acc >= 0.715)
EXPECTED = {
    ("wt", 0): {"nominal": 0.59, "fog-3": 0.41, "snow-3": 0.21},
    ("wt", 1): {"nominal": 0.80, "fog-3": 0.41, "snow-3": 0.41},
    ("ft", 0): {"nominal": 0.19, "fog-3": 0.0, "snow-3": 0.19},
    ("ft", 1): {"nominal": 0.0, "fog-3": 0.19, "snow-3": 0.0},
    ("bad", 0): {"nominal": 0.0, "fog-3": 0.0, "snow-3": 0.0},
    ("bad", 1): {"nominal": 0.0, "fog-3": 0.0, "snow-3": 0.0},
}


def test_distributions_and_groups():
    assert A.distributions(ROWS, "nominal") == ["nominal", "fog-3", "snow-3"]
    assert A.distributions(ROWS) == ["fog-3", "snow-3", "nominal"]  # no reference: by evaluator only
    assert A.distribution_groups(ROWS, "nominal") == {"nominal": ["nominal"], "corruptions": ["fog-3", "snow-3"]}
    rows = [{"noise-similarity/acc/noise-0.1": 1, "noise-similarity/acc/noise-0.05": 1, "adversarial/acc/pgd-0.03": 1,
             "nominal/acc/nominal": 1, "noise-similarity/match/0.1": 1}]
    assert A.distributions(rows, "nominal") == ["nominal", "pgd-0.03", "noise-0.05", "noise-0.1"]


def test_prune_potential_matches_hand_table():
    recs = A.prune_potential(ROWS, delta=0.005)
    got = {(r["method"], r["rep"], r["distribution"]): r["prune_potential"] for r in recs}
    want = {(m, rep, d): v for (m, rep), per in EXPECTED.items() for d, v in per.items()}
    assert got == pytest.approx(want)
    wt0 = next(r for r in recs if (r["method"], r["rep"], r["distribution"]) == ("wt", 0, "nominal"))
    assert wt0["qualifying"] == [0.21, 0.59] and wt0["tested"] == [0.21, 0.41, 0.59, 0.80]
    ft1 = next(r for r in recs if (r["method"], r["rep"], r["distribution"]) == ("ft", 1, "nominal"))
    assert ft1["tested"] == [0.19, 0.38]  # the missing value is skipped, not counted


def test_prune_potential_delta_changes_the_answer():
    got = {(r["method"], r["rep"]): r["prune_potential"] for r in A.prune_potential(ROWS, delta=0.0)
           if r["distribution"] == "nominal"}
    # delta 0: rep 0 needs acc >= 0.90 (none of wt's 0.899, 0.88, 0.895, 0.85), rep 1 needs >= 0.92 (0.93 at 0.21)
    assert got[("wt", 0)] == 0.0 and got[("wt", 1)] == 0.21
    got = {(r["method"], r["rep"]): r["prune_potential"] for r in A.prune_potential(ROWS, delta=0.05)
           if r["distribution"] == "nominal"}
    assert got[("wt", 0)] == 0.80 and got[("ft", 0)] == 0.38
    with pytest.raises(UserError, match="delta"):
        A.prune_potential(ROWS, delta=-0.1)


def test_summary_mean_std_and_group_aggregates():
    summ = A.summarize_prune_potential(A.prune_potential(ROWS), n_boot=500, seed=1)
    by = {(s["method"], s["distribution"]): s for s in summ}
    wt = by[("wt", "nominal")]
    assert wt["n"] == 2 and wt["mean"] == pytest.approx(0.695)
    assert wt["std"] == pytest.approx(abs(0.80 - 0.59) / math.sqrt(2))  # sample std, ddof 1
    assert by[("ft", "nominal")]["mean"] == pytest.approx(0.095)
    assert by[("bad", "nominal")]["mean"] == 0.0 and by[("bad", "nominal")]["std"] == 0.0
    # corruption group per rep: wt rep 0 mean (0.41 + 0.21) / 2 = 0.31, min 0.21; rep 1 mean 0.41, min 0.41
    assert by[("wt", "corruptions (mean)")]["mean"] == pytest.approx((0.31 + 0.41) / 2)
    assert by[("wt", "corruptions (min)")]["mean"] == pytest.approx((0.21 + 0.41) / 2)
    # ft: rep 0 min(0, 0.19) = 0, rep 1 min(0.19, 0) = 0 -> min 0 although each distribution's mean is 0.095
    assert by[("ft", "corruptions (min)")]["mean"] == 0.0 and by[("ft", "fog-3")]["mean"] == pytest.approx(0.095)
    assert ("wt", "nominal (mean)") not in by  # a one-distribution group has no aggregate


def test_bootstrap_interval_contains_mean_and_is_seeded():
    recs = A.prune_potential(ROWS)
    a = A.summarize_prune_potential(recs, n_boot=400, seed=7)
    b = A.summarize_prune_potential(recs, n_boot=400, seed=7)
    assert a == b
    for s in a:
        assert s["ci_low"] - 1e-12 <= s["mean"] <= s["ci_high"] + 1e-12
        assert min(s["values"]) - 1e-12 <= s["ci_low"] and s["ci_high"] <= max(s["values"]) + 1e-12
    wt = next(s for s in a if (s["method"], s["distribution"]) == ("wt", "nominal"))
    assert wt["ci_low"] < wt["mean"] < wt["ci_high"]  # two different values: a real interval
    # with 2 reps the resampled means are 0.59, 0.695 or 0.80: the 95% percentile interval spans them
    assert wt["ci_low"] == pytest.approx(0.59) and wt["ci_high"] == pytest.approx(0.80)
    one = A.summarize_prune_potential([r for r in recs if r["rep"] == 0])
    s = next(s for s in one if (s["method"], s["distribution"]) == ("wt", "nominal"))
    assert s["degenerate"] and s["ci_low"] == s["ci_high"] == s["mean"] == 0.59 and "one repetition" in s["note"]


def test_excess_error_on_hand_numbers_and_slope():
    rows = [parent(0, 0.90, fog=0.80, snow=0.70),
            pruned("wt", 0, 1, 0.2, 0.2, nominal=0.88, fog=0.70, snow=0.60),
            pruned("wt", 0, 2, 0.4, 0.4, nominal=0.90, fog=0.76, snow=0.68),
            pruned("wt", 0, 3, 0.6, 0.6, nominal=0.85, fog=0.70, snow=0.60)]
    recs = A.excess_error(rows, ROLES)
    # parent: err 0.10 nominal, (0.20 + 0.30) / 2 = 0.25 shifted -> gap 0.15
    # pruned 1: err 0.12, (0.30 + 0.40) / 2 = 0.35 -> gap 0.23 -> e = 0.08
    # pruned 2: err 0.10, (0.24 + 0.32) / 2 = 0.28 -> gap 0.18 -> e = 0.03
    # pruned 3: err 0.15, 0.35 -> gap 0.20 -> e = 0.05
    assert [r["excess_error"] for r in recs] == pytest.approx([0.08, 0.03, 0.05])
    assert recs[0]["n_shifted"] == 2 and recs[0]["err_shifted"] == pytest.approx(0.35)
    slope = A.excess_error_slopes(recs)["wt"]
    # through the origin: sum(x e) / sum(x^2) = (0.016 + 0.012 + 0.03) / (0.04 + 0.16 + 0.36)
    assert slope == pytest.approx(0.058 / 0.56)
    # only fog as D': pruned 1: (0.30 - 0.12) - (0.20 - 0.10) = 0.08
    assert A.excess_error(rows, ROLES, shifted=["fog-3"])[0]["excess_error"] == pytest.approx(0.08)
    with pytest.raises(UserError, match="unknown shifted"):
        A.excess_error(rows, ROLES, shifted=["frost-3"])


def test_roles_come_from_the_evaluator_specs():
    """The report derives the roles from EvaluatorSpec.reference / default_shift; without a reference the
    analysis leaves excess error and the findings out instead of guessing one."""
    from prunebench.report import distribution_roles

    assert distribution_roles() == ROLES
    rows = [parent(0, 0.90, fog=0.80), pruned("wt", 0, 1, 0.2, 0.2, nominal=0.88, fog=0.70)]
    bare = A.analyze(rows, None, 0.005, n_boot=50)
    assert bare.excess_error == [] and bare.reference is None and bare.finding.verdict == "not checked"
    assert A.analyze(rows, None, 0.005, n_boot=50, roles=ROLES).excess_error[0]["excess_error"] == pytest.approx(0.08)
    with pytest.raises(UserError, match="reference distribution"):
        A.excess_error(rows, A.Roles())
    # the reference leads the distributions even when its evaluator sorts later
    other = A.Roles("fog-3", {})
    assert A.distributions(rows, other.reference)[0] == "fog-3"
    assert A.analyze(rows, None, 0.005, n_boot=50, roles=other).reference_group == "corruptions"


def test_fit_through_origin_exact_line_and_degenerate():
    assert A.fit_through_origin([0.1, 0.5, 0.9], [0.03, 0.15, 0.27]) == pytest.approx(0.3)
    assert A.fit_through_origin([0.0, 0.0], [1.0, 2.0]) == 0.0


def test_default_shifted_set():
    row = {"kind": "parent", NOM: 0.9, "corruptions/acc/fog-1": 0.8, FOG: 0.7, "adversarial/acc/pgd-0.03": 0.2}
    assert A.default_shifted([row], ROLES) == ["fog-3"]
    row2 = {"kind": "parent", NOM: 0.9, "adversarial/acc/pgd-0.03": 0.2, "noise-similarity/acc/noise-0.1": 0.5}
    assert A.default_shifted([row2], ROLES) == ["pgd-0.03", "noise-0.1"]


def test_noise_parent_accuracy_falls_back_to_parent_acc_metric():
    rows = [{"kind": "parent", "rep": 0, "method": "parent", "prune_ratio": 0.0, NOM: 0.9},
            {"kind": "pruned", "rep": 0, "method": "wt", "prune_ratio": 0.5, NOM: 0.9,
             "noise-similarity/acc/noise-0.2": 0.60, "noise-similarity/parent_acc/0.2": 0.603}]
    rec = next(r for r in A.prune_potential(rows) if r["distribution"] == "noise-0.2")
    assert rec["parent_acc"] == pytest.approx(0.603) and rec["prune_potential"] == 0.5


def test_table_text():
    text = A.prune_potential_table(ROWS, 0.005, reference="nominal")
    lines = text.splitlines()
    assert "delta = 0.5%" in lines[0] and "2 repetitions" in lines[0]
    assert lines[1].split() == ["distribution", "bad", "ft", "wt"]
    nominal = next(line for line in lines if line.startswith("nominal"))
    assert "69.5 ± 14.8" in nominal and "9.5 ± 13.4" in nominal and "0.0 ± 0.0" in nominal
    names = [line.split()[0] for line in lines[3:]]
    assert names == ["nominal", "fog-3", "snow-3", "corruptions", "corruptions"]  # aggregates after their group
    partial = [r for r in ROWS if not (r["method"] == "bad" and r["kind"] == "pruned")]
    partial.append(pruned("bad", 0, 1, 0.5, 0.5, nominal=0.5))  # bad has no corruption results at all
    fog = next(line for line in A.prune_potential_table(partial).splitlines() if line.startswith("fog-3"))
    assert fog.split()[1] == "-"


def test_two_parents_for_one_rep_is_a_user_error():
    with pytest.raises(UserError, match="two parent rows"):
        A.prune_potential([parent(0, 0.9), parent(0, 0.8)])


def _finding_rows(accs: dict[str, list[float]], reps: int = 2) -> list[dict]:
    """Parents at 0.9 nominal; per method the nominal accuracy at ratios 0.5 and 0.8 (same in every rep)."""
    rows = [parent(r, 0.90) for r in range(reps)]
    for m, (a5, a8) in accs.items():
        for r in range(reps):
            rows += [pruned(m, r, 1, 0.5, 0.5, nominal=a5), pruned(m, r, 2, 0.8, 0.8, nominal=a8)]
    return rows


def test_structured_finding_is_computed():
    from helpers import nested_outcomes

    rows = _finding_rows({"wt": [0.9, 0.899], "ft": [0.899, 0.7]})
    res = A.analyze(rows, nested_outcomes(rows), 0.005, n_boot=200, roles=ROLES)
    f = res.finding
    assert f.verdict == "holds" and f.text.startswith("holds") and "unstructured wt 80.0%" in f.text
    assert f.statistic is not None and f.statistic.low > 0 and f.statistic.estimate == pytest.approx(0.3)
    flipped = _finding_rows({"ft": [0.9, 0.899], "wt": [0.899, 0.7]})
    f2 = A.analyze(flipped, nested_outcomes(flipped), 0.005, n_boot=200, roles=ROLES).finding
    assert f2.verdict == "does not hold" and f2.statistic.high < 0
    tie = _finding_rows({"ft": [0.9, 0.899], "wt": [0.9, 0.899]})
    assert A.analyze(tie, nested_outcomes(tie), 0.005, n_boot=200, roles=ROLES).finding.verdict == "does not hold"  # strict claim
    # the ft model at 0.8 is 0.45 pp worse on 500 images: cannot tell within from beyond delta -> inconclusive
    close = _finding_rows({"wt": [0.9, 0.9], "ft": [0.9, 0.8955]})
    f4 = A.analyze(close, nested_outcomes(close, n=500), 0.005, n_boot=300, roles=ROLES).finding
    assert f4.verdict == "inconclusive" and f4.statistic.low == 0 < f4.statistic.high
    # Achieved ratios that differ only by a method's rounding (0.8 vs 0.8004) are a tie, not a direction:
    # the same verdict as an exact tie, whichever method rounds up.
    for up in ("wt", "ft"):
        near = [dict(r, prune_ratio=r["prune_ratio"] + 0.0004) if r["method"] == up else r for r in tie]
        f5 = A.analyze(near, nested_outcomes(near), 0.005, n_boot=200, roles=ROLES).finding
        assert f5.verdict == "does not hold" and f5.statistic.estimate == 0 == f5.statistic.high
    only = [r for r in rows if r["method"] != "ft"]
    assert A.analyze(only, nested_outcomes(only), 0.005, n_boot=50, roles=ROLES).finding.verdict == "not checked"
    # without per-example outcomes (a run made before they were recorded): no verdict, said so
    old = A.analyze(rows, None, 0.005, n_boot=50, roles=ROLES)
    assert old.finding.verdict == "not checked" and not old.decisions.available and "unavailable" in old.table
    # A random baseline below every structured method does not break the claim: it is left out.
    weak = _finding_rows({"wt": [0.9, 0.899], "ft": [0.899, 0.7], "random": [0.1, 0.1]})
    f3 = A.analyze(weak, nested_outcomes(weak), 0.005, n_boot=200, roles=ROLES).finding
    assert f3.verdict == "holds" and "random" not in f3.text
    # The kind comes from the rows, never from the method's name: rows without it leave the finding unchecked,
    # and a caller's mapping (e.g. for rows of an old run) fills it in.
    bare = [{k: v for k, v in r.items() if k not in ("structured", "baseline")} for r in rows]
    assert A.analyze(bare, nested_outcomes(bare), 0.005, n_boot=50, roles=ROLES).finding.verdict == "not checked"
    given = A.analyze(bare, nested_outcomes(bare), 0.005, n_boot=200, roles=ROLES, kinds={"wt": (False, False), "ft": (True, False)})
    assert given.finding.verdict == "holds" and given.kind("ft") == (True, False) and given.kind("x") == (None, False)
    renamed = [dict(r, method={"wt": "ft", "ft": "wt"}.get(r["method"], r["method"])) for r in rows]  # kinds travel
    f5 = A.analyze(renamed, nested_outcomes(renamed), 0.005, n_boot=200, roles=ROLES).finding
    assert f5.verdict == "holds" and "unstructured ft 80.0%" in f5.text


def test_analyze_bundles_everything():
    res = A.analyze(ROWS, None, 0.005, n_boot=100, roles=ROLES)
    assert res.methods == ["bad", "ft", "wt"] and res.shifted == ["fog-3", "snow-3"]
    assert len(res.excess_error) == sum(1 for r in ROWS if r["kind"] == "pruned" and r.get(NOM) is not None)
    assert set(res.excess_slopes) == {"bad", "ft", "wt"} and "wt" in res.table


def test_summary_distributions_are_not_double_counted():
    """The corruptions evaluator also reports a corruption's mean over severities (``acc/fog``): it gets its own
    prune potential but stays out of the group mean / min, and a one-member summary is not repeated."""
    c = "corruptions/acc/"
    rows = [{"kind": "parent", "rep": 0, "method": "parent", "prune_ratio": 0.0, NOM: 0.9,
             c + "fog-1": 0.8, c + "fog-2": 0.6, c + "fog": 0.7, c + "snow-3": 0.5, c + "snow": 0.5},
            {"kind": "pruned", "rep": 0, "method": "wt", "prune_ratio": 0.5, NOM: 0.9,
             c + "fog-1": 0.8, c + "fog-2": 0.5, c + "fog": 0.65, c + "snow-3": 0.5, c + "snow": 0.5}]
    assert A.summary_distributions(A.accuracy_keys(rows)) == {"fog": ["fog-1", "fog-2"], "snow": ["snow-3"]}
    assert A.distribution_groups(rows)["corruptions"] == ["fog-1", "fog-2", "snow-3"]
    summ = {s["distribution"]: s for s in A.summarize_prune_potential(A.prune_potential(rows))}
    assert summ["fog"]["mean"] == 0.0 and summ["fog"]["leaves"] == 2 and summ["fog-1"]["mean"] == 0.5
    # mean over fog-1 (0.5), fog-2 (0), snow-3 (0.5) only; with the summaries it would be (0.5+0+0+0.5+0.5)/5
    assert summ["corruptions (mean)"]["mean"] == pytest.approx(1 / 3)
    names = [line.split()[0] for line in A.prune_potential_table(rows, reference="nominal").splitlines()[3:]]
    assert "fog" in names and "snow" not in names and "snow-3" in names


def test_terminal_table_folds_large_groups():
    c = "corruptions/acc/"
    corr = {f"{t}-{s}": 0.7 for t in "abcdefghij" for s in (1, 2, 3, 4, 5)}
    parent = {"kind": "parent", "rep": 0, "method": "parent", "prune_ratio": 0.0, NOM: 0.9,
              **{c + k: v for k, v in corr.items()}, **{c + t: 0.7 for t in "abcdefghij"}}
    rows = [parent, dict(parent, kind="pruned", method="wt", prune_ratio=0.5)]
    lines = A.prune_potential_table(rows, reference="nominal").splitlines()
    names = [line.split()[0] for line in lines[3:-1]]
    assert names == ["nominal", *"abcdefghij", "corruptions", "corruptions"]  # the 50 members folded away
    assert lines[-1] == "(50 more distributions in summary.md / report.html)"
