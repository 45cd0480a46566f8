"""``nominal``: accuracy and cross-entropy loss on the clean test set, the distribution every study reports."""
from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import nn

from prunebench.errors import UserError
from prunebench.evaluation._common import device_of, eval_mode, test_images
from prunebench.evaluation.base import EVALUATORS, EvalContext, predict_logits


@EVALUATORS.register("nominal", needs_parent=False)
def nominal(model: nn.Module, ctx: EvalContext, **options: Any) -> dict[str, Any]:
    """Metrics: ``acc/nominal`` (top-1 accuracy on the test split) and ``loss`` (mean cross-entropy);
    per-example correctness as ``correct/nominal``.

    Uses the whole test split (or its first ``ctx.max_samples`` images); no options.
    """
    if options:
        raise UserError(f"evaluator 'nominal' takes no options, got {sorted(options)}; remove them")
    x01, y = test_images(ctx, None)
    with eval_mode(model):
        logits = predict_logits(model, x01, ctx.data, device_of(ctx), ctx.batch_size)
    correct = logits.argmax(1) == y
    return {"acc/nominal": correct.float().mean().item(), "loss": F.cross_entropy(logits, y).item(),
            "correct/nominal": correct}
