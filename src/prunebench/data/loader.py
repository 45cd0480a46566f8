"""Device-resident batching: the whole split lives on the device as uint8; batches are gathered,
augmented and normalized with a few vectorized tensor ops (airbench style), no worker processes.
"""
from __future__ import annotations

from typing import Iterator

import torch
import torch.nn.functional as F

from prunebench.data.base import DataInfo, Split


def random_crop(x: torch.Tensor, padding: int, gen: torch.Generator) -> torch.Tensor:
    """Zero-pad by ``padding`` and take one random crop of the original size per image."""
    n, c, h, w = x.shape
    padded = F.pad(x, (padding,) * 4)
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=gen, device=x.device)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=gen, device=x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chan = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, chan, rows, cols]


class DeviceLoader:
    """Iterate over a split in (shuffled) mini-batches of normalized float images and int64 labels.

    Deterministic under ``seed``: the same seed gives the same order and augmentations on the same device.
    """

    def __init__(self, split: Split, info: DataInfo, batch_size: int, *, train: bool, device: torch.device | str = "cpu",
                 seed: int = 0, augment: bool = True, drop_last: bool | None = None) -> None:
        self.device = torch.device(device)
        self.x = split.x.to(self.device)
        self.y = split.y.to(self.device)
        self.info, self.batch_size, self.train = info, batch_size, train
        self.augment = augment and train
        self.drop_last = train if drop_last is None else drop_last
        std = torch.tensor(info.std, device=self.device).view(1, -1, 1, 1)
        mean = torch.tensor(info.mean, device=self.device).view(1, -1, 1, 1)
        self.scale, self.shift = 1.0 / (255.0 * std), -mean / std
        self.gen = torch.Generator(device=self.device).manual_seed(seed)
        # Horizontal flips become free: keep a mirrored copy (2x the uint8 bytes) and let the random
        # flip choose which copy each index gathers from; one index_select per batch does both.
        self.flip = self.augment and info.hflip
        if self.flip:
            self.x = torch.cat([self.x, self.x.flip(3)])
            self.y = torch.cat([self.y, self.y])
        self.n = len(split)

    def __len__(self) -> int:
        n = self.n
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = self.n
        order = torch.randperm(n, generator=self.gen, device=self.device) if self.train else None
        for b in range(len(self)):
            sl = slice(b * self.batch_size, min(n, (b + 1) * self.batch_size))
            if order is None:
                x, y = self.x[sl], self.y[sl]
            else:
                idx = order[sl]
                if self.flip:
                    idx = torch.where(torch.rand(len(idx), generator=self.gen, device=self.device) < 0.5, idx + n, idx)
                x, y = self.x.index_select(0, idx), self.y.index_select(0, idx)
            if self.augment and self.info.crop_padding:  # on uint8: a quarter of the bytes of float
                x = random_crop(x, self.info.crop_padding, self.gen)
            yield x.float().mul_(self.scale).add_(self.shift), y
