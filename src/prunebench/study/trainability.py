"""Trainability of every retraining (Wang et al. 2023, "Why is the State of Neural Network Pruning so Confusing?",
Sec. 5): pruning damages trainability, which is why a larger retraining LR wins under a short budget.

Per prune (and scratch) cell the study records:

* ``trainability_acc``: the mean training accuracy over the first LR stage of the retraining (the epochs before
  the first milestone of a multistep schedule; every epoch of a cosine or constant schedule, which have no
  stages), the paper's trainability accuracy (TA);
* the input-output Jacobian singular-value statistics (dynamical isometry: mean singular value, its spread,
  condition number, mean (s - 1)^2) of the network right after pruning and after retraining, on 32 test
  images, with the trainability evaluator's definitions (``prunebench.evaluation.evaluators.trainability``).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

JACOBIAN_IMAGES = 32
JAC_KEYS = ("jac_sv_mean", "jac_sv_std_over_mean", "jac_cond", "jac_isometry_dev")


def trainability_accuracy(history: Sequence[dict[str, Any]], recipe: Any) -> float | None:
    """Mean training accuracy over the first LR stage of a training run (see the module docstring)."""
    accs = [float(h["train_acc"]) for h in history if h.get("train_acc") is not None]
    if not accs:
        return None
    if recipe.schedule == "multistep" and recipe.milestones:
        first = max(1, int(recipe.milestones[0]))  # epochs 1..first run at the initial LR
        accs = accs[:first]
    return sum(accs) / len(accs)


def jacobian_stats(model: nn.Module, data: Any, device: torch.device) -> dict[str, float]:
    """Singular-value statistics of d logits / d input on the first test images (model in eval mode, no side effects)."""
    from prunebench.evaluation._common import eval_mode
    from prunebench.evaluation.evaluators.trainability import jacobian, spectrum_stats

    split = data.test.subset(slice(0, JACOBIAN_IMAGES))
    x = data.normalize(split.float_images().to(device))
    with eval_mode(model):
        stats = spectrum_stats(torch.linalg.svdvals(jacobian(model, x).double()))
    return {k: float(stats[k]) for k in JAC_KEYS if k in stats}
