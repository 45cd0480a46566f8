"""What an evaluator is given (:class:`EvalContext`) and the batched inference helper all evaluators share.

The evaluator interface and its registry are in :mod:`prunebench.evaluation.registry`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from prunebench.data.base import Dataset, Split
from prunebench.errors import UserError
from prunebench.tolerances import INFERENCE_BATCH


@dataclass
class EvalContext:
    """Everything an evaluator may need besides the model under test."""

    data: Dataset  # evaluators use data.test (and data.normalize); data-informed parts use data.val
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    parent: nn.Module | None = None  # the unpruned network, for evaluators that compare
    baseline: nn.Module | None = None  # an independently trained network of the same architecture
    seed: int = 0
    cache_dir: Path | None = None  # where corrupted test sets etc. are cached
    batch_size: int = INFERENCE_BATCH
    max_samples: int | None = None  # evaluate on the first N test images only (quick runs)

    def test_split(self) -> Split:
        split = self.data.test
        return split.subset(slice(0, self.max_samples)) if self.max_samples else split

    def require_parent(self, evaluator: str) -> nn.Module:
        if self.parent is None:
            raise UserError(f"evaluator {evaluator!r} compares with the parent model; "
                            "pass one (e.g. --parent PARENT.safetensors)")
        return self.parent


@torch.no_grad()
def predict_logits(model: nn.Module, x01: torch.Tensor, data: Dataset, device: torch.device | str = "cpu",
                   batch_size: int = INFERENCE_BATCH) -> torch.Tensor:
    """Logits of ``model`` (in eval mode) for float [0,1] images, normalized per the dataset, in batches."""
    was_training = model.training
    model.eval()
    outs = []
    for i in range(0, len(x01), batch_size):
        xb = data.normalize(x01[i : i + batch_size].to(device, non_blocking=True).float())
        outs.append(model(xb).float())
    model.train(was_training)
    return torch.cat(outs) if outs else torch.empty(0)


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return (logits.argmax(1) == labels.to(logits.device)).float().mean().item()
