"""Noise corruptions (CIFAR-10-C constants, Hendrycks & Dietterich 2019): per-element, size-free."""
from __future__ import annotations

import torch

from prunebench.evaluation.corruptions._ops import rand, randn
from prunebench.evaluation.corruptions.registry import register

Tensor = torch.Tensor


@register("gaussian_noise", "noise", benchmark=True)
def gaussian_noise(x: Tensor, severity: int, gen: torch.Generator) -> Tensor:
    """x + N(0, c^2) per element."""
    c = (0.04, 0.06, 0.08, 0.09, 0.10)[severity - 1]
    return (x + c * randn(gen, x.shape, x)).clamp_(0, 1)


@register("shot_noise", "noise", benchmark=True)
def shot_noise(x: Tensor, severity: int, gen: torch.Generator) -> Tensor:
    """Poisson(x * c) / c per element (photon counting noise)."""
    c = (500, 250, 100, 75, 50)[severity - 1]
    rates = (x.float() * c).to(gen.device)
    counts = torch.poisson(rates, generator=gen)
    return (counts / c).to(x.device, x.dtype).clamp_(0, 1)


@register("impulse_noise", "noise", benchmark=True)
def impulse_noise(x: Tensor, severity: int, gen: torch.Generator) -> Tensor:
    """Salt and pepper per element (skimage random_noise mode "s&p"): with probability c an element
    is replaced, by 1 or 0 with equal odds."""
    c = (0.01, 0.02, 0.03, 0.05, 0.07)[severity - 1]
    flipped = rand(gen, x.shape, x) < c
    salted = rand(gen, x.shape, x) < 0.5
    out = torch.where(flipped & salted, torch.ones_like(x), x)
    return torch.where(flipped & ~salted, torch.zeros_like(x), out)


@register("speckle_noise", "noise", benchmark=False)
def speckle_noise(x: Tensor, severity: int, gen: torch.Generator) -> Tensor:
    """x + x * N(0, c^2) per element (multiplicative noise)."""
    c = (0.06, 0.10, 0.12, 0.16, 0.20)[severity - 1]
    return (x + x * (c * randn(gen, x.shape, x))).clamp_(0, 1)
