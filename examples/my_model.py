"""A small user-defined CNN that is not in prunebench's zoo: a stem convolution, one residual block
whose middle layer is a depthwise-separable convolution (depthwise 3x3 + pointwise 1x1), a plain
expanding convolution (the layer structured methods can remove channels from: the residual add and
the depthwise convolution tie the other channels together) and a linear head.

``build`` is the factory a study config names (``factory: my_model.py:build``); it takes the
dataset geometry by name (``in_channels``, ``num_classes``), which the study passes.
"""
from __future__ import annotations

import torch
from torch import nn


class DepthwiseResNet(nn.Module):
    def __init__(self, in_channels: int = 1, num_classes: int = 10, channels: int = 16) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, channels, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(channels), nn.ReLU())
        self.block = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False),  # depthwise
            nn.BatchNorm2d(channels), nn.ReLU(),
            nn.Conv2d(channels, channels, 1, bias=False),  # pointwise
            nn.BatchNorm2d(channels))
        self.expand = nn.Sequential(nn.Conv2d(channels, 2 * channels, 3, padding=1, bias=False),
                                    nn.BatchNorm2d(2 * channels), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.head = nn.Linear(2 * channels * 16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        h = torch.relu(h + self.block(h))  # residual add
        return self.head(self.pool(self.expand(h)).flatten(1))


def build(in_channels: int = 1, num_classes: int = 10, channels: int = 16) -> nn.Module:
    """The factory: a fresh, randomly initialised model."""
    return DepthwiseResNet(in_channels, num_classes, channels)
