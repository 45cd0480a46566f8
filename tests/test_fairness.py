"""Fair-comparison verdicts (issue 13, item 6) on hand-made outcomes with known answers, and the shipped config."""
from __future__ import annotations

import numpy as np

from prunebench.analysis.decisions import decide
from prunebench.analysis.fairness import analyze_fairness, is_fair_study
from prunebench.analysis.findings import FAILS, HOLDS, NOT_CHECKED, OPEN

N = 3000


def _study(extra: dict[str, int]):
    """Two repetitions; every model is its parent with ``extra[label]`` more examples wrong (labels as a study
    with retrain_lrs [0.001, 0.1], pipelines ft-short (1 epoch) / ft-long (3), scratch S3 / SX-A names them)."""
    rng = np.random.default_rng(1)
    rows, outcomes = [], {}
    for rep in range(2):
        parent = rng.random(N) < 0.9
        outcomes[f"p{rep}"] = {"correct/nominal": parent}
        rows.append({"model_key": f"p{rep}", "kind": "parent", "method": "parent", "rep": rep, "target_ratio": 0.0,
                     "prune_ratio": 0.0, "nominal/acc/nominal": parent.mean()})
        right = np.flatnonzero(parent)
        for label, n in extra.items():
            pipe = label.split("-lr")[0].split("-scratch")[0]
            for t in (0.5, 0.8):
                q = parent.copy()
                q[rng.choice(right, n, replace=False)] = False
                key = f"{label}-{t}-{rep}"
                outcomes[key] = {"correct/nominal": q}
                row = {"model_key": key, "kind": "pruned", "method": label, "rep": rep, "target_ratio": t,
                       "prune_ratio": t, "pipeline": pipe, "nominal/acc/nominal": q.mean(),
                       "retrain_epochs": 1 if pipe == "ft-short" else 3}
                if "-scratch-" in label:
                    row["scratch"] = label.split("-scratch-")[1]
                else:
                    row["retrain_lr"] = float(label.split("-lr")[1])
                rows.append(row)
    return rows, outcomes


def _verdicts(extra: dict[str, int]) -> dict[str, str]:
    rows, outcomes = _study(extra)
    assert is_fair_study(rows)
    dec = decide(rows, outcomes, 0.005, first="nominal", n_boot=400)
    return {f.name: f.verdict for f in analyze_fairness(rows, dec, "nominal").findings}


BASE = {"ft-short-lr0.001": 300, "ft-short-lr0.1": 100, "ft-long-lr0.001": 150, "ft-long-lr0.1": 100,
        "ft-short-scratch-S3": 100, "ft-long-scratch-S3": 100, "ft-short-scratch-SX-A": 250, "ft-long-scratch-SX-A": 250}


def test_known_answers_hold_inconclusive_and_not_hold() -> None:
    v = _verdicts(BASE)
    # larger LR wins under the short budget; its advantage shrinks (200 -> 50 extra errors); scratch under S3 as
    # good as the pruned models (same number of errors: not resolved), worse under SX-A
    assert v == {"lr-short": HOLDS, "lr-gap": HOLDS, "inherit-S3": OPEN, "inherit-SX-A": HOLDS}
    flipped = {**BASE, "ft-short-lr0.001": 50, "ft-long-lr0.001": 300, "ft-long-lr0.1": 100,
               "ft-short-scratch-SX-A": 20, "ft-long-scratch-SX-A": 20}
    v = _verdicts(flipped)
    assert v["lr-short"] == FAILS and v["inherit-SX-A"] == FAILS and v["lr-gap"] == FAILS


def test_not_checked_without_an_lr_axis() -> None:
    rows, outcomes = _study({"ft-short-lr0.1": 100, "ft-short-scratch-S3": 100})
    dec = decide(rows, outcomes, 0.005, first="nominal", n_boot=100)
    v = {f.name: f.verdict for f in analyze_fairness(rows, dec, "nominal").findings}
    assert v["lr-short"] == NOT_CHECKED and v["lr-gap"] == NOT_CHECKED and v["inherit-S3"] == OPEN
