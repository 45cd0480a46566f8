"""Scratch baselines (Wang et al. 2023, "Why is the State of Neural Network Pruning so Confusing?", Sec. 3): the
pruned architecture trained from a fresh random initialisation, with the epochs of a declared comparison setup.

``scratch: [S3, SX-A, SX-B]`` in a study adds, after every prune cell, one ``scratch`` cell per setup. It reads only
the pruned model's masks (its architecture: for unstructured methods the mask, for structured ones the removed
channels), re-initialises every weight with a seed of its own, applies the masks and trains with the *training*
recipe (the parent's schedule, milestones and warm-up scaled to the new length) for:

* ``S3``: the retraining epochs of that prune step (same retraining budget as the pruned model got);
* ``SX-A``: the same total epochs as the pruned model's pipeline (parent training + every retraining so far);
* ``SX-B``: the same total FLOPs: epochs = K1 x F1 / F2 + K2, K1 the parent's training epochs, F1 / F2 the forward
  FLOPs of the dense and the pruned network, K2 the retraining epochs of the pipeline (rounded to the nearest
  whole epoch; the exact value is recorded).

Rows: method ``<pipeline>-scratch-<setup>`` at the same target ratio, evaluated against the same parent.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

SETUPS = ("S3", "SX-A", "SX-B")
SEED_OFFSET = 7919  # a fresh initialisation: never the parent's (which is seeded by the repetition's seed)


def sxb_epochs(k1: float, f1: float, f2: float, k2: float) -> float:
    """SX-B's scratch epochs: K1 * F1 / F2 + K2 (the pruned network trained for the dense pipeline's FLOPs)."""
    if f2 <= 0:
        raise ValueError(f"the pruned network has {f2} FLOPs per image; SX-B needs a positive count")
    return k1 * f1 / f2 + k2


def scratch_recipe(train: dict[str, Any], epochs: int, seed: int) -> dict[str, Any]:
    """The training recipe stretched to ``epochs``: milestones and warm-up scaled with the length."""
    k1 = max(int(train.get("epochs", 1)), 1)
    scale = epochs / k1
    out = {**train, "epochs": int(epochs), "seed": int(seed)}
    if train.get("milestones"):
        out["milestones"] = [round(m * scale, 6) for m in train["milestones"]]
    if train.get("warmup_epochs"):
        out["warmup_epochs"] = min(float(train["warmup_epochs"]) * scale, float(epochs))
    return out


def scratch_config(setup: str, masks_from: str, train: dict[str, Any], k1: int, k2: int, step_epochs: int,
                   seed: int) -> dict[str, Any]:
    """The identity config of one scratch cell (epochs fixed here for S3 / SX-A; SX-B needs the pruned FLOPs)."""
    epochs = {"S3": step_epochs, "SX-A": k1 + k2}.get(setup)
    return {"kind": "scratch", "masks_from": masks_from, "setup": setup, "train": train, "k1": k1, "k2": k2,
            "epochs": epochs, "seed": seed + SEED_OFFSET}


def run_scratch(c: Any, run_dir: Path, device: torch.device, progress: bool) -> dict[str, Any]:
    """Execute a scratch cell: fresh weights, the pruned model's masks, the setup's epochs (see the module docstring)."""
    from prunebench.pruning import PruningState
    from prunebench.store import load_checkpoint, save_checkpoint
    from prunebench.study.cells import _meta, _train_summary, file_sha256, get_dataset
    from prunebench.study.compute import stage
    from prunebench.study.pruning_step import efficiency
    from prunebench.study.rundir import checkpoint_path
    from prunebench.study.trainability import jacobian_stats, trainability_accuracy
    from prunebench.study.usermodel import build_model
    from prunebench.training import TrainConfig, train

    conf = c.config
    data = get_dataset(c.run["data"])
    src = load_checkpoint(checkpoint_path(run_dir, conf["masks_from"]), "cpu")
    kwargs = c.run["model"]["kwargs"]
    torch.manual_seed(conf["seed"])
    model = build_model(c.run["model"]).to(device)  # zoo or user factory (study/usermodel.py)
    state = PruningState(model, {k: m.to(device) for k, m in src.masks.items()})
    state.apply()
    eff = efficiency(model, state, data.info, device)
    epochs, exact = conf["epochs"], None
    if epochs is None:  # SX-B: the same FLOPs as the dense pipeline
        exact = sxb_epochs(conf["k1"], eff["flops_dense"], eff["flops_effective"], conf["k2"])
        epochs = max(1, int(exact + 0.5))
    recipe = TrainConfig(**scratch_recipe(conf["train"], epochs, conf["seed"]))
    jac0 = jacobian_stats(model, data, device)
    result = train(model, data, recipe, device=device, callbacks=[state], progress=progress, desc=c.describe())
    state.apply()
    state.verify(model)
    meta = _meta(c, kwargs, c.run["data"], seed=conf["seed"], setup=conf["setup"], masks_from=conf["masks_from"],
                 train=recipe.model_dump(mode="json"), history=result.history)
    path = save_checkpoint(checkpoint_path(run_dir, c.key), model, meta, masks=dict(state.masks))
    return {"prune_ratio": state.prune_ratio(), **efficiency(model, state, data.info, device),
            "train": _train_summary(result), "scratch_epochs": epochs, "scratch_epochs_exact": exact,
            "compute": stage("scratch", result, recipe, eff["flops_effective"]),
            "trainability": {"jacobian_pruned": jac0, "trainability_acc": trainability_accuracy(result.history, recipe),
                             "jacobian_retrained": jacobian_stats(model, data, device)},
            "sha256": file_sha256(path)}
