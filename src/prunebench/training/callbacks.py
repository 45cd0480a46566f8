"""Callbacks that extend the closed training loop (open_lth style).

The trainer calls ``on_step(step)`` after every optimizer step (pruning masks are re-applied
there, so pruned weights never regrow) and ``on_epoch_end(epoch, metrics)`` after each epoch's
validation. Both are optional; implement only what you need.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class Callback(Protocol):
    def on_step(self, step: int) -> None: ...

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None: ...
