"""``nominal``: accuracy and cross-entropy loss on the clean test set, the distribution every study reports."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from prunebench.evaluation._common import device_of, eval_mode, test_images
from prunebench.evaluation.base import EvalContext, predict_logits
from prunebench.evaluation.registry import EVALUATORS
from prunebench.registry import NoOptions


@EVALUATORS.register("nominal", always=True, reference="nominal", panels=("loss",), description=(
    "Accuracy and cross-entropy loss on the clean test set (all of it, or its first max_samples images)."))
def nominal(model: nn.Module, ctx: EvalContext, opts: NoOptions) -> dict[str, Any]:
    """Top-1 test accuracy ``acc/nominal`` and mean cross-entropy ``loss``; per-example ``correct/nominal``, and
    the predicted class ``pred/nominal`` and label ``label/nominal`` per example (uint8, for per-class Delta and
    PIEs, :mod:`prunebench.analysis.perclass` / :mod:`prunebench.analysis.pies`)."""
    x01, y = test_images(ctx, None)
    with eval_mode(model):
        logits = predict_logits(model, x01, ctx.data, device_of(ctx), ctx.batch_size)
    pred = logits.argmax(1)
    correct = pred == y
    out = {"acc/nominal": correct.float().mean().item(), "loss": F.cross_entropy(logits, y).item(),
           "correct/nominal": correct}
    if logits.shape[1] <= 256:  # class indices fit a byte
        out |= {"pred/nominal": pred.to(torch.uint8), "label/nominal": y.to(torch.uint8)}
    return out
