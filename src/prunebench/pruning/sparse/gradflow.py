"""Gradient flow at initialisation: the norm of the loss gradient that can reach the network's weights.

Liu et al. (ICLR 2022, Sec. 4.4) compare sparse and dense networks by the gradient norm at initialisation:
a mask that keeps the gradient norm high trains better early. Here: ||g * m||_2 over every trainable
parameter, g = dL/dtheta of the mean cross-entropy on ``n`` validation images (seeded draw, BatchNorm batch
statistics as in the first training step), m = the mask for prunable weights (1 elsewhere), so masked
connections, whose gradient is discarded by the re-applied mask, do not count. The model's buffers and
``.grad`` are left as they were.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from prunebench.data.base import Dataset
from prunebench.pruning.base import scoring
from prunebench.pruning.masks import PruningState
from prunebench.pruning.sensitivity import sensitivity_batch


def gradient_norm(model: nn.Module, data: Dataset, *, state: PruningState | None = None, n: int = 256,
                  seed: int = 0) -> float:
    """||dL/dtheta (masked)||_2 on ``n`` seeded validation images (see the module docstring)."""
    params = dict((k, p) for k, p in model.named_parameters() if p.requires_grad)
    dev = next(iter(params.values())).device
    x, y = sensitivity_batch(data, n, generator=torch.Generator().manual_seed(seed), device=dev)
    with scoring(model, True), torch.enable_grad():
        loss = F.cross_entropy(model(x), y)
        grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
    masks = state.masks if state is not None else {}
    total = torch.zeros((), dtype=torch.float64, device=dev)
    for (k, _), g in zip(params.items(), grads, strict=True):
        if g is not None:
            g = g * masks[k].to(g.dtype) if k in masks else g
            total += g.double().pow(2).sum()
    return float(total.sqrt())
