"""Trainability per pipeline (issue 13, item 5): trainability accuracy over the first LR stage, Jacobian spectra
right after pruning and after retraining, in the rows and the report."""
from __future__ import annotations

import pytest

from prunebench.study.trainability import trainability_accuracy
from prunebench.training import TrainConfig

HIST = [{"train_acc": a} for a in (0.5, 0.6, 0.7, 0.8, 0.9)]


def test_trainability_accuracy_is_the_mean_over_the_first_lr_stage() -> None:
    step = TrainConfig(epochs=5, schedule="multistep", milestones=(2, 4))
    assert trainability_accuracy(HIST, step) == pytest.approx(0.55)  # epochs 1-2 run at the initial LR
    assert trainability_accuracy(HIST, TrainConfig(epochs=5, schedule="cosine")) == pytest.approx(0.7)
    assert trainability_accuracy([], step) is None


def test_smoke_rows_carry_trainability_before_and_after_retraining(smoke_run) -> None:
    from prunebench.store.resultstore import ResultStore

    run, _, rows = smoke_run
    with ResultStore(run / "results.sqlite", readonly=True) as store:
        rec = {r.key: r.metrics for r in store.records()}
    for r in (r for r in rows if r["kind"] == "pruned"):
        m = rec[r["model_key"]]
        assert r["trainability_acc"] == pytest.approx(m["train"]["final_train_acc"])  # one cosine epoch
        assert r["jac_sv_mean_pruned"] > 0 and r["jac_sv_mean_retrained"] > 0
        assert r["jac_sv_mean_pruned"] != r["jac_sv_mean_retrained"]  # retraining changed the network
        assert r["retrain_lr"] == 0.02 and r["method_name"] in ("wt", "ft")
    from prunebench.report import write_report

    html, md = write_report(run)
    assert "\n## Trainability\n" in md.read_text()
    section = html.read_text().split('id="trainability"', 1)[1].split("<section", 1)[0]
    assert section.count("data:image/png;base64,") == 1  # one LR in this study: the ratio figure only
