"""CSR: the masked model with its sparse layers (density < 30%) stored as CSR in a safetensors file
(:func:`prunebench.pruning.compress.export_csr`); the storage format for unstructured sparsity,
read back with :func:`~prunebench.pruning.compress.load_csr`."""
from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from prunebench.errors import UserError
from prunebench.export.base import Source
from prunebench.export.registry import FORMATS


@FORMATS.register("csr", suffix=".safetensors", compressed=False, folded=False)
def write_csr(model: nn.Module, source: Source, path: Path) -> Callable[[Tensor], Tensor]:
    """Sparse layers as CSR (crow/col indices + values) in safetensors, the rest dense."""
    from prunebench.pruning.compress import export_csr, load_csr

    if source.state is None:
        raise UserError("the checkpoint is dense: CSR stores pruned weights, prune it first "
                        "(prunebench prune) or export --format safetensors")
    export_csr(source.model, source.state, path)
    loaded = copy.deepcopy(source.model).cpu().eval()
    loaded.load_state_dict(load_csr(path))

    def run(x: Tensor) -> Tensor:
        with torch.no_grad():
            return loaded(x.cpu())

    return run
