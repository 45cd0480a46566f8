"""The model zoo's registry and the one call that builds a model by name.

Every factory has the signature ``f(in_channels, num_classes, width, image_size) -> nn.Module``;
``width`` multiplies every hidden layer's channel/unit count (the random-pruning study scales
width), ``image_size`` is the square input side (28 or 32; conv nets pool adaptively).
A new model is one module (here, or a plug-in named in ``$PRUNEBENCH_PLUGINS``) with one line::

    @MODELS.register("resnet20", family="resnet", depth=20)

The registry imports every module of :mod:`prunebench.models` on its first lookup.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from torch import nn

from prunebench.errors import UserError
from prunebench.registry import Registry, Spec


class ModelFactory(Protocol):
    def __call__(self, in_channels: int = 3, num_classes: int = 10, width: float = 1.0, image_size: int = 32) -> nn.Module: ...


@dataclass(frozen=True, kw_only=True)
class ModelSpec(Spec):
    """Typed metadata of a zoo model: its ``family`` (lenet, resnet, vgg, wrn, densenet, ...) and the
    architecture numbers that apply to it: ``depth`` (layers), ``widen`` (WRN width factor),
    ``growth`` (DenseNet growth rate), ``arch`` (``mlp`` or ``cnn``)."""

    family: str
    depth: int | None = None
    widen: int | None = None
    growth: int | None = None
    arch: str = "cnn"


MODELS: Registry[ModelSpec] = Registry("model", ModelSpec, packages=("prunebench.models",))


def create_model(name: str, in_channels: int = 3, num_classes: int = 10, width: float = 1.0,
                 image_size: int = 32, **kwargs: Any) -> nn.Module:
    """Build a zoo model by registry name; extra keyword arguments go to the factory."""
    factory = MODELS.get(name)
    if width <= 0:
        raise UserError(f"model width must be > 0, got {width}; use e.g. width: 1.0")
    try:
        return factory(in_channels=in_channels, num_classes=num_classes, width=width, image_size=image_size, **kwargs)
    except TypeError as e:
        raise UserError(f"bad options for model {name!r}: {e}") from None


def scaled(channels: int, width: float) -> int:
    """A channel count scaled by the width multiplier (at least 1)."""
    return max(1, int(round(channels * width)))
