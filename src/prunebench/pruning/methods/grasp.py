"""GraSP, gradient signal preservation (Wang, Zhang & Grosse, "Picking Winning Tickets Before
Training by Preserving Gradient Flow", ICLR 2020, Eq. 8 and Algorithm 1).

Score S(-theta) = -theta * (H g): H the Hessian and g the gradient of the loss at the current
weights, H g obtained as grad_theta(stopgrad(g)^T grad_theta L) (one double backward). L is the
mean cross-entropy of logits / T (T = 200, the paper's temperature) over a class-balanced batch
from the validation split (``samples_per_class``, default 10 as for CIFAR-10). Scores are divided
by |sum of scores| + 1e-10 (methods.md). GraSP *removes the weights with the largest scores*:
removing them reduces the gradient norm least (or raises it); global selection over all
prunable layers, cascade-aware (pruned weights stay pruned and count as zero weights).

The model's buffers (BN running statistics) are left as they were.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from prunebench.data.base import Dataset
from prunebench.errors import UserError
from prunebench.pruning.allocation import global_topk
from prunebench.pruning.base import PruneContext, scoring
from prunebench.pruning.masks import PruningState
from prunebench.pruning.registry import METHODS
from prunebench.registry import Options


class GraspOptions(Options):
    samples_per_class: int = Field(10, ge=1, description="validation images per class in the scoring batch")
    temperature: float = Field(200.0, gt=0, description="T: the loss is the cross-entropy of logits / T")
    batch_size: int = Field(64, ge=1, description="chunk size of the scoring batch")
    train_mode: bool = Field(False, description="score with BatchNorm batch statistics (the whole batch in one "
                                                "chunk, as at initialization) instead of running statistics")


def class_balanced_batch(data: Dataset, per_class: int, generator: torch.Generator,
                         device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
    """``per_class`` normalized validation images of every class (fewer if a class has fewer), seeded."""
    val = data.val
    y = val.y.cpu()
    picks = []
    for c in range(data.info.num_classes):
        idx = (y == c).nonzero().flatten()
        if len(idx):
            picks.append(idx[torch.randperm(len(idx), generator=generator)[:per_class]])
    if not picks:
        raise UserError(f"dataset {data.info.name!r} has an empty validation split; GraSP needs labelled validation images")
    idx = torch.cat(picks).sort().values
    sub = val.subset(idx.to(val.x.device))
    return data.normalize(sub.float_images().to(device)), sub.y.to(device)


def grasp_scores(model: nn.Module, weights: dict[str, Tensor], x: Tensor, y: Tensor, *, temperature: float = 200.0,
                 batch_size: int = 64, seed: int = 0) -> dict[str, Tensor]:
    """-theta * (H g) per weight (Eq. 8), L the mean cross-entropy of logits / ``temperature`` over (x, y).

    Chunks of ``batch_size`` accumulate g first, then H g (H g is linear in the per-sample losses
    given the fixed g). ``weights``: the parameters to score (name -> parameter of ``model``).
    Each chunk replays the same random state in both passes, so a model with dropout is
    differentiated at one and the same function.
    """
    params = list(weights.values())
    n = len(x)

    def chunk_grads(i: int, create_graph: bool) -> tuple[Tensor, ...]:
        with torch.random.fork_rng(devices=[x.device] if x.is_cuda else []):
            torch.manual_seed(seed + i)
            out = model(x[i:i + batch_size]) / temperature
        loss = F.cross_entropy(out, y[i:i + batch_size], reduction="sum") / n
        grads = torch.autograd.grad(loss, params, create_graph=create_graph, allow_unused=True)
        return tuple(torch.zeros_like(p) if g is None else g for p, g in zip(params, grads, strict=True))

    with torch.enable_grad():
        g = [torch.zeros_like(p) for p in params]
        for i in range(0, n, batch_size):
            for acc, gi in zip(g, chunk_grads(i, False), strict=True):
                acc.add_(gi.detach())
        hg = [torch.zeros_like(p) for p in params]
        for i in range(0, n, batch_size):
            grads = chunk_grads(i, True)
            z = sum((gd * gi).sum() for gd, gi in zip(g, grads, strict=True) if gi.requires_grad)
            if isinstance(z, Tensor) and z.requires_grad:
                for acc, h in zip(hg, torch.autograd.grad(z, params, allow_unused=True), strict=True):
                    if h is not None:
                        acc.add_(h)
    scores = {k: -(p.detach() * h) for (k, p), h in zip(weights.items(), hg, strict=True)}
    norm = abs(sum(float(s.sum()) for s in scores.values())) + 1e-10
    return {k: s / norm for k, s in scores.items()}


def grasp_layer_scores(model: nn.Module, state: PruningState, ctx: PruneContext,
                       method: str = "grasp") -> dict[str, Tensor]:
    """GraSP scores of every masked weight (pruned weights count as zero); options ``ctx.opts(GraspOptions)``,
    ``method`` for messages."""
    opts = ctx.opts(GraspOptions)
    data = ctx.require_data(method)
    weights = state.weights()
    first = next(iter(weights.values()))
    x, y = class_balanced_batch(data, opts.samples_per_class, ctx.generator("cpu"), first.device)
    x = x.to(first.dtype)
    train_mode = opts.train_mode
    # Batch statistics (train mode) make the loss depend on how the batch is chunked: one chunk then.
    batch_size = len(x) if train_mode else opts.batch_size
    with scoring(model, train_mode):
        with torch.no_grad():  # score the model as the masks leave it (cascade): pruned weights are zero
            saved = {k: w.detach().clone() for k, w in weights.items()}
            for k, w in weights.items():
                w.mul_(state.masks[k].to(w.dtype))
        try:
            return grasp_scores(model, weights, x, y, temperature=opts.temperature, batch_size=batch_size,
                                seed=ctx.seed)
        finally:
            with torch.no_grad():
                for k, w in weights.items():
                    w.copy_(saved[k])


@METHODS.register("grasp", options=GraspOptions, structured=False, data_informed=True, label="GraSP")
def grasp(model: nn.Module, state: PruningState, ratio: float, ctx: PruneContext) -> dict[str, Tensor]:
    """Keep the weights with the lowest GraSP scores -theta * (H g) (remove the highest)."""
    scores = grasp_layer_scores(model, state, ctx)
    return global_topk({k: -s for k, s in scores.items()}, state.masks, ratio)
