"""``calibration``: does confidence match accuracy? ECE, MCE, NLL and Brier score on the test set.

Definitions (Guo et al. 2017, "On Calibration of Modern Neural Networks", eqs. 3 and 5):
confidence = max softmax probability; the [0, 1] confidence range is cut into 15 equal-width bins;
ECE = sum_b |B_b|/n * |acc(B_b) - conf(B_b)| (L1), MCE = max_b |acc(B_b) - conf(B_b)| over non-empty
bins. Both come from torchmetrics (``multiclass_calibration_error`` with norm "l1" / "max").
NLL = mean cross-entropy. Brier score (Brier 1950, multiclass form) = mean over samples of
sum_c (p_c - 1[c = y])^2, in [0, 2].
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn
from torchmetrics.functional.classification import multiclass_calibration_error

from prunebench.evaluation._common import device_of, eval_mode, test_images
from prunebench.evaluation.base import EvalContext, predict_logits
from prunebench.evaluation.registry import EVALUATORS
from prunebench.registry import Options


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


class CalibrationOptions(Options):
    n_bins: int = Field(15, gt=0, description="equal-width confidence bins of ECE / MCE")


@EVALUATORS.register("calibration", options=CalibrationOptions, panels=("ece", "nll", "brier", "mean_confidence"),
                     description="Does confidence match accuracy? ECE (15 bins, L1), NLL, Brier score, mean confidence.")
def calibration(model: nn.Module, ctx: EvalContext, opts: CalibrationOptions) -> dict[str, float]:
    """ECE and MCE (binned), NLL, Brier score and mean confidence on the test split.

    ``mean_confidence`` is the mean max-softmax; above the accuracy means over-confident.
    """
    x01, y = test_images(ctx, None)
    with eval_mode(model):
        logits = predict_logits(model, x01, ctx.data, device_of(ctx), ctx.batch_size)
    return calibration_metrics(logits, y, opts.n_bins)
