"""``prunebench check --per-class`` and the recorded predictions, on a real checkpoint trained on Fashion-MNIST."""
from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from torch import nn

from prunebench.cli.main import main

K = 1  # trouser
ARGS = ["--suite", "nominal", "--limit", "500", "--device", "cpu", "--per-class", "--class-delta", "0.1"]


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    """A parent (lenet5, 1 epoch on 2000 images) and the same network with class K's logit suppressed."""
    from helpers import check_parent
    from prunebench.store import save_checkpoint

    out = tmp_path_factory.mktemp("check_classes")
    model, data, meta, parent = check_parent(out)
    cut = copy.deepcopy(model)
    last = [m for m in cut.modules() if isinstance(m, nn.Linear)][-1]
    with torch.no_grad():
        last.bias[K] -= 1e6
    return {"parent": parent, "cut": save_checkpoint(out / "cut", cut, meta),
            "model": model, "data": data}


def test_nominal_records_predictions_and_labels(ckpts):
    from prunebench.evaluation.base import EvalContext
    from prunebench.evaluation.suite import evaluate_suite

    ctx = EvalContext(data=ckpts["data"], device=torch.device("cpu"), max_samples=300)
    res = evaluate_suite(ckpts["model"], ctx, ["nominal"])
    pred, y = res.labels["pred/nominal"], res.labels["label/nominal"]
    assert pred.dtype == np.uint8 and pred.shape == (300,)
    assert np.array_equal(y, ckpts["data"].test.y[:300].numpy())
    assert np.array_equal(pred == y, res.outcomes["correct/nominal"])


def test_itself_passes_per_class(ckpts, capsys):
    rc = main(["check", str(ckpts["parent"]), "--parent", str(ckpts["parent"]), *ARGS])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "every class of every gated distribution confidently within" in out


def test_suppressed_class_fails_the_gate_by_name(ckpts, capsys, tmp_path):
    verdict = tmp_path / "v.json"
    rc = main(["check", str(ckpts["cut"]), "--parent", str(ckpts["parent"]), *ARGS, "--out", str(verdict)])
    out = capsys.readouterr().out
    assert rc == 1, out
    fail = next(line for line in out.splitlines() if line.startswith("FAIL (per class)"))
    assert "nominal:trouser" in fail and fail.count("nominal:") == 1
    rows = {r["class"]: r for r in json.loads(verdict.read_text())["per_class"]["classes"]}
    t = rows["trouser"]
    assert t["pruned_acc"] == 0.0 and t["delta"] == pytest.approx(t["parent_acc"]) and t["verdict"] == "beyond"
    for name, r in rows.items():
        if name != "trouser":  # the only change: examples the parent called Trouser get another answer
            assert r["delta"] <= 0.0 and r["verdict"] == "within", (name, r)
