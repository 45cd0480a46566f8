"""Device-resident batching: the whole split lives on the device as uint8; batches are gathered,
augmented and normalized with a few vectorized tensor ops (airbench style), no worker processes.
"""
from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F

from prunebench.data.base import DataInfo, Split


def random_crop(x: torch.Tensor, padding: int, gen: torch.Generator | None = None, *,
                offsets: torch.Tensor | None = None) -> torch.Tensor:
    """Zero-pad by ``padding`` and take one random crop of the original size per image.

    ``offsets`` (n, 2) in [0, 2 * padding] fixes the crop corners; otherwise they are drawn from ``gen``.
    """
    n, c, h, w = x.shape
    if offsets is None:
        offsets = torch.randint(0, 2 * padding + 1, (n, 2), generator=gen, device=x.device)
    padded = F.pad(x, (padding,) * 4)
    rows = (offsets[:, 0, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (offsets[:, 1, None] + torch.arange(w, device=x.device))[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chan = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, chan, rows, cols]


class DeviceLoader:
    """Iterate over a split in (shuffled) mini-batches of normalized float images and int64 labels.

    Deterministic under ``seed``: the same seed gives the same order and augmentations on the same device,
    whatever ``chunk_bytes`` (how much normalized float data is prepared at once) is.
    """

    def __init__(self, split: Split, info: DataInfo, batch_size: int, *, train: bool, device: torch.device | str = "cpu",
                 seed: int = 0, augment: bool = True, drop_last: bool | None = None,
                 chunk_bytes: int = 8 << 20) -> None:
        self.chunk_bytes = chunk_bytes
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
        n, bs = self.n, self.batch_size
        if self.train:  # all randomness of the epoch drawn up front: a step only takes views
            idx = torch.randperm(n, generator=self.gen, device=self.device)
            if self.flip:
                idx = torch.where(torch.rand(n, generator=self.gen, device=self.device) < 0.5, idx + n, idx)
            y_all = self.y.index_select(0, idx)
        else:
            idx, y_all = None, self.y
        crop = self.info.crop_padding if self.augment else 0
        offsets = torch.randint(0, 2 * crop + 1, (n, 2), generator=self.gen, device=self.device) if crop else None
        # Gather, crop and normalize several batches per call: a handful of ops per chunk instead of per
        # step. Chunks of a few MiB stay in the CPU's last-level cache until the steps read them (a
        # whole-epoch chunk was slower on an MLP) and bound the float copy's memory.
        per_chunk = max(1, self.chunk_bytes // (4 * bs * max(1, self.x[0:1].numel())))
        batches = len(self)
        for c0 in range(0, batches, per_chunk):
            lo, hi = c0 * bs, min(n, (c0 + per_chunk) * bs)
            x = self.x[lo:hi] if idx is None else self.x.index_select(0, idx[lo:hi])
            if crop:  # on uint8: a quarter of the bytes of float
                assert offsets is not None  # drawn above whenever crop is set
                x = random_crop(x, crop, offsets=offsets[lo:hi])
            x = x.float().mul_(self.scale).add_(self.shift)
            for b in range(c0, min(batches, c0 + per_chunk)):
                yield x[b * bs - lo : (b + 1) * bs - lo], y_all[b * bs : (b + 1) * bs]
