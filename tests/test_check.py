"""``prunebench check``: the deployment gate on real checkpoints trained on real Fashion-MNIST."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from prunebench.analysis.gate import gate
from prunebench.cli.main import main

LIMIT = ["--limit", "500", "--device", "cpu"]


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    """A parent (lenet5, 1 epoch on 2000 images) and a masked copy of it (95% of every weight tensor masked by
    magnitude). The masked copy stores the parent's dense weights plus masks, so it is only worse if the gate
    applies the masks."""
    from helpers import check_parent
    from prunebench.store import save_checkpoint

    out = tmp_path_factory.mktemp("check")
    model, _, meta, parent = check_parent(out)
    masks = {}
    for name, p in model.named_parameters():
        if name.endswith("weight") and p.dim() > 1:
            keep = max(1, int(0.05 * p.numel()))
            masks[name] = p.detach().abs() >= p.detach().abs().flatten().topk(keep).values[-1]
    masked = save_checkpoint(out / "masked", model, meta, masks=masks)
    gen = torch.Generator().manual_seed(0)
    rand97 = {n: torch.rand(m.shape, generator=gen) >= 0.97 for n, m in masks.items()}  # random, unretrained
    light = {}
    for name, p in model.named_parameters():  # 10% smallest weights of each layer
        if name in masks:
            light[name] = p.detach().abs() > p.detach().abs().flatten().kthvalue(max(1, int(0.1 * p.numel()))).values
    return {"parent": parent, "masked": masked, "dir": out,
            "random97": save_checkpoint(out / "random97", model, meta, masks=rand97),
            "light": save_checkpoint(out / "light", model, meta, masks=light)}


def test_model_against_itself_passes_on_every_distribution(ckpts, capsys):
    rc = main(["check", str(ckpts["parent"]), "--parent", str(ckpts["parent"]), *LIMIT])
    out = capsys.readouterr().out
    assert rc == 0, out
    lines = {line.split()[0]: line for line in out.splitlines()
             if line.split() and line.split()[-1] in ("within", "beyond", "inconclusive", "uninformative")}
    # default suite: nominal + noise at three eps + FGSM at the 1-channel eps grid
    assert set(lines) == {"nominal", "noise-0.1", "noise-0.2", "noise-0.3", "fgsm-0.01", "fgsm-0.03", "fgsm-0.1"}
    gated = [line for line in lines.values() if not line.endswith("uninformative")]
    assert gated and all(line.endswith("within") and " +0.00 " in line for line in gated), out  # Delta exactly 0
    assert "PASS: all" in out and "confidently within delta" in out


def test_masked_copy_fails_and_names_the_distributions(ckpts, capsys, tmp_path):
    report = tmp_path / "verdict.json"
    rc = main(["check", str(ckpts["masked"]), "--parent", str(ckpts["parent"]), "--suite", "calibration",
               "--out", str(report), *LIMIT])
    out = capsys.readouterr().out
    assert rc == 1, out
    verdict = json.loads(report.read_text())
    assert verdict["passed"] is False and verdict["status"] == "FAIL" and "nominal" in verdict["failed"]
    fail_line = next(line for line in out.splitlines() if line.startswith("FAIL:"))
    assert all(d in fail_line for d in verdict["failed"])
    nominal = next(r for r in verdict["distributions"] if r["distribution"] == "nominal")
    assert nominal["pruned_acc"] < nominal["parent_acc"] - 0.05  # the masks really were applied
    assert nominal["delta"] == pytest.approx(nominal["parent_acc"] - nominal["pruned_acc"])  # paired on the same images
    assert nominal["low"] > 0.005 and nominal["verdict"] == "beyond"
    # an explicit suite replaces the default one; nominal is always added; calibration runs but gates nothing
    assert verdict["suite"] == ["nominal", "calibration"] and [r["distribution"] for r in verdict["distributions"]] == ["nominal"]
    assert "calibration/ece" in verdict["metrics"]["pruned"] and fail_line.endswith(": nominal")


def test_a_huge_delta_lets_the_masked_copy_pass(ckpts, capsys):
    rc = main(["check", str(ckpts["masked"]), "--parent", str(ckpts["parent"]), "--suite", "nominal",
               "--delta", "0.99", *LIMIT])
    assert rc == 0, capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["missing.safetensors", "--parent", "PARENT"], "checkpoint not found"),
    (["PARENT", "--parent", "missing.safetensors"], "checkpoint not found"),
    (["PARENT", "--parent", "PARENT", "--delta", "-0.1"], "--delta"),
    (["PARENT", "--parent", "PARENT", "--limit", "0"], "--limit"),
    (["PARENT", "--parent", "PARENT", "--suite", "nominal,no-such-evaluator"], "unknown evaluator"),
])
def test_bad_input_exits_2_with_one_line(ckpts, capsys, tmp_path, args, message):
    args = [str(ckpts["parent"]) if a == "PARENT" else str(tmp_path / a) if a.endswith(".safetensors") else a for a in args]
    rc = main(["check", *args, "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_other_dataset_checkpoint_is_rejected(ckpts, capsys):
    from prunebench.store import load_checkpoint, save_checkpoint

    ck = load_checkpoint(ckpts["parent"])
    other = save_checkpoint(ckpts["dir"] / "other", ck.model, {**ck.meta, "dataset": "mnist"})
    rc = main(["check", str(other), "--parent", str(ckpts["parent"]), "--suite", "nominal", *LIMIT])
    assert rc == 2 and "different datasets" in capsys.readouterr().err


def test_random_97_unretrained_fails(ckpts, capsys):
    rc = main(["check", str(ckpts["random97"]), "--parent", str(ckpts["parent"]), "--suite", "nominal", *LIMIT])
    out = capsys.readouterr().out
    assert rc == 1 and "FAIL: 1 of 1" in out and "nominal" in out.splitlines()[-1], out


def test_light_pruning_on_50_images_is_inconclusive_with_its_own_exit_status(ckpts, capsys):
    rc = main(["check", str(ckpts["light"]), "--parent", str(ckpts["parent"]), "--suite", "nominal",
               "--limit", "50", "--device", "cpu"])
    out = capsys.readouterr().out
    assert rc == 3, out  # never 0, distinct from FAIL (1) and bad input (2)
    assert "INCONCLUSIVE" in out and "more examples" in out and "inconclusive" in out


@pytest.mark.parametrize("bad", ["0", "1", "-0.1", "nan"])
def test_confidence_outside_0_1_is_a_one_line_error(ckpts, capsys, bad):
    rc = main(["check", str(ckpts["parent"]), "--parent", str(ckpts["parent"]), "--confidence", bad, *LIMIT])
    err = capsys.readouterr().err
    assert rc == 2 and "confidence" in err and len(err.strip().splitlines()) == 1


def test_gate_on_hand_made_outcomes():
    n = 4000
    base = np.arange(n) < 3600  # parent: 90%
    worse = base.copy()
    worse[:80] = False  # 2 pp worse on the same examples
    res = gate({"correct/nominal": base, "correct/fog-3": base}, {"correct/nominal": base, "correct/fog-3": worse}, 0.005)
    rows = {r.distribution: r for r in res.rows}
    assert rows["nominal"].verdict == "within" and rows["nominal"].delta.estimate == 0
    assert rows["fog-3"].verdict == "beyond" and rows["fog-3"].delta.estimate == pytest.approx(0.02)
    assert res.status == "FAIL" and res.exit_code == 1
    chance = np.arange(n) < 400  # 10% accuracy on 10 classes: uninformative, gates nothing
    res2 = gate({"correct/nominal": base, "correct/pgd-0.1": chance}, {"correct/nominal": base, "correct/pgd-0.1": chance[::-1]},
                0.005, num_classes=10)
    assert res2.status == "PASS" and res2.named("uninformative") == ["pgd-0.1"]
