"""Accuracy and loss of a model on a split (eval mode, no augmentation, batched on the device)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from prunebench.data.base import DataInfo, Split
from prunebench.data.loader import DeviceLoader
from prunebench.tolerances import INFERENCE_BATCH


@torch.no_grad()
def evaluate_split(model: nn.Module, split: Split, info: DataInfo, device: torch.device | str = "cpu",
                   batch_size: int = INFERENCE_BATCH) -> dict[str, float]:
    """``{"acc": ..., "loss": ...}`` of ``model`` on ``split``; restores the model's train/eval mode."""
    was_training = model.training
    model.eval()
    loss = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    for x, y in DeviceLoader(split, info, batch_size, train=False, device=device):
        out = model(x).float()
        loss += F.cross_entropy(out, y, reduction="sum")
        correct += (out.argmax(1) == y).sum()
    model.train(was_training)
    n = max(len(split), 1)
    return {"acc": correct.item() / n, "loss": loss.item() / n}
