"""Pruning interfaces: what a method receives (``PruneContext``), scoring without side effects, the ratio check.

Vocabulary used everywhere in prunebench:
  * ``prune_ratio`` = fraction of the *prunable* parameters (weights of the selected Conv2d /
    Linear layers) that are removed. Never a keep ratio, never a channel ratio.
  * importance (how much a weight / channel matters) is kept apart from allocation (how much to
    prune where): a method computes scores, an allocation rule turns them into masks.

A method is a function registered in :data:`prunebench.pruning.registry.METHODS` with
``@METHODS.register("wt", options=WTOptions, structured=False, data_informed=False)`` and the signature
``f(model, state, ratio, ctx) -> dict[str, Tensor]``: it returns the *new* masks (same keys as
``state.masks``) such that the achieved overall prune ratio is ``ratio`` (within 0.5% relative),
never reviving a weight that ``state.masks`` already pruned (cascade).
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import torch
from torch import nn

from prunebench.data.base import Dataset
from prunebench.errors import UserError
from prunebench.registry import Options

OptionsT = TypeVar("OptionsT", bound=Options)


@dataclass
class PruneContext:
    """What a method may use besides the weights: data, device, randomness and its options.

    ``options``: a plain mapping from the caller; the registered method replaces it by its parsed
    options model before its body runs (:mod:`prunebench.pruning.registry`), read with :meth:`opts`.
    """

    data: Dataset | None = None  # data-informed methods draw their batch from data.val, never data.test
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    seed: int = 0
    options: Options | Mapping[str, Any] = field(default_factory=dict)

    def opts(self, model: type[OptionsT]) -> OptionsT:
        """The parsed options, typed as ``model`` (a method's own options class or a base of it)."""
        if not isinstance(self.options, model):
            raise TypeError(f"PruneContext.options is {type(self.options).__name__}, not the parsed {model.__name__}; "
                            "call the method through METHODS (it parses the options)")
        return self.options

    def generator(self, device: torch.device | str = "cpu") -> torch.Generator:
        return torch.Generator(device=device).manual_seed(self.seed)

    def require_data(self, method: str) -> Dataset:
        if self.data is None:
            raise UserError(f"method {method!r} is data-informed and needs a dataset; "
                            "pass --data NAME (its validation split is used)")
        return self.data


class PruningMethod(Protocol):
    def __call__(self, model: nn.Module, state: PruningState, ratio: float, ctx: PruneContext) -> dict[str, torch.Tensor]: ...



@contextmanager
def scoring(model: nn.Module, train: bool) -> Iterator[nn.Module]:
    """Run forward passes for scoring in train or eval mode and leave no trace: the mode and every
    buffer (BatchNorm running statistics, ``num_batches_tracked``) are restored afterwards, so a
    method that scores in train mode does not change the model it prunes."""
    was_training = model.training
    saved = {k: b.detach().clone() for k, b in model.named_buffers()}
    model.train(train)
    try:
        yield model
    finally:
        model.train(was_training)
        with torch.no_grad():
            for k, b in model.named_buffers():
                if k in saved:
                    b.copy_(saved[k])


def check_ratio(ratio: float) -> float:
    if not 0.0 <= float(ratio) < 1.0:
        raise UserError(f"prune ratio must be in [0, 1), got {ratio}; it is the fraction of prunable weights removed (e.g. 0.5)")
    return float(ratio)


from prunebench.pruning.masks import PruningState  # noqa: E402  (re-export; masks imports nothing from here)
from prunebench.pruning.registry import METHODS  # noqa: E402,F401  (re-export for older imports)
