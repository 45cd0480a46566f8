"""What an export starts from (:class:`Source`) and the model each format ships (:func:`shipped_model`).

A checkpoint holds the *masked* model: pruned weights are zeros inside full-size layers. What leaves
PyTorch is the model a deployment runs:

* **compressed**: every channel whose whole dependency group is masked is physically removed
  (:func:`prunebench.pruning.compress.compress`), so a structured method's savings become real
  FLOPs and bytes; an unstructured model keeps its shape, its zeros in dense tensors;
* **folded**: BatchNorm folded into the preceding convolution (eval-mode inference transform,
  :func:`prunebench.pruning.deploy.fold_batchnorm`), one pass per activation less.

Both are exact up to float rounding, which the export verifies on real test images.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn


@dataclass
class Source:
    """A loaded checkpoint ready to export: the masked ``model`` (eval mode), its pruning ``state``
    (None when dense), its metadata and ``images``, a normalized batch of test images."""

    model: nn.Module
    state: Any
    meta: dict[str, Any]
    images: Tensor


def shipped_model(source: Source, *, compressed: bool, folded: bool) -> nn.Module:
    """An eval-mode copy of the source model as a format ships it (``source.model`` is left untouched)."""
    from prunebench.pruning.compress import compress, masked_model
    from prunebench.pruning.deploy import fold_batchnorm

    if source.state is None:
        import copy

        model = copy.deepcopy(source.model)
    elif compressed:
        model = compress(source.model, source.state, source.images[:1])
    else:
        model = masked_model(source.model, source.state)
    model = model.eval()
    if folded:
        model = fold_batchnorm(model)
    for p in model.parameters():
        p.requires_grad_(False)
    return model


@torch.no_grad()
def reference_logits(source: Source) -> Tensor:
    """The checkpoint model's logits on the source images: what every export must reproduce."""
    return source.model.eval()(source.images).float().cpu()
