"""``trainability``: signal propagation through the network as given (masks already applied).

* Input-output Jacobian spectrum (dynamical isometry; Saxe et al. 2014, Pennington et al. 2017;
  used for pruned networks by Lee et al. 2020, "A Signal Propagation Perspective for Pruning
  Neural Networks at Initialization"): for ``n`` test images the Jacobian J = d logits / d input
  (classes x input dims) is built with one backward pass per class, and its singular values s
  (``torch.linalg.svdvals``, ``classes`` values per image) are summarized. By default the input is
  the network's own (normalized) input, so a linear layer's Jacobian is its weight matrix; with
  ``space="pixel"`` the [0, 1] image is the input and J includes the normalization (J_pixel =
  J_normalized / std per channel).
* Gradient flow (Wang et al. 2020 GraSP; the random-pruning study of Liu et al. 2022): the L2 norm
  of the gradient of the mean cross-entropy on one seeded random batch of the training split,
  with respect to every parameter that requires grad (``grad_norm``) and restricted to the unpruned
  entries of Conv/Linear weights (entries that are exactly zero count as pruned; other
  parameters kept whole; ``grad_norm_unpruned``). The model is evaluated in eval mode (BatchNorm
  uses its running statistics), like every evaluator; gradients are computed with
  ``torch.autograd.grad``, so no ``.grad`` is written.
"""
from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from prunebench.errors import UserError
from prunebench.evaluation._common import device_of, eval_mode, test_images
from prunebench.evaluation.base import EvalContext
from prunebench.evaluation.registry import EVALUATORS
from prunebench.registry import Options

COND_CAP = 1e12  # condition numbers are capped (a zero singular value would give inf)


def jacobian(model: nn.Module, x: torch.Tensor, normalize: Any | None = None) -> torch.Tensor:
    """Per-example Jacobian [n, classes, input dims] of ``model(normalize(x))`` (or ``model(x)``)."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = model(normalize(x) if normalize is not None else x).float()
        rows = [torch.autograd.grad(logits[:, c].sum(), x, retain_graph=c < logits.shape[1] - 1)[0]
                for c in range(logits.shape[1])]
    return torch.stack([r.flatten(1) for r in rows], 1)


def spectrum_stats(sv: torch.Tensor) -> dict[str, float]:
    """Summary of singular values [n, k]: pooled mean, std/mean, mean (s-1)^2; per-image max/min averaged."""
    sv = sv.double()
    mean = sv.mean()
    smax, smin = sv.max(1).values, sv.min(1).values
    cond = (smax / smin.clamp_min(1e-300)).clamp_max(COND_CAP).nan_to_num(nan=1.0)  # 0/0: all-zero Jacobian
    return {
        "jac_sv_mean": mean.item(),
        "jac_sv_std_over_mean": (sv.std(unbiased=False) / mean).item() if mean > 0 else 0.0,
        "jac_cond": cond.mean().item(),
        "jac_isometry_dev": (sv - 1).pow(2).mean().item(),
    }


def _unpruned_grad_sq(model: nn.Module, params: list[nn.Parameter], grads: tuple[torch.Tensor, ...]) -> torch.Tensor:
    weights = {id(m.weight) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear, nn.Conv1d))}
    total = torch.zeros((), dtype=torch.float64, device=grads[0].device)
    for p, g in zip(params, grads, strict=True):
        g = g * (p.detach() != 0) if id(p) in weights else g
        total += g.double().pow(2).sum()
    return total


class TrainabilityOptions(Options):
    n: int = Field(32, gt=0, description="test images for the Jacobian spectrum")
    grad_batch: int = Field(256, gt=0, description="training images for the gradient norm, drawn with the seed")
    space: Literal["normalized", "pixel"] = Field("normalized", description="Jacobian with respect to the "
                                                  "normalized input or the [0, 1] image")


@EVALUATORS.register(
    "trainability", options=TrainabilityOptions,
    panels=("jac_cond", "jac_sv_mean", "jac_isometry_dev", "grad_norm", "grad_norm_unpruned", "train_loss"),
    description="Trainability of the pruned network: input-output Jacobian singular values and loss-gradient norm.")
def trainability(model: nn.Module, ctx: EvalContext, opts: TrainabilityOptions) -> dict[str, float]:
    """Metrics: ``jac_sv_mean``, ``jac_sv_std_over_mean``, ``jac_cond`` (mean over images of
    max s / min s, capped at 1e12), ``jac_isometry_dev`` (mean (s - 1)^2), ``grad_norm``,
    ``grad_norm_unpruned``, ``train_loss`` (loss on the gradient batch).
    """
    space = opts.space
    dev = device_of(ctx)
    x01, _ = test_images(ctx, opts.n)
    out: dict[str, float] = {}
    with eval_mode(model):
        sv = []
        for i in range(0, len(x01), ctx.batch_size):
            xb = x01[i : i + ctx.batch_size]
            jac = jacobian(model, xb, ctx.data.normalize) if space == "pixel" else jacobian(model, ctx.data.normalize(xb))
            sv.append(torch.linalg.svdvals(jac.double()))
        out.update(spectrum_stats(torch.cat(sv)))

        train = ctx.data.train
        if len(train) == 0:
            raise UserError("trainability needs training images for the gradient norm; load the dataset with its train split")
        gen = torch.Generator().manual_seed(int(ctx.seed))
        idx = torch.randperm(len(train), generator=gen)[: opts.grad_batch]
        xb = ctx.data.normalize(train.x[idx].to(dev).float().div_(255.0))
        yb = train.y[idx].to(dev)
        params = [p for p in model.parameters() if p.requires_grad]
        with torch.enable_grad():
            loss = F.cross_entropy(model(xb).float(), yb)
            grads = torch.autograd.grad(loss, params, allow_unused=True) if params else ()
        grads = tuple(torch.zeros_like(p) if g is None else g for p, g in zip(params, grads, strict=True))
        out["train_loss"] = loss.item()
        out["grad_norm"] = torch.stack([g.double().pow(2).sum() for g in grads]).sum().sqrt().item() if grads else 0.0
        out["grad_norm_unpruned"] = _unpruned_grad_sq(model, params, grads).sqrt().item() if grads else 0.0
    return out
