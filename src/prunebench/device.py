"""Which torch device a name means: ``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:N``.

Below the CLI so that the study (and any library caller) resolves devices the same way the commands do.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from prunebench.errors import UserError

if TYPE_CHECKING:
    import torch

AUTO = "auto"


def resolve_device(name: str) -> torch.device:
    """The device ``name`` means here; UserError (one line) for an unknown name or CUDA without a GPU."""
    import torch  # here, so that naming the choices (``AUTO``) does not import torch

    if name == AUTO:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r}; use cpu, cuda, cuda:N or auto") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {name!r} requested but CUDA is not available; use --device cpu")
    return dev
