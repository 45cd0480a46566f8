"""The one entry point: ``prune(model, method, ratio, ...)`` prunes a model in place.

    state = prune(model, "wt", 0.9)                            # 90% of prunable weights removed
    state = prune(model, "sipp", 0.95, data=ds, state=state)    # cascade: never revives a weight
    trainer callbacks=[state]                                   # masks re-applied after each step
"""
from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

from prunebench.data.base import Dataset
from prunebench.errors import UserError
from prunebench.pruning.base import PruneContext, check_ratio
from prunebench.pruning.masks import PruningState
from prunebench.pruning.registry import METHODS
from prunebench.pruning.selection import Selection
from prunebench.tolerances import RATIO_TOLERANCE


def prune(model: nn.Module, method: str, ratio: float, *, data: Dataset | None = None,
          state: PruningState | None = None, selection: Selection | None = None, seed: int = 0,
          device: torch.device | str | None = None, **options: Any) -> PruningState:
    """Prune ``model`` in place so that ``ratio`` of its prunable weights are zero; return the masks.

    ``state`` continues an earlier pruning (cascade: new masks are ANDed into the old ones, so
    ``ratio`` must be at least the current prune ratio). ``selection`` picks the prunable layers
    of a fresh state (ignored when ``state`` is given, which carries its own). ``data``: data-informed
    methods draw from its validation split only. ``device``: the model is moved there first
    (default: where it is). Remaining keyword arguments are the method's options (checked against
    its options model before any work; a bad one is a one-line UserError).
    """
    ratio = check_ratio(ratio)
    spec = METHODS.spec(method)
    opts = spec.parse_options(options)
    if device is not None:
        model.to(device)
    if state is None:
        state = PruningState.dense(model, selection)
    else:
        state.bind(model)  # a cascade keeps the layers of its state; ``selection`` does not apply
    if not state.masks:
        raise UserError("the pruning state has no prunable layers; prune a model with Conv2d/Linear layers")
    current = state.prune_ratio()
    if ratio < current - 1e-9:
        raise UserError(f"prune ratio {ratio} is below the model's current prune ratio {current:.4f}; pruned "
                        "weights are never revived, so ask for a ratio >= the current one")
    params = list(model.parameters())
    dev = torch.device(device) if device is not None else (params[0].device if params else torch.device("cpu"))
    ctx = PruneContext(data=data, device=dev, seed=int(seed), options=opts)
    if spec.data_informed:
        ctx.require_data(method)
    state.apply()  # methods score the weights the masks describe
    new_masks = spec.obj(model, state, ratio, ctx)
    state.update(new_masks)
    state.apply()
    achieved = state.prune_ratio()
    if not spec.structured and abs(achieved - ratio) > RATIO_TOLERANCE * max(ratio, 1e-12) and ratio > 0:
        warnings.warn(f"{method}: achieved prune ratio {achieved:.5f} differs from the target {ratio} by more "
                      f"than {RATIO_TOLERANCE:.1%} relative", stacklevel=2)
    return state
