"""Callbacks that extend the closed training loop (open_lth style).

The trainer calls, on each callback that defines them (all optional; implement only what you need):

* ``on_start(optimizer, total_steps)`` once before the first step (dynamic sparse training resets
  optimizer state with it and schedules its mask updates over the steps);
* ``on_step(step)`` after every optimizer step (pruning masks are re-applied there, so pruned weights
  never regrow);
* ``on_epoch_end(epoch, metrics)`` after each epoch's validation.
"""
from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Callback(Protocol):
    def on_step(self, step: int) -> None: ...

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None: ...


class StartCallback(Callback, Protocol):
    """A callback that also needs the optimizer and the number of steps before training starts."""

    def on_start(self, optimizer: Any, total_steps: int) -> None: ...
