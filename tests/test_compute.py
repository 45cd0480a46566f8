"""Compute accounting (issue 13, item 1): every stage's epochs, steps, images, LR schedule and training FLOPs,
and each result row's whole-pipeline budget."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from prunebench.pruning import PruningState, flops
from prunebench.study.compute import TRAIN_FLOPS_FACTOR, budget


def _lenet_forward_flops(keep: dict[str, float] | None = None) -> float:
    """LeNet-5 (28x28, 1 channel) forward FLOPs by hand: 2 per multiply-add of every conv / linear, times the kept
    fraction of its weights (masked), plus the biases (one add per output)."""
    keep = keep or {}
    layers = [  # (name, weights, output positions, outputs)
        ("0.weight", 6 * 1 * 25, 28 * 28, 6), ("3.weight", 16 * 6 * 25, 10 * 10, 16),
        ("7.weight", 120 * 400, 1, 120), ("9.weight", 84 * 120, 1, 84), ("11.weight", 10 * 84, 1, 10)]
    return sum(2 * w * pos * keep.get(k, 1.0) + pos * out for k, w, pos, out in layers)


def test_flop_count_of_dense_and_masked_lenet_matches_a_hand_count() -> None:
    from prunebench.models import create_model

    torch.manual_seed(0)
    model = create_model("lenet5", in_channels=1, num_classes=10, image_size=28)
    convs = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert [m.weight.numel() for m in convs] == [150, 2400, 48000, 10080, 840]
    fl = flops(model, (1, 28, 28))
    state = PruningState.dense(model)
    keep = {"0.weight": 0.5, "3.weight": 0.25, "7.weight": 0.1, "9.weight": 0.5, "11.weight": 1.0}
    masks = {}
    g = torch.Generator().manual_seed(0)
    for k, m in state.masks.items():
        n = m.numel()
        idx = torch.randperm(n, generator=g)[: round(keep[k] * n)]
        new = torch.zeros(n, dtype=torch.bool)
        new[idx] = True
        masks[k] = new.view(m.shape)
    state.update(masks)
    masked = flops(model, (1, 28, 28), state)
    assert masked.dense == pytest.approx(fl.dense)
    hand_dense, hand_masked = _lenet_forward_flops(), _lenet_forward_flops(keep)
    # the zoo count may add pooling / activation work: the prunable part must agree exactly
    assert fl.dense - masked.effective == pytest.approx(hand_dense - hand_masked, rel=1e-9)


def test_budget_adds_a_stage_to_the_pipeline_it_continues_and_never_a_partial_sum() -> None:
    parent = budget({"epochs": 6, "steps": 60, "images": 7680, "train_flops": 1e12}, None)
    assert parent == {"budget_epochs": 6, "budget_steps": 60, "budget_images": 7680, "budget_train_flops": 1e12}
    step = budget({"epochs": 1, "steps": 10, "images": 1280, "train_flops": 1e11}, parent)
    assert step == {"budget_epochs": 7, "budget_steps": 70, "budget_images": 8960, "budget_train_flops": 1.1e12}
    assert set(budget(None, parent).values()) == {None}  # an unaccounted stage
    assert set(budget({"epochs": 1, "steps": 1, "images": 1, "train_flops": 1}, {"budget_epochs": None}).values()) \
        == {None}


def test_smoke_study_rows_carry_each_pipelines_budget(smoke_run) -> None:
    from prunebench.store.resultstore import ResultStore

    run, _, rows = smoke_run
    with ResultStore(run / "results.sqlite", readonly=True) as store:
        rec = {r.key: r for r in store.records()}
    parent = next(r for r in rows if r["kind"] == "parent")
    n_train, bs = len(__import__("prunebench.data", fromlist=["load_dataset"]).load_dataset(
        "fashion-mnist", train_limit=1500, test_limit=500).train), 64
    images = (n_train // bs) * bs  # drop_last: whole batches only
    c = rec[parent["model_key"]].metrics["compute"]
    assert c["epochs"] == 1 and c["steps"] == n_train // bs and c["images"] == images
    assert c["train_flops"] == pytest.approx(TRAIN_FLOPS_FACTOR * parent["flops_dense"] * images)
    assert c["schedule"]["lr"] == 0.05 and c["schedule"]["schedule"] == "cosine" and len(c["lr_per_epoch"]) == 1
    assert parent["budget_epochs"] == 1 and parent["budget_train_flops"] == pytest.approx(c["train_flops"])
    for method in ("wt", "ft"):
        chain = sorted((r for r in rows if r["method"] == method), key=lambda r: r["cycle"])
        total = parent["budget_train_flops"]
        for k, r in enumerate(chain, start=1):
            stage = rec[r["model_key"]].metrics["compute"]
            assert stage["stage"] == "retrain" and stage["epochs"] == 1 and stage["schedule"]["lr"] == 0.02
            # retraining runs the pruned network: its effective FLOPs, not the parent's
            assert stage["flops_per_image"] == pytest.approx(r["flops_effective"])
            assert stage["flops_per_image"] < parent["flops_dense"]
            total += stage["train_flops"]
            assert r["budget_epochs"] == 1 + k  # cascade: parent + every retraining so far
            assert r["budget_train_flops"] == pytest.approx(total)
            assert math.isclose(r["budget_images"], images * (1 + k))
