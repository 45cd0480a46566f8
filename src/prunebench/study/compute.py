"""Compute accounting of every pipeline stage (Wang et al. 2023, "Why is the State of Neural Network Pruning so
Confusing?": an advantage must come from the pruning stage, not from a longer or better retraining).

Each model cell records what its training did: epochs, optimizer steps, images seen, the recipe's LR schedule
and the learning rate at the end of every epoch (the schedule actually used), and its training FLOPs.

Convention: training FLOPs = 3 x forward FLOPs per image x images seen (the backward pass costs about two
forward passes: gradients with respect to activations and to weights), with forward FLOPs (multiply-adds
counted as 2) of the network *as it was during that stage*: dense for a parent, effective (pruned weights and
channels skipped) for retraining and sparse training, whatever kernels actually ran. The cost of scoring (SNIP,
SiPP, ...) is not counted: one batch, negligible next to training. A result row's ``budget_*`` fields add up its
whole pipeline (parent training + every prune step it descends from), so an unequal comparison is visible even
when no comparison setup is declared.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

TRAIN_FLOPS_FACTOR = 3.0
SCHEDULE_FIELDS = ("optimizer", "lr", "schedule", "milestones", "gamma", "warmup_epochs", "batch_size")
BUDGET_FIELDS = ("epochs", "steps", "images", "train_flops")


def stage(kind: str, result: Any, recipe: Any, flops_per_image: float) -> dict[str, Any]:
    """The compute record of one training stage (``result``: a TrainResult; ``recipe``: its TrainConfig)."""
    hist = getattr(result, "history", []) or []
    images = int(getattr(result, "images", 0))
    return {"stage": kind, "epochs": len(hist), "steps": int(getattr(result, "steps", 0)), "images": images,
            "flops_per_image": float(flops_per_image), "train_flops": TRAIN_FLOPS_FACTOR * float(flops_per_image) * images,
            "schedule": {k: getattr(recipe, k) for k in SCHEDULE_FIELDS}, "lr_per_epoch": [h.get("lr") for h in hist]}


def no_training(kind: str) -> dict[str, Any]:
    """A stage that trained nothing (a prune step not followed by retraining)."""
    return {"stage": kind, "epochs": 0, "steps": 0, "images": 0, "flops_per_image": 0.0, "train_flops": 0.0,
            "schedule": None, "lr_per_epoch": []}


def budget(own: Mapping[str, Any] | None, before: Mapping[str, Any] | None) -> dict[str, float | None]:
    """``budget_<field>`` of a pipeline: this stage's compute plus the pipeline it continues (``before``: the row
    of the model it started from, None for a parent or a sparse run). None where a stage was not accounted
    (a run made before prunebench recorded compute): never a partial sum."""
    out: dict[str, float | None] = {}
    for f in BUDGET_FIELDS:
        mine = own.get(f) if own is not None else None
        prev = before.get(f"budget_{f}") if before is not None else 0.0
        out[f"budget_{f}"] = None if mine is None or prev is None else float(mine) + float(prev)
    return out
