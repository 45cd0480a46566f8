"""The CORRUPTIONS registry and the public entry point :func:`corrupt`.

A corruption is ``f(x, severity, gen) -> Tensor`` on a batch ``x`` of float images (N, C, H, W)
in [0, 1] (C = 1 or 3, H, W >= 8, CPU or CUDA), severity 1..5 and a ``torch.Generator``; it
returns a tensor of the same shape, dtype and device, clipped to [0, 1], and is deterministic given
the generator's state. Definitions and constants: Hendrycks & Dietterich (ICLR 2019), CIFAR-10-C
generation script (``make_cifar_c.py``), summarized in shared/reference/evaluation.md section 1.

Each corruption registers a :class:`CorruptionSpec`: ``family`` (noise / blur / weather / digital)
and ``benchmark`` (True for the 15 corruptions of the CIFAR-10-C benchmark, False for the 4
held-out ones). The registry loads itself on first lookup (every module of this package, then the
plug-ins of ``$PRUNEBENCH_PLUGINS``).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch

from prunebench.errors import UserError
from prunebench.registry import Registry, Spec

SEVERITIES = (1, 2, 3, 4, 5)
MIN_SIZE = 8

# Display / reporting order, as in the CIFAR-10-C paper (benchmark ones first).
ORDER = (
    "gaussian_noise", "shot_noise", "impulse_noise",
    "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
    "snow", "frost", "fog",
    "brightness", "contrast", "elastic_transform", "pixelate", "jpeg_compression",
    "speckle_noise", "gaussian_blur", "spatter", "saturate",
)  # fmt: skip


class Corruption(Protocol):
    def __call__(self, x: torch.Tensor, severity: int, gen: torch.Generator) -> torch.Tensor: ...


@dataclass(frozen=True, kw_only=True)
class CorruptionSpec(Spec):
    """Typed metadata of a corruption: its ``family`` and whether it is one of the ``benchmark``
    corruptions (False: held out)."""

    family: str
    benchmark: bool = False


CORRUPTIONS: Registry[CorruptionSpec] = Registry("corruption", CorruptionSpec, packages=("prunebench.evaluation.corruptions",))


def register(name: str, family: str, benchmark: bool) -> Callable[[Corruption], Corruption]:
    """``@register("gaussian_noise", "noise", benchmark=True)``: a registry entry with its metadata."""
    return CORRUPTIONS.register(name, family=family, benchmark=benchmark)


def benchmark_names() -> list[str]:
    """The 15 benchmark corruptions, in :data:`ORDER`."""
    return [n for n in ordered_names() if CORRUPTIONS.spec(n).benchmark]


def heldout_names() -> list[str]:
    """The 4 held-out corruptions (speckle_noise, gaussian_blur, spatter, saturate), in :data:`ORDER`."""
    return [n for n in ordered_names() if not CORRUPTIONS.spec(n).benchmark]


def ordered_names() -> list[str]:
    """All registered corruptions, the known ones in :data:`ORDER`, any others after them by name."""
    names = CORRUPTIONS.names()
    return [n for n in ORDER if n in names] + [n for n in names if n not in ORDER]


def check_severity(severity: object) -> int:
    if isinstance(severity, bool) or not isinstance(severity, int) or severity not in SEVERITIES:
        raise UserError(f"corruption severity must be an integer 1..5, got {severity!r}; pick one of 1, 2, 3, 4, 5")
    return severity


def check_images(x: object) -> torch.Tensor:
    """Validate a float batch (N, C, H, W), C in {1, 3}, H, W >= 8; a UserError names the fix."""
    if not isinstance(x, torch.Tensor):
        raise UserError(f"corruptions take a torch.Tensor of images, got {type(x).__name__}; convert with torch.as_tensor")
    if x.ndim != 4:
        raise UserError(
            f"corruptions take a batch of images shaped (N, C, H, W), got shape {tuple(x.shape)}; "
            "add a batch dimension with x.unsqueeze(0) or move channels first with x.permute(0, 3, 1, 2)"
        )
    if x.shape[1] not in (1, 3):
        raise UserError(
            f"corruptions take 1 (grey) or 3 (RGB) channels, got {x.shape[1]} in shape {tuple(x.shape)}; "
            "pass channels first (N, C, H, W) and drop any alpha channel"
        )
    if min(x.shape[-2:]) < MIN_SIZE:
        raise UserError(f"images must be at least {MIN_SIZE}x{MIN_SIZE} pixels, got {tuple(x.shape[-2:])}; upsample them first")
    if not x.is_floating_point():
        raise UserError(f"corruptions take float images in [0, 1], got dtype {x.dtype}; use x.float() / 255 for uint8 images")
    return x


def corrupt(x: torch.Tensor, name: str, severity: int, seed: int = 0) -> torch.Tensor:
    """Apply corruption ``name`` at ``severity`` (1..5) to float images (N, C, H, W) in [0, 1].

    Random draws come from a CPU ``torch.Generator`` seeded with ``seed``, so the same call gives
    the same images, on CPU or CUDA. Unknown names, bad severities and unusable shapes raise
    :class:`~prunebench.errors.UserError`.
    """
    fn = CORRUPTIONS.get(name)
    check_severity(severity)
    check_images(x)
    gen = torch.Generator(device="cpu")
    gen.manual_seed(int(seed))
    if len(x) == 0:
        return x.clone()
    out = fn(x, severity, gen)
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device, name
    return out
