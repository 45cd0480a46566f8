"""``ood``: can the network's own confidence tell test images from out-of-distribution images?

Scores (higher = more in-distribution): maximum softmax probability, MSP (Hendrycks & Gimpel 2017),
and the negative energy logsumexp_c f_c(x) (Liu et al. 2020, eq. 5 with T = 1). The in-distribution
set is the test split; out-distribution sets are named in option ``out``:

* ``gaussian``: N(0.5, 1) per pixel clipped to [0, 1]; ``uniform``: U[0, 1] per pixel; as many
  images as the in-distribution test set, the same shape, drawn from ``ctx.seed``;
* any dataset name of ``prunebench.data`` (e.g. ``mnist``, ``svhn``, ``cifar100``): its test split
  (or its only split), at most ``n_out`` images, read from ``roots[name]`` when given, else from the
  standard data locations. Images of another size are resized bilinearly (antialiased when
  shrinking) and other channel counts converted (mean over channels to gray, repetition to RGB);
  a warning says so. Metrics then describe the *resized / converted* set.

Defaults: 1-channel data: mnist (fashion-mnist when the data is MNIST itself), gaussian, uniform;
3-channel data: svhn, cifar100, gaussian, uniform. A default dataset whose files are absent is
skipped with a warning; a dataset named explicitly must load.

Metrics, with in-distribution as the positive class: AUROC (Mann-Whitney, ties count 1/2),
AUPR-in (step-wise average precision over distinct thresholds) and FPR at 95% TPR (the fraction of
out scores >= the threshold that keeps 95% of in scores).
"""
from __future__ import annotations

import math
import warnings
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from prunebench.errors import UserError
from prunebench.evaluation._common import as_tuple, device_of, eval_mode, generator, test_images
from prunebench.evaluation.base import EvalContext, predict_logits
from prunebench.evaluation.registry import EVALUATORS
from prunebench.registry import Options

NOISE_SETS = ("gaussian", "uniform")


