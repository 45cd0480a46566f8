"""Scratch baselines (Wang et al. 2023, "Why is the State of Neural Network Pruning so Confusing?", Sec. 3): the
pruned architecture trained from a fresh random initialisation, with the epochs of a declared comparison setup.

``scratch: [S3, SX-A, SX-B]`` in a study adds, after every prune cell, one ``scratch`` cell per setup. It reads only
the pruned model's masks (its architecture), re-initialises every weight with a seed of its own and trains with the
*training* recipe (the parent's schedule, milestones and warm-up scaled to the new length). For an unstructured
method the architecture is the mask, applied to the fresh network and kept through training. For a structured one
it is the *compressed* network (the removed channels physically gone, :func:`fresh_compressed`), trained dense, as
Wang et al. train the pruned architecture: a masked full-size network would differ from it in its initial scale
(He initialisation scales with the layer's fan, which compression shrinks). The epochs per setup:

* ``S3``: the retraining epochs of that prune step (same retraining budget as the pruned model got);
* ``SX-A``: the same total epochs as the pruned model's pipeline (parent training + every retraining so far);
* ``SX-B``: the same total FLOPs: epochs = K1 x F1 / F2 + K2, K1 the parent's training epochs, F1 / F2 the forward
  FLOPs of the dense and the pruned network, K2 the retraining epochs of the pipeline (rounded to the nearest
  whole epoch; the exact value is recorded).

Rows: method ``<pipeline>-scratch-<setup>`` at the same target ratio, evaluated against the same parent.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

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
                   seed: int, *, compressed: bool = False) -> dict[str, Any]:
    """The identity config of one scratch cell (epochs fixed here for S3 / SX-A; SX-B needs the pruned FLOPs).
    ``compressed``: train the compressed architecture (structured methods) instead of the masked one."""
    epochs = {"S3": step_epochs, "SX-A": k1 + k2}.get(setup)
    conf = {"kind": "scratch", "masks_from": masks_from, "setup": setup, "train": train, "k1": k1, "k2": k2,
            "epochs": epochs, "seed": seed + SEED_OFFSET}
    return {**conf, "arch": "compressed"} if compressed else conf


def _fans(shape: torch.Size) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight as PyTorch's initialisers count them (receptive field included)."""
    receptive = math.prod(shape[2:]) if len(shape) > 2 else 1
    return int(shape[1]) * receptive, int(shape[0]) * receptive


@torch.no_grad()
def fresh_compressed(model: nn.Module, state: Any, example: torch.Tensor) -> nn.Module:
    """The compressed architecture of ``state``'s masks with fresh weights at the initial scale of its own sizes.

    ``model`` is a freshly initialised full-size network (the zoo's He-normal convolutions, fan_out mode; PyTorch's
    default linear layers, fan_in). Compression keeps a slice of those fresh values; a slice of an i.i.d. tensor
    is i.i.d. with the same std, so each layer is rescaled by sqrt(fan_full / fan_compressed): the std that
    initialisation gives a layer of the compressed size (fan_out for convolutions, fan_in for linear layers,
    whose bias bound scales the same way). Exact for those schemes; other factories' schemes are approximated.
    """
    from prunebench.pruning.compress import compress

    full = {n: m.weight.shape for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    small = compress(model, state, example)
    for name, m in small.named_modules():
        if name not in full or not isinstance(m, (nn.Conv2d, nn.Linear)):
            continue
        axis = 1 if isinstance(m, nn.Conv2d) else 0  # fan_out for convolutions, fan_in for linear layers
        scale = math.sqrt(_fans(full[name])[axis] / _fans(m.weight.shape)[axis])
        m.weight.mul_(scale)
        if isinstance(m, nn.Linear) and m.bias is not None:
            m.bias.mul_(scale)
    return small


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
    ratio = state.prune_ratio()
    compressed = conf.get("arch") == "compressed"
    if compressed:  # structured: the smaller network itself, dense, no masks (its FLOPs are the masked count)
        example = data.normalize(data.val.subset(slice(0, 1)).float_images()).to(device)
        model = fresh_compressed(model, state, example).train()
    jac0 = jacobian_stats(model, data, device)
    result = train(model, data, recipe, device=device, callbacks=[] if compressed else [state], progress=progress,
                   desc=c.describe())
    if not compressed:
        state.apply()
        state.verify(model)  # the masks held: the architecture, and so ``eff``, is what it was before training
    meta = _meta(c, kwargs, c.run["data"], seed=conf["seed"], setup=conf["setup"], masks_from=conf["masks_from"],
                 train=recipe.model_dump(mode="json"), history=result.history, compressed=compressed)
    path = save_checkpoint(checkpoint_path(run_dir, c.key), model, meta, masks=None if compressed else dict(state.masks))
    return {"prune_ratio": ratio, **eff,
            "train": _train_summary(result), "scratch_epochs": epochs, "scratch_epochs_exact": exact,
            "compute": stage("scratch", result, recipe, eff["flops_effective"]),
            "trainability": {"jacobian_pruned": jac0, "trainability_acc": trainability_accuracy(result.history, recipe),
                             "jacobian_retrained": jacobian_stats(model, data, device)},
            "sha256": file_sha256(path)}
