"""The sparse-train study: plan, run, rows, checkpoints, analysis verdicts with known answers, report."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from prunebench.analysis.decisions import decide
from prunebench.analysis.findings import FAILS, HOLDS, NOT_CHECKED, OPEN
from prunebench.analysis.sparse import analyze_sparse
from prunebench.study.loader import load_config
from prunebench.study.plan import plan

N = 2000
RUNS = {"random-uniform": ("random", "uniform", None), "random-erk": ("random", "erk", None),
        "rigl-erk": ("random", "erk", "rigl")}


def _synthetic(extra_errors: dict[tuple[str, str], int], seeds: int = 2):
    """Rows and outcomes of a sparse study with two sizes: each sparse model is its dense reference with
    ``extra_errors[(run, size)]`` more examples wrong (different ones per seed)."""
    rng = np.random.default_rng(0)
    rows, outcomes = [], {}
    sizes = {"w1": 100, "w2": 400}
    for si, (size, params) in enumerate(sizes.items()):
        for j in range(seeds):
            rep = si * seeds + j
            parent = rng.random(N) < 0.9
            key = f"p{rep}"
            outcomes[key] = {"correct/nominal": parent}
            rows.append({"model_key": key, "kind": "parent", "method": "parent", "rep": rep, "target_ratio": 0.0,
                         "prune_ratio": 0.0, "size": size, "params_total": params, "nominal/acc/nominal": parent.mean()})
            right = np.flatnonzero(parent)
            for run, (crit, scheme, update) in RUNS.items():
                q = parent.copy()
                q[rng.choice(right, extra_errors[(run, size)], replace=False)] = False
                k = f"{run}-{rep}"
                outcomes[k] = {"correct/nominal": q}
                rows.append({"model_key": k, "kind": "pruned", "method": f"{run}@{size}", "rep": rep, "target_ratio": 0.9,
                             "prune_ratio": 0.9, "size": size, "run": run, "criterion": crit, "scheme": scheme,
                             "update": update, "params_total": params, "nominal/acc/nominal": q.mean(),
                             "layer_densities": {"a.weight": 0.5, "b.weight": 0.05}})
    return rows, outcomes


def _verdicts(extra: dict[tuple[str, str], int]) -> dict[str, str]:
    rows, outcomes = _synthetic(extra)
    dec = decide(rows, outcomes, 0.005, first="nominal", n_boot=400)
    sa = analyze_sparse(rows, dec, "nominal")
    assert sa.sizes == ["w1", "w2"] and sa.runs == list(RUNS)
    return {f.name: f.verdict for f in sa.findings}


def test_findings_hold_when_erk_width_and_rigl_help() -> None:
    extra = {("random-uniform", "w1"): 300, ("random-erk", "w1"): 120, ("rigl-erk", "w1"): 40,
             ("random-uniform", "w2"): 150, ("random-erk", "w2"): 50, ("rigl-erk", "w2"): 10}
    assert _verdicts(extra) == {"erk": HOLDS, "width": HOLDS, "dynamic-rigl": HOLDS}


def test_findings_do_not_hold_when_the_data_say_the_opposite() -> None:
    extra = {("random-uniform", "w1"): 50, ("random-erk", "w1"): 150, ("rigl-erk", "w1"): 300,
             ("random-uniform", "w2"): 200, ("random-erk", "w2"): 300, ("rigl-erk", "w2"): 400}
    assert _verdicts(extra) == {"erk": FAILS, "width": FAILS, "dynamic-rigl": FAILS}


def test_findings_are_inconclusive_on_equal_models_and_tables_carry_the_numbers() -> None:
    extra = {(r, s): 100 for r in RUNS for s in ("w1", "w2")}
    rows, outcomes = _synthetic(extra)
    dec = decide(rows, outcomes, 0.005, first="nominal", n_boot=400)
    sa = analyze_sparse(rows, dec, "nominal")
    assert {f.name: f.verdict for f in sa.findings}["width"] == OPEN
    for p in sa.points:  # Delta = 100 extra errors / N on every model, exactly
        assert p.delta is not None and p.delta.estimate == pytest.approx(100 / N)
        assert p.delta.low < 100 / N < p.delta.high
        assert p.seeds == 2
    assert sa.densities[("random-erk", "w1", 0.9)] == {"a.weight": 0.5, "b.weight": 0.05}
    shrink = [g["shrink"] for g in sa.gaps]
    assert all(abs(iv.estimate) < 1e-12 for iv in shrink)


def test_findings_not_checked_without_the_runs_they_need() -> None:
    rows, outcomes = _synthetic({(r, s): 10 for r in RUNS for s in ("w1", "w2")})
    rows = [r for r in rows if r.get("run") in (None, "random-erk") and r.get("size") == "w1"]
    dec = decide(rows, outcomes, 0.005, first="nominal", n_boot=100)
    verdicts = {f.name: f.verdict for f in analyze_sparse(rows, dec, "nominal").findings}
    assert verdicts == {"erk": NOT_CHECKED, "width": NOT_CHECKED, "dynamic": NOT_CHECKED}


TINY = {"name": "tiny-sparse", "model": "lenet300_100",
        "dataset": {"name": "fashion-mnist", "train_limit": 2000, "test_limit": 400},
        "train": {"epochs": 1, "batch_size": 100, "lr": 0.05},
        "mode": "sparse-train", "ratios": [0.9], "repetitions": 1,
        "sparse": {"runs": ["random/uniform", "random/erk", {"update": "rigl", "scheme": "erk",
                                                               "update_options": {"update_every": 5}}],
                   "widths": [0.5, 1]},
        "evaluation": ["calibration"]}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from prunebench.study import load_results, run_study

    run = tmp_path_factory.mktemp("sparse") / "run"
    summary = run_study(load_config(TINY), run, progress=False, workers=1)
    assert summary.ok, summary.failed
    return run, summary, load_results(run)


def test_sparse_study_runs_each_size_against_its_own_dense_reference(tiny_run) -> None:
    run, summary, rows = tiny_run
    assert summary.executed_kinds()["sparse"] == 2 * 3 and summary.executed_kinds()["train"] == 2
    parents = {r["rep"]: r for r in rows if r["kind"] == "parent"}
    assert {p["size"] for p in parents.values()} == {"w0.5", "w1"}
    assert parents[0]["params_total"] < parents[1]["params_total"]
    sparse = [r for r in rows if r["kind"] == "pruned"]
    assert sorted(r["method"] for r in sparse) == sorted(f"{run}@{s}" for run in RUNS for s in ("w0.5", "w1"))
    for r in sparse:
        assert parents[r["rep"]]["size"] == r["size"]  # paired with the dense model of its size
        assert r["prune_ratio"] == pytest.approx(0.9, abs=1e-3)
        assert r["grad_norm_init"] > 0 and set(r["layer_densities"]) == {"1.weight", "3.weight", "5.weight"}


def test_static_checkpoint_holds_the_mask_drawn_at_initialisation(tiny_run) -> None:
    from prunebench.models import create_model
    from prunebench.pruning.sparse import sparse_init
    from prunebench.store import load_checkpoint
    from prunebench.study.rundir import checkpoint_path

    run, _, rows = tiny_run
    for r in (r for r in rows if r["kind"] == "pruned" and r["size"] == "w1"):
        ck = load_checkpoint(checkpoint_path(run, r["model_key"]))
        torch.manual_seed(0)  # the repetition's seed: the dense reference's initialisation
        fresh = create_model("lenet300_100", in_channels=1, num_classes=10, image_size=28, width=1.0)
        state, _ = sparse_init(fresh, 0.1, criterion="random", scheme=r["scheme"], seed=0)
        same = []
        for k, m in state.masks.items():
            saved = ck.masks[k].bool()
            assert int(saved.sum()) == int(m.sum())  # dynamic runs move connections, never the count
            same.append(torch.equal(saved, m))
            assert int(dict(ck.model.named_parameters())[k].detach()[~saved].count_nonzero()) == 0
        assert all(same) == (r["update"] is None), r["method"]  # static: the init mask; rigl: moved (sparse layers)


def test_dense_reference_is_the_ordinary_parent_cell() -> None:
    """Same model, data, recipe and seed as a prune-retrain study's parent: the same cell key (shared work)."""

    class Info:
        in_channels, num_classes, image_size = 1, 10, (28, 28)

    sparse = plan(load_config({**TINY, "sparse": {"runs": ["random/erk"]}}), Info())
    cascade = plan(load_config({k: v for k, v in TINY.items() if k not in ("mode", "sparse")} | {"methods": ["wt"]}),
                   Info())
    assert {c.key for c in sparse if c.kind == "train"} == {c.key for c in cascade if c.kind == "train"}


def test_report_has_the_sparse_section_with_its_verdicts(tiny_run) -> None:
    from prunebench.report import read_table, write_report

    run, _, rows = tiny_run
    html, md = write_report(run)
    text = md.read_text()
    assert "Sparse training from scratch" in text
    for name in ("erk", "width", "dynamic-rigl"):
        assert f"Finding ({name})" in text
    assert "Finding (structured)" not in text  # the prune-retrain findings are not claimed here
    table = read_table(md)
    assert table.splitlines()[0].startswith("run") and "random-erk" in table and "dense" in table
    assert html.read_text().count("data:image/png;base64,") >= 3  # accuracy, gap and density figures
