"""safetensors: the compressed model (BatchNorm kept, masks multiplied in) as a prunebench checkpoint,
which ``load_checkpoint`` rebuilds (layers resized to the stored shapes) and every prunebench command
reads; no pickle, no code in the file."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from prunebench.export.base import Source
from prunebench.export.registry import FORMATS


@FORMATS.register("safetensors", suffix=".safetensors", compressed=True, folded=False)
def write_checkpoint(model: nn.Module, source: Source, path: Path) -> Callable[[Tensor], Tensor]:
    """prunebench checkpoint of the compressed model (loads with prunebench.store.load_checkpoint)."""
    from prunebench.pruning import count_params
    from prunebench.store import load_checkpoint, save_checkpoint

    drop = ("format", "version", "has_masks", "shapes")
    meta = {k: v for k, v in source.meta.items() if k not in drop}
    meta["exported"] = {"from_params": count_params(source.model, source.state).total,
                        "params": count_params(model).total, "compressed": True}
    save_checkpoint(path, model, meta)  # no masks: the pruned channels are gone, the other zeros are in the weights
    loaded = load_checkpoint(path).model.eval()

    def run(x: Tensor) -> Tensor:
        with torch.no_grad():
            return loaded(x.cpu())

    return run
