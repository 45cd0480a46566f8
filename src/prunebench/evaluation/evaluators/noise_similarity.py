"""``noise-similarity``: does the pruned network still behave like its parent around the test points?

Protocol of Liebenwein et al., "Lost in Pruning" (MLSys 2021), Sec. 4 / App. (see
shared/reference/evaluation.md Sec. 2): for ``n`` test images and ``draws`` noise draws per image,
add noise U[-eps, eps] to the *normalized* input (no clipping), for every eps of a grid
(default linspace(0, 0.7, 15)), and compare the pruned network's outputs with the parent's:
the fraction of (image, draw) pairs whose argmax agrees, the mean L2 norm of the softmax
difference and of the logit difference. A separately trained network of the same architecture
(``ctx.baseline``) compared with the same parent gives the reference level of "how similar are two
independently trained networks". Accuracies under noise are returned as distributions
``acc/noise-<eps>`` so prune potential can be computed per eps.

Batched: every chunk of ``batch_rows`` rows holds ``batch_rows // draws`` images times ``draws``
noise draws, and the model, the parent and the baseline all see the very same noisy rows. At
eps = 0 every draw is the clean image, so one draw is evaluated (same means, 1/draws the cost).
"""
from __future__ import annotations

from typing import Any

import torch
from pydantic import Field
from torch import nn

from prunebench.evaluation._common import NonNegFloats, as_tuple, device_of, eval_mode, generator, num_key, test_images
from prunebench.evaluation.base import EvalContext
from prunebench.evaluation.registry import EVALUATORS, ParamPlot
from prunebench.registry import Options

DEFAULT_EPS = tuple(0.7 * i / 14 for i in range(15))  # linspace(0, 0.7, 15)


def _compare(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Summed argmax agreement, softmax-difference L2 and logit-difference L2 of two logit batches."""
    match = (a.argmax(1) == b.argmax(1)).sum()
    sm = (a.softmax(1) - b.softmax(1)).norm(dim=1).sum()
    lg = (a - b).norm(dim=1).sum()
    return match, sm, lg


class NoiseSimilarityOptions(Options):
    n: int = Field(1000, gt=0, description="first test images")
    draws: int = Field(100, gt=0, description="noise draws per image")
    eps: NonNegFloats = Field(DEFAULT_EPS, description="noise levels (uniform noise U[-eps, eps] on the normalized "
                                                       "input); default linspace(0, 0.7, 15)")
    batch_rows: int | None = Field(None, gt=0, description="rows per forward pass, at least draws; default the "
                                                           "inference batch size, at most 500 on CPU")


@EVALUATORS.register(
    "noise-similarity", options=NoiseSimilarityOptions, needs_parent=True, axis_label="eps", panels=(),
    check_options={"n": 1000, "draws": 5, "eps": [0.1, 0.2, 0.3]},
    param_plots=(ParamPlot("match", "matching labels", "Fraction of noisy inputs where the pruned network's label "
                           "matches the parent's, vs eps; one line per prune ratio (lighter = more pruned)."),
                 ParamPlot("softmax_l2", "‖softmax diff‖₂", "L2 norm of the softmax difference to the parent vs eps.")),
    description="Agreement with the parent under uniform input noise U[-eps, eps] on the normalized input "
                "(Lost in Pruning): matching labels (fraction of inputs whose argmax equals the parent's) and "
                "accuracy per eps. The dotted grey line is a separately trained network of the same "
                "architecture compared with the same parent, where reported.")
@torch.no_grad()
def noise_similarity(model: nn.Module, ctx: EvalContext, opts: NoiseSimilarityOptions) -> dict[str, Any]:
    """Agreement with the parent under input noise, per eps (keys use ``num_key(eps)``, e.g. ``0.05``).

    Metrics per eps: ``match/<eps>`` (fraction of (image, draw) pairs with the parent's argmax),
    ``softmax_l2/<eps>``, ``logit_l2/<eps>`` (mean L2 norm of the difference to the parent),
    ``acc/noise-<eps>`` (the model's accuracy under that noise, per (image, draw) in
    ``correct/noise-<eps>`` as an (n, draws) array; (n, 1) at eps 0; agreement with the parent per
    (image, draw) in ``agree/noise-<eps>``, the baseline's in ``baseline_agree/noise-<eps>``), ``parent_acc/<eps>``; with
    ``ctx.baseline``: ``baseline_match/<eps>``, ``baseline_softmax_l2/<eps>``, ``baseline_logit_l2/<eps>``
    (baseline vs. the same parent) and ``baseline_acc/<eps>``.
    """
    parent = ctx.require_parent("noise-similarity")
    baseline = ctx.baseline
    draws, eps_grid, batch_rows = opts.draws, as_tuple(opts.eps), opts.batch_rows
    x01, y = test_images(ctx, opts.n)
    dev = device_of(ctx)
    if batch_rows is None:  # small conv nets run ~1.5x faster per image on CPU in cache-sized batches
        batch_rows = min(ctx.batch_size, 500) if dev.type == "cpu" else ctx.batch_size
    rows = max(batch_rows, draws)
    gen = generator(ctx)
    out: dict[str, Any] = {}
    with eval_mode(model, parent, baseline):
        for e in eps_grid:
            k = 1 if e == 0.0 else draws
            per_chunk = max(1, rows // k)
            sums = torch.zeros(9, device=dev, dtype=torch.float64)
            correct, agree, base_agree = [], [], []  # per (image, draw), image-major like the rows
            for i in range(0, len(x01), per_chunk):
                xb = ctx.data.normalize(x01[i : i + per_chunk]).repeat_interleave(k, 0)
                yb = y[i : i + per_chunk].repeat_interleave(k, 0)
                if e > 0.0:
                    xb += torch.empty_like(xb).uniform_(-e, e, generator=gen)
                lm, lp = model(xb).float(), parent(xb).float()
                m, sm, lg = _compare(lm, lp)
                correct.append(lm.argmax(1) == yb)
                agree.append(lm.argmax(1) == lp.argmax(1))
                stats = [m, sm, lg, correct[-1].sum(), (lp.argmax(1) == yb).sum()]
                if baseline is not None:
                    lb = baseline(xb).float()
                    base_agree.append(lb.argmax(1) == lp.argmax(1))
                    stats += [*_compare(lb, lp), (lb.argmax(1) == yb).sum()]
                sums[: len(stats)] += torch.stack([s.double() for s in stats])
            means = (sums / (len(x01) * k)).tolist()
            key = num_key(e)
            out[f"match/{key}"], out[f"softmax_l2/{key}"], out[f"logit_l2/{key}"] = means[0:3]
            out[f"acc/noise-{key}"], out[f"parent_acc/{key}"] = means[3:5]
            out[f"correct/noise-{key}"] = torch.cat(correct).reshape(len(x01), k)
            out[f"agree/noise-{key}"] = torch.cat(agree).reshape(len(x01), k)
            if baseline is not None:
                out[f"baseline_agree/noise-{key}"] = torch.cat(base_agree).reshape(len(x01), k)
            if baseline is not None:
                out[f"baseline_match/{key}"], out[f"baseline_softmax_l2/{key}"] = means[5:7]
                out[f"baseline_logit_l2/{key}"], out[f"baseline_acc/{key}"] = means[7:9]
    return out
