"""Small helpers shared by the evaluators: eval mode, seeded randomness, option checks, key formats."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, Sequence

import torch
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
            for mod, flag in zip(m.modules(), flags):
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
        split = split.subset(slice(0, positive_int(n, "n")))
    if len(split) == 0:
        raise UserError("the test split is empty; evaluate on a dataset with test images (check max_samples / test_limit)")
    dev = device_of(ctx)
    return split.x.to(dev).float().div_(255.0), split.y.to(dev)


def positive_int(value: Any, name: str) -> int:
    try:
        ivalue = int(value)
    except (TypeError, ValueError):
        raise UserError(f"option {name!r} must be a positive integer, got {value!r}") from None
    if ivalue <= 0 or ivalue != value:
        raise UserError(f"option {name!r} must be a positive integer, got {value!r}")
    return ivalue


def float_list(value: Any, name: str, *, low: float = 0.0, high: float = float("inf")) -> tuple[float, ...]:
    """A non-empty list of floats in [low, high] from an option (a number or a sequence of numbers)."""
    seq: Sequence[Any] = value if isinstance(value, (list, tuple)) else [value]
    try:
        out = tuple(float(v) for v in seq)
    except (TypeError, ValueError):
        raise UserError(f"option {name!r} must be a number or a list of numbers, got {value!r}") from None
    if not out or any(not (low <= v <= high) for v in out):
        raise UserError(f"option {name!r} needs values in [{low:g}, {high:g}], got {value!r}")
    return out


def num_key(value: float) -> str:
    """A short, stable metric-key form of a number: 0.05 -> '0.05', 8/255 -> '0.03137', 10.0 -> '10'."""
    return f"{float(value):.4g}"


@torch.no_grad()
def forward_batched(net: nn.Module, xn: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Float logits of ``net`` for an already normalized batch, ``batch_size`` rows per forward pass."""
    return torch.cat([net(xn[i : i + batch_size]).float() for i in range(0, len(xn), batch_size)])
