"""``calibration``: does confidence match accuracy? ECE, MCE, NLL and Brier score on the test set.

Definitions (Guo et al. 2017, "On Calibration of Modern Neural Networks", eqs. 3 and 5):
confidence = max softmax probability; the [0, 1] confidence range is cut into 15 equal-width bins;
ECE = sum_b |B_b|/n * |acc(B_b) - conf(B_b)| (L1), MCE = max_b |acc(B_b) - conf(B_b)| over non-empty
bins. Both come from torchmetrics (``multiclass_calibration_error`` with norm "l1" / "max").
NLL = mean cross-entropy. Brier score (Brier 1950, multiclass form) = mean over samples of
sum_c (p_c - 1[c = y])^2, in [0, 2].
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.functional.classification import multiclass_calibration_error

from prunebench.errors import UserError
from prunebench.evaluation._common import device_of, eval_mode, positive_int, test_images
from prunebench.evaluation.base import EVALUATORS, EvalContext, predict_logits


def calibration_metrics(logits: torch.Tensor, labels: torch.Tensor, n_bins: int = 15) -> dict[str, float]:
    """ECE, MCE, NLL, Brier and mean confidence of a batch of logits against integer labels."""
    logits, labels = logits.double(), labels.to(logits.device).long()
    probs = logits.softmax(1)
    num_classes = logits.shape[1]
    onehot = F.one_hot(labels, num_classes).to(probs.dtype)
    return {
        "ece": multiclass_calibration_error(probs, labels, num_classes, n_bins=n_bins, norm="l1").item(),
        "mce": multiclass_calibration_error(probs, labels, num_classes, n_bins=n_bins, norm="max").item(),
        "nll": F.cross_entropy(logits, labels).item(),
        "brier": (probs - onehot).pow(2).sum(1).mean().item(),
        "mean_confidence": probs.max(1).values.mean().item(),
    }


@EVALUATORS.register("calibration", needs_parent=False)
def calibration(model: nn.Module, ctx: EvalContext, n_bins: int = 15, **options: Any) -> dict[str, float]:
    """Metrics: ``ece``, ``mce`` (15 equal-width bins by default; option ``n_bins``), ``nll``, ``brier``,
    ``mean_confidence`` (mean max-softmax; above the accuracy means over-confident). Whole test split.
    """
    if options:
        raise UserError(f"unknown option(s) {sorted(options)} for evaluator 'calibration'; it takes n_bins")
    x01, y = test_images(ctx, None)
    with eval_mode(model):
        logits = predict_logits(model, x01, ctx.data, device_of(ctx), ctx.batch_size)
    return calibration_metrics(logits, y, positive_int(n_bins, "n_bins"))
