"""Small helpers shared by the evaluators: eval mode, seeded randomness, option types, key formats."""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import torch
from pydantic import AfterValidator
from torch import nn

from prunebench.errors import UserError
from prunebench.evaluation.base import EvalContext


@contextmanager
def eval_mode(*models: nn.Module | None) -> Iterator[None]:
    """Put every given model in eval mode for the block and restore each one's train/eval flags after.

    Parameters' ``requires_grad`` flags are never touched: attacks and Jacobians differentiate with
    respect to the input only (``torch.autograd.grad`` with ``inputs=``), so no ``.grad`` accumulates.
    """
    saved = [(m, [mod.training for mod in m.modules()]) for m in models if m is not None]
    for m, _ in saved:
        m.eval()
    try:
        yield
    finally:
        for m, flags in saved:
            for mod, flag in zip(m.modules(), flags, strict=True):
                mod.training = flag


def device_of(ctx: EvalContext) -> torch.device:
    return torch.device(ctx.device)


def generator(ctx: EvalContext) -> torch.Generator:
    """A generator on the evaluation device seeded with ``ctx.seed`` (same seed, same device: same draws)."""
    return torch.Generator(device=device_of(ctx)).manual_seed(int(ctx.seed))


def test_images(ctx: EvalContext, n: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` test images (after ``ctx.max_samples``) as float [0, 1] and their labels, on the device."""
    split = ctx.test_split()
    if n is not None:
        split = split.subset(slice(0, n))
    if len(split) == 0:
        raise UserError("the test split is empty; evaluate on a dataset with test images (check max_samples / test_limit)")
    dev = device_of(ctx)
    return split.x.to(dev).float().div_(255.0), split.y.to(dev)


def _in_range(low: float, high: float, *, open_low: bool = False) -> Callable[[Any], Any]:
    """A pydantic after-validator: a number or a non-empty list of numbers, each in [low, high]
    (low excluded with ``open_low``); returns the value unchanged."""

    def check(value: Any) -> Any:
        values = value if isinstance(value, tuple) else (value,)
        if not values:
            raise ValueError("give at least one value")
        for v in values:
            if not math.isfinite(v) or v > high or (v <= low if open_low else v < low):
                raise ValueError(f"values must be in {'(' if open_low else '['}{low:g}, {high:g}], got {v:g}")
        return value

    return check


# option types: a number or a list of numbers (kept as given, so config hashes see what was written)
NonNegFloats = Annotated[float | tuple[float, ...], AfterValidator(_in_range(0.0, math.inf))]
UnitFloats = Annotated[float | tuple[float, ...], AfterValidator(_in_range(0.0, 1.0))]
Percentages = Annotated[float | tuple[float, ...], AfterValidator(_in_range(0.0, 100.0, open_low=True))]


def non_empty(value: Any) -> Any:
    """A pydantic after-validator: the value (a scalar or a list) is not an empty list."""
    if isinstance(value, tuple) and not value:
        raise ValueError("give at least one value")
    return value


def as_tuple(value: Any) -> tuple[Any, ...]:
    """A scalar option value as a one-tuple, a list / tuple as a tuple."""
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


def num_key(value: float) -> str:
    """A short, stable metric-key form of a number: 0.05 -> '0.05', 8/255 -> '0.03137', 10.0 -> '10'."""
    return f"{float(value):.4g}"


@torch.no_grad()
def forward_batched(net: nn.Module, xn: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Float logits of ``net`` for an already normalized batch, ``batch_size`` rows per forward pass."""
    return torch.cat([net(xn[i : i + batch_size]).float() for i in range(0, len(xn), batch_size)])
