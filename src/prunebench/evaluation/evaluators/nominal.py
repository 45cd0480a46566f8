"""``nominal``: accuracy and cross-entropy loss on the clean test set, the distribution every study reports."""
from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import nn

from prunebench.evaluation._common import device_of, eval_mode, test_images
from prunebench.evaluation.base import EvalContext, predict_logits
from prunebench.evaluation.registry import EVALUATORS
from prunebench.registry import NoOptions


@EVALUATORS.register("nominal", always=True, reference="nominal", panels=("loss",), description=(
    "Accuracy and cross-entropy loss on the clean test set (all of it, or its first max_samples images)."))
def nominal(model: nn.Module, ctx: EvalContext, opts: NoOptions) -> dict[str, Any]:
    """Top-1 test accuracy ``acc/nominal`` and mean cross-entropy ``loss``; per-example ``correct/nominal``."""
    x01, y = test_images(ctx, None)
    with eval_mode(model):
        logits = predict_logits(model, x01, ctx.data, device_of(ctx), ctx.batch_size)
    correct = logits.argmax(1) == y
    return {"acc/nominal": correct.float().mean().item(), "loss": F.cross_entropy(logits, y).item(),
            "correct/nominal": correct}
