"""Scratch baselines (issue 13, item 4): the pruned architecture from a fresh initialisation, epochs per setup."""
from __future__ import annotations

import pytest
import torch
from helpers import SMOKE

from prunebench.study.loader import load_config
from prunebench.study.plan import plan
from prunebench.study.scratch import SEED_OFFSET, scratch_recipe, sxb_epochs


class Info:
    in_channels, num_classes, image_size = 1, 10, (28, 28)


def test_sxb_epochs_match_a_hand_computation() -> None:
    # K1 = 6 pretraining epochs of a network with 4x the pruned one's FLOPs, K2 = 3 retraining epochs: 6 * 4 + 3
    assert sxb_epochs(6, 1.0e6, 2.5e5, 3) == pytest.approx(27.0)
    assert sxb_epochs(160, 4.1e7, 4.1e7 / 3, 0) == pytest.approx(480.0)
    with pytest.raises(ValueError):
        sxb_epochs(6, 1e6, 0.0, 3)


def test_recipe_is_stretched_with_its_milestones() -> None:
    r = scratch_recipe({"epochs": 10, "milestones": [5, 8], "warmup_epochs": 1.0, "lr": 0.1}, 30, 3)
    assert r == {"epochs": 30, "milestones": [15, 24], "warmup_epochs": 3.0, "lr": 0.1, "seed": 3}


def test_plan_gives_each_setup_its_epochs() -> None:
    cfg = load_config({**SMOKE, "train": {**SMOKE["train"], "epochs": 4}, "retrain": {"epochs": 2},
                       "scratch": ["S3", "SX-A", "SX-B"]})
    cells = [c for c in plan(cfg, Info()) if c.kind == "scratch"]
    assert len(cells) == 2 * 2 * 3  # methods x ratios x setups
    for c in cells:
        k = c.labels["cycle"]  # cascade: k retrainings of 2 epochs so far
        assert c.labels["method"] == f"{c.labels['method_name']}-scratch-{c.config['setup']}"
        assert c.config["k1"] == 4 and c.config["k2"] == 2 * k
        assert c.config["epochs"] == {"S3": 2, "SX-A": 4 + 2 * k, "SX-B": None}[c.config["setup"]]
        assert c.config["seed"] == SEED_OFFSET  # never the parent's initialisation (seed 0)
    plain = {c.key for c in plan(load_config(SMOKE), Info())}
    assert plain <= {c.key for c in plan(load_config({**SMOKE, "scratch": ["S3"]}), Info())}  # only adds cells


@pytest.fixture(scope="module")
def scratch_run(tmp_path_factory):
    from prunebench.study import load_results, run_study

    run = tmp_path_factory.mktemp("scratch") / "run"
    cfg = {**SMOKE, "methods": ["wt", "ft"], "ratios": [0.5], "scratch": ["S3", "SX-B"], "evaluation": []}
    summary = run_study(load_config(cfg), run, progress=False, workers=1)
    assert summary.ok, summary.failed
    return run, load_results(run)


def test_scratch_reinitialises_every_weight_and_keeps_the_pruned_architecture(scratch_run) -> None:
    from prunebench.store import load_checkpoint
    from prunebench.study.rundir import checkpoint_path

    run, rows = scratch_run
    by = {r["method"]: r for r in rows}
    parent = load_checkpoint(checkpoint_path(run, by["parent"]["model_key"]))
    for method in ("wt", "ft"):
        pruned = load_checkpoint(checkpoint_path(run, by[method]["model_key"]))
        for setup in ("S3", "SX-B"):
            sc = load_checkpoint(checkpoint_path(run, by[f"{method}-scratch-{setup}"]["model_key"]))
            if method == "wt":  # unstructured: the same mask on a re-initialised full-size network
                assert set(sc.masks) == set(pruned.masks)
                for k in pruned.masks:
                    assert torch.equal(sc.masks[k], pruned.masks[k])  # the pruned architecture
            else:  # structured: the compressed network itself, dense
                assert not sc.masks and sc.meta["compressed"]
                kept = {k: int(m.reshape(m.shape[0], -1).any(1).sum()) for k, m in pruned.masks.items() if m.dim() == 4}
                shapes = dict(sc.model.named_parameters())
                assert {k: shapes[k].shape[0] for k in kept} == kept  # exactly the pruned model's kept filters
            theirs = {**dict(pruned.model.named_parameters()), **{f"p:{k}": v for k, v in parent.model.named_parameters()}}
            for name, p in sc.model.named_parameters():
                for other in (theirs[name], theirs[f"p:{name}"]):
                    o = other.detach()
                    if o.shape != p.shape:  # compressed: compare with the kept slice of the full-size tensor
                        o = o[tuple(slice(0, s) for s in p.shape)]
                    nz = o != 0
                    # no inherited weight: none of its (unpruned) entries equals the pruned / parent model's
                    assert not torch.equal(p.detach()[nz], o[nz]), (method, setup, name)
            assert by[f"{method}-scratch-{setup}"]["prune_ratio"] == pytest.approx(by[method]["prune_ratio"])


def test_sxb_cell_trains_for_the_dense_pipelines_flops(scratch_run) -> None:
    from prunebench.store.resultstore import ResultStore

    run, rows = scratch_run
    with ResultStore(run / "results.sqlite", readonly=True) as store:
        rec = {r.key: r.metrics for r in store.records()}
    by = {r["method"]: r for r in rows}
    for method in ("wt", "ft"):
        sx = by[f"{method}-scratch-SX-B"]
        m = rec[sx["model_key"]]
        want = 1 * sx["flops_dense"] / sx["flops_effective"] + 1  # K1 = 1 training epoch, K2 = 1 retraining epoch
        assert m["scratch_epochs_exact"] == pytest.approx(want)
        assert m["scratch_epochs"] == int(want + 0.5) == sx["budget_epochs"]
        assert rec[by[f"{method}-scratch-S3"]["model_key"]]["scratch_epochs"] == 1


def test_fresh_compressed_has_the_initial_scale_of_its_own_sizes() -> None:
    import math

    from torch import nn

    from prunebench.models import create_model
    from prunebench.pruning import PruningState, prune
    from prunebench.study.scratch import fresh_compressed

    torch.manual_seed(0)
    kw = {"in_channels": 3, "num_classes": 10, "image_size": 32}
    masks = prune(create_model("vgg11_bn", **kw), "ft", 0.7, seed=0).masks
    torch.manual_seed(1)
    fresh = create_model("vgg11_bn", **kw)
    small = fresh_compressed(fresh, PruningState(fresh, dict(masks)), torch.zeros(1, 3, 32, 32))
    convs = [m for m in small.modules() if isinstance(m, nn.Conv2d)]
    full = [m for m in fresh.modules() if isinstance(m, nn.Conv2d)]
    assert sum(c.weight.numel() for c in convs) < 0.5 * sum(c.weight.numel() for c in full)
    for c in convs:  # He normal, fan_out mode, of the compressed layer's own size
        want = math.sqrt(2.0 / (c.weight.shape[0] * c.weight[0, 0].numel()))
        if c.weight.numel() >= 4000:
            assert float(c.weight.detach().std()) == pytest.approx(want, rel=0.08)
    lin = [m for m in small.modules() if isinstance(m, nn.Linear)][0]
    bound = 1 / math.sqrt(lin.weight.shape[1])  # PyTorch's default linear init: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert 0.95 * bound <= float(lin.weight.abs().max()) <= bound * (1 + 1e-5)
