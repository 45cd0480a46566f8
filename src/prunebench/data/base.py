"""Core data types: an image split held as one uint8 tensor, and what a model needs to know about it."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class DataInfo:
    """Static facts about a dataset: shapes, normalization and which augmentations make sense."""

    name: str
    num_classes: int
    in_channels: int
    image_size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_padding: int = 0  # pad-and-random-crop augmentation (0 = off)
    hflip: bool = False  # random horizontal flip (off for digits / text)
    classes: tuple[str, ...] = field(default=())


@dataclass
class Split:
    """One split of a dataset: images as uint8 NCHW and int64 labels, both on the same device."""

    x: torch.Tensor
    y: torch.Tensor

    def __post_init__(self) -> None:
        if self.x.dtype != torch.uint8 or self.x.ndim != 4:
            raise ValueError(f"images must be uint8 NCHW, got {self.x.dtype} {tuple(self.x.shape)}")
        if self.y.ndim != 1 or len(self.y) != len(self.x):
            raise ValueError(f"labels must be 1-D with {len(self.x)} entries, got {tuple(self.y.shape)}")
        self.y = self.y.long()

    def __len__(self) -> int:
        return len(self.x)

    def subset(self, idx: torch.Tensor | slice) -> Split:
        return Split(self.x[idx], self.y[idx])

    def to(self, device: torch.device | str) -> Split:
        return Split(self.x.to(device), self.y.to(device))

    def float_images(self) -> torch.Tensor:
        """Images as float in [0, 1] (the space corruptions and attacks work in)."""
        return self.x.float().div_(255.0)


@dataclass
class Dataset:
    """A dataset ready for training: train / val (carved from train) / test splits plus its facts."""

    info: DataInfo
    train: Split
    val: Split
    test: Split

    def normalize(self, x01: torch.Tensor) -> torch.Tensor:
        """Map [0, 1] float images to the model's input space (per-channel mean/std)."""
        mean = torch.tensor(self.info.mean, device=x01.device, dtype=x01.dtype).view(1, -1, 1, 1)
        std = torch.tensor(self.info.std, device=x01.device, dtype=x01.dtype).view(1, -1, 1, 1)
        return (x01 - mean) / std

    def summary(self) -> dict[str, object]:
        """What a report says of the data (JSON-ready): name, split sizes, image geometry, class names."""
        i = self.info
        return {"name": i.name, "train": len(self.train), "val": len(self.val), "test": len(self.test),
                "channels": i.in_channels, "image_size": list(i.image_size), "num_classes": i.num_classes,
                "classes": list(i.classes)}

    def split(self, name: str) -> Split:
        if name not in ("train", "val", "test"):
            raise ValueError(f"unknown split {name!r}")
        return getattr(self, name)
