"""``adversarial``: robust accuracy under L-inf FGSM and PGD attacks in [0, 1] pixel space.

FGSM (Goodfellow et al. 2015): x' = clip_[0,1](x + eps * sign(grad_x CE)). PGD (Madry et al. 2018,
eq. 2 iterated): random start x + U[-eps, eps], then ``steps`` steps x <- proj_{B(x0, eps) and [0,1]}
(x + alpha * sign(grad_x CE)). Attacks act on the [0, 1] image; the dataset normalization is part
of the attacked function. The model stays in eval mode; gradients are taken with respect to the
input only (parameters' ``requires_grad`` and ``.grad`` are left as they were).

Counting, so that results are consistent lower bounds on the attack's success:
* an example counts as broken if the clean image or *any* PGD iterate (random start included)
  is misclassified; hence robust accuracy <= clean accuracy and is non-increasing in ``steps``
  (with the same seed the first iterates are identical);
* eps values are processed in increasing order and an example broken at eps stays broken at every
  larger eps (an adversarial example inside a smaller ball lies inside the larger one); hence
  robust accuracy is non-increasing over the eps grid.

Defaults (shared/reference/evaluation.md Sec. 3; our choice where the reference leaves it open):
3-channel data: eps in {1, 2, 4, 8}/255; 1-channel (e.g. 28x28 Fashion-MNIST): eps in
{0.01, 0.03, 0.1}; both with step alpha = eps / 4 (2/255 at 8/255), 10 PGD steps, 1 restart,
the first 1000 test images.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

import torch
import torch.nn.functional as F
from pydantic import AfterValidator, Field
from torch import nn

from prunebench.evaluation._common import UnitFloats, as_tuple, eval_mode, generator, non_empty, num_key, test_images
from prunebench.evaluation.base import EvalContext
from prunebench.evaluation.registry import EVALUATORS
from prunebench.registry import Options

RGB_EPS = (1 / 255, 2 / 255, 4 / 255, 8 / 255)
GRAY_EPS = (0.01, 0.03, 0.1)


def _loss_grad(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits at x and the gradient of the summed cross-entropy with respect to x."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = f(x).float()
        (grad,) = torch.autograd.grad(F.cross_entropy(logits, y, reduction="sum"), x)
    return logits.detach(), grad


def fgsm_broken(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """Boolean per example: clean or FGSM image misclassified."""
    logits, grad = _loss_grad(f, x, y)
    with torch.no_grad():
        x_adv = (x + eps * grad.sign()).clamp_(0, 1)
        return (logits.argmax(1) != y) | (f(x_adv).argmax(1) != y)


def pgd_broken(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor, eps: float, alpha: float,
               steps: int, gen: torch.Generator, restarts: int = 1) -> torch.Tensor:
    """Boolean per example: clean image or any PGD iterate (any restart) misclassified."""
    with torch.no_grad():
        broken = f(x).argmax(1) != y
    lo, hi = (x - eps).clamp(0, 1), (x + eps).clamp(0, 1)
    for _ in range(restarts):
        x_adv = (x + torch.empty_like(x).uniform_(-eps, eps, generator=gen)).clamp_(0, 1)
        for _ in range(steps):
            logits, grad = _loss_grad(f, x_adv, y)
            broken |= logits.argmax(1) != y
            x_adv = torch.min(torch.max(x_adv + alpha * grad.sign(), lo), hi)
        with torch.no_grad():
            broken |= f(x_adv).argmax(1) != y
    return broken


Attack = Literal["fgsm", "pgd"]
Attacks = Annotated[Attack | tuple[Attack, ...], AfterValidator(non_empty)]


class AdversarialOptions(Options):
    n: int = Field(1000, gt=0, description="first test images attacked")
    eps: UnitFloats | None = Field(None, description="L-inf radii in [0, 1]; default by channel count "
                                                 "(1 channel: 0.01, 0.03, 0.1; 3 channels: 1, 2, 4, 8 / 255)")
    alpha_ratio: float = Field(0.25, gt=0, description="PGD step size as a fraction of eps")
    steps: int = Field(10, gt=0, description="PGD steps")
    restarts: int = Field(1, gt=0, description="PGD random restarts")
    attacks: Attacks = Field(("fgsm", "pgd"), description="fgsm and/or pgd")


@EVALUATORS.register("adversarial", options=AdversarialOptions, axis_label="eps", panels=(),
                     check_options={"n": 1000, "attacks": ["fgsm"]},
                     description="Robust accuracy under L-inf FGSM / PGD attacks in [0, 1] pixel space, per eps.")
def adversarial(model: nn.Module, ctx: EvalContext, opts: AdversarialOptions) -> dict[str, Any]:
    """Robust accuracy per attack and eps: ``acc/fgsm-<eps>``, ``acc/pgd-<eps>`` (key ``num_key(eps)``,
    e.g. ``0.03`` or ``0.03137`` for 8/255), plus ``clean_acc`` on the same images; per-example
    robustness as ``correct/<attack>-<eps>``. See the module docstring for the counting rules.
    """
    attacks = list(dict.fromkeys(as_tuple(opts.attacks)))
    x01, y = test_images(ctx, opts.n)
    default = GRAY_EPS if x01.shape[1] == 1 else RGB_EPS
    eps_grid = sorted(as_tuple(default if opts.eps is None else opts.eps))
    alpha_ratio, steps, restarts = opts.alpha_ratio, opts.steps, opts.restarts
    gen = generator(ctx)
    f = lambda x: model(ctx.data.normalize(x))  # noqa: E731  (the attacked function on [0, 1] images)
    bs = ctx.batch_size
    out: dict[str, Any] = {}
    with eval_mode(model):
        with torch.no_grad():
            clean_ok = torch.cat([f(x01[i : i + bs]).argmax(1) == y[i : i + bs] for i in range(0, len(x01), bs)])
        out["clean_acc"] = clean_ok.double().mean().item()
        for attack in attacks:
            robust = clean_ok.clone()
            for e in eps_grid:
                broken = []
                for i in range(0, len(x01), bs):
                    xb, yb = x01[i : i + bs], y[i : i + bs]
                    if attack == "fgsm":
                        broken.append(fgsm_broken(f, xb, yb, e))
                    else:
                        broken.append(pgd_broken(f, xb, yb, e, alpha_ratio * e, steps, gen, restarts))
                robust &= ~torch.cat(broken)
                out[f"acc/{attack}-{num_key(e)}"] = robust.double().mean().item()
                out[f"correct/{attack}-{num_key(e)}"] = robust.clone()
    return out
