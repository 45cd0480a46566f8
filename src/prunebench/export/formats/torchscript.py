"""TorchScript: the compressed, BatchNorm-folded model traced on a test batch, for C++ (libtorch) or
``torch.jit.load``. The archive is TorchScript's own format; the check reloads it from disk."""
from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from prunebench.errors import UserError
from prunebench.export.base import Source
from prunebench.export.registry import FORMATS


@FORMATS.register("torchscript", suffix=".pt", compressed=True, folded=True)
def write_torchscript(model: nn.Module, source: Source, path: Path) -> Callable[[Tensor], Tensor]:
    """TorchScript archive (traced) of the compressed, BatchNorm-folded model."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            traced = torch.jit.trace(model, (source.images[:1].cpu(),), check_trace=False)
            torch.jit.save(traced, str(path))
    except Exception as e:  # noqa: BLE001
        first = " ".join(str(e).split())[:200]
        raise UserError(f"torch.jit.trace cannot trace {type(source.model).__name__} ({type(e).__name__}: {first}); "
                        "make its forward traceable or export --format safetensors") from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated in favour of torch.export
        loaded = torch.jit.load(str(path), map_location="cpu").eval()

    def run(x: Tensor) -> Tensor:
        with torch.no_grad():
            return loaded(x.cpu())

    return run