def _as_double(s_in: torch.Tensor, s_out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    s_in, s_out = s_in.detach().double().flatten().cpu(), s_out.detach().double().flatten().cpu()
    if len(s_in) == 0 or len(s_out) == 0:
        raise ValueError("OoD metrics need at least one in- and one out-distribution score")
    return s_in, s_out


def auroc(s_in: torch.Tensor, s_out: torch.Tensor) -> float:
    """P(score_in > score_out) + 1/2 P(equal), from mid-ranks (Mann-Whitney U / (n_in * n_out))."""
    s_in, s_out = _as_double(s_in, s_out)
    allv = torch.cat([s_in, s_out])
    uniq, inverse, counts = torch.unique(allv, sorted=True, return_inverse=True, return_counts=True)
    first_rank = torch.cumsum(counts, 0) - counts + 1  # 1-based rank of each value's first copy
    mid_rank = first_rank.double() + (counts.double() - 1) / 2
    rank_sum_in = mid_rank[inverse[: len(s_in)]].sum().item()
    n_in, n_out = len(s_in), len(s_out)
    return (rank_sum_in - n_in * (n_in + 1) / 2) / (n_in * n_out)


def aupr_in(s_in: torch.Tensor, s_out: torch.Tensor) -> float:
    """Average precision with in-distribution positive: sum over distinct thresholds t (descending)
    of (recall(t) - recall(previous t)) * precision(t); tied scores enter together."""
    s_in, s_out = _as_double(s_in, s_out)
    scores = torch.cat([s_in, s_out])
    pos = torch.cat([torch.ones(len(s_in)), torch.zeros(len(s_out))]).double()
    uniq, inverse = torch.unique(scores, sorted=True, return_inverse=True)
    # per distinct value (descending): positives and total at that value, then cumulative sums
    tp_at = torch.zeros(len(uniq), dtype=torch.float64).index_add_(0, inverse, pos).flip(0)
    all_at = torch.zeros(len(uniq), dtype=torch.float64).index_add_(0, inverse, torch.ones_like(pos)).flip(0)
    tp, total = tp_at.cumsum(0), all_at.cumsum(0)
    precision, recall = tp / total, tp / len(s_in)
    recall_prev = torch.cat([torch.zeros(1, dtype=torch.float64), recall[:-1]])
    return ((recall - recall_prev) * precision).sum().item()


def fpr_at_tpr(s_in: torch.Tensor, s_out: torch.Tensor, tpr: float = 0.95) -> float:
    """Fraction of out scores >= t, t the largest threshold keeping at least ``tpr`` of the in scores."""
    s_in, s_out = _as_double(s_in, s_out)
    m = max(1, math.ceil(tpr * len(s_in) - 1e-9))  # how many in-scores must be >= t
    t = s_in.sort(descending=True).values[m - 1]
    return (s_out >= t).double().mean().item()


def _scores(logits: torch.Tensor) -> dict[str, torch.Tensor]:
    logits = logits.double()
    return {"msp": logits.softmax(1).max(1).values, "energy": logits.logsumexp(1)}


@lru_cache(maxsize=4)
def _load_out_images(name: str, root: str | None) -> torch.Tensor:
    """uint8 NCHW images of a named dataset's test split (or only split), cached across calls."""
    from prunebench.data import load_splits

    _, splits = load_splits(name, root)
    split = splits["test"] if "test" in splits else next(iter(splits.values()))
    return split.x


def _fit_shape(x01: torch.Tensor, channels: int, size: tuple[int, ...], name: str) -> torch.Tensor:
    """Resize / convert channels of an OoD set to the in-distribution shape, with a warning."""
    notes, c0 = [], x01.shape[1]
    if c0 != channels:
        if channels == 1:
            x01 = x01.mean(1, keepdim=True)
        elif x01.shape[1] == 1:
            x01 = x01.expand(-1, channels, -1, -1)
        else:
            raise UserError(f"OoD set {name!r} has {x01.shape[1]} channels and the data {channels}; "
                            "pick an OoD set with 1 channel or the same count")
        notes.append(f"{c0}->{channels} channels")
    if tuple(x01.shape[2:]) != tuple(size):
        shrink = x01.shape[2] > size[0] or x01.shape[3] > size[1]
        notes.append(f"resized {tuple(x01.shape[2:])}->{tuple(size)} bilinear")
        x01 = F.interpolate(x01, size=size, mode="bilinear", align_corners=False, antialias=shrink).clamp_(0, 1)
    if notes:
        warnings.warn(f"ood: OoD set {name!r} converted to the data's shape ({', '.join(notes)})", stacklevel=3)
    return x01


def _default_out(ctx: EvalContext) -> list[str]:
    info = ctx.data.info
    if info.in_channels == 1:
        return ["fashion-mnist" if info.name == "mnist" else "mnist", *NOISE_SETS]
    return ["svhn", "cifar100", *NOISE_SETS]


class OodOptions(Options):
    out: str | tuple[str, ...] | None = Field(None, description="out-distribution sets: gaussian, uniform or dataset "
                                              "names; default by channel count (see prunebench.evaluation.evaluators.ood)")
    roots: dict[str, str] | None = Field(None, description="{dataset name: folder} for dataset OoD sets")
    n_out: int = Field(10000, gt=0, description="most images taken from a dataset OoD set (at most max_samples)")


@EVALUATORS.register("ood", options=OodOptions, panels=("auroc/",), description=(
    "Out-of-distribution detection from the network's own scores (MSP, energy): AUROC with "
    "in-distribution as positive; 0.5 = chance."))
def ood(model: nn.Module, ctx: EvalContext, opts: OodOptions) -> dict[str, float]:
    """OoD detection by MSP and energy, test split vs. each set in ``out`` (see module docstring).

    Metrics per set S and score s in {msp, energy}: ``auroc/<s>-<S>``, ``aupr/<s>-<S>`` (in positive),
    ``fpr95/<s>-<S>``. Sets of a different image size or channel count are resized (bilinear) /
    converted (channel mean or repetition) first, with a warning.
    """
    explicit = opts.out is not None
    names = list(as_tuple(opts.out)) if explicit else _default_out(ctx)
    roots = dict(opts.roots or {})
    n_out = opts.n_out
    if ctx.max_samples:  # quick runs shrink the OoD sets too
        n_out = min(n_out, ctx.max_samples)
    x_in, _ = test_images(ctx, None)
    dev = device_of(ctx)
    gen = generator(ctx)
    result: dict[str, float] = {}
    with eval_mode(model):
        s_in = _scores(predict_logits(model, x_in, ctx.data, dev, ctx.batch_size))
        for name in names:
            if name == "gaussian":
                x_out = (torch.randn(x_in.shape, generator=gen, device=dev) + 0.5).clamp_(0, 1)
            elif name == "uniform":
                x_out = torch.rand(x_in.shape, generator=gen, device=dev)
            else:
                try:
                    root = roots.get(name)
                    raw = _load_out_images(name, str(Path(root)) if root is not None else None)
                except UserError as e:
                    if explicit:
                        raise
                    warnings.warn(f"ood: skipping default OoD set {name!r}: {e}", stacklevel=2)
                    continue
                x_out = _fit_shape(raw[:n_out].to(dev).float().div_(255.0), x_in.shape[1], tuple(x_in.shape[2:]), name)
            s_out = _scores(predict_logits(model, x_out, ctx.data, dev, ctx.batch_size))
            for score in ("msp", "energy"):
                a, b = s_in[score], s_out[score]
                result[f"auroc/{score}-{name}"] = auroc(a, b)
                result[f"aupr/{score}-{name}"] = aupr_in(a, b)
                result[f"fpr95/{score}-{name}"] = fpr_at_tpr(a, b, 0.95)
    return result
