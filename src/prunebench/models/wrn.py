"""Wide ResNets (Zagoruyko & Komodakis 2016, "Wide Residual Networks", Table 1): WRN-d-k.

A 3x3 stem with 16 channels, then 3 groups of n = (d - 4) / 6 pre-activation basic blocks
(BN-ReLU-conv3x3-BN-ReLU-[dropout]-conv3x3) with 16k/32k/64k channels, strides 1/2/2,
a final BN-ReLU, global average pooling and one linear layer. Where a block changes shape the
shortcut is a 1x1 conv applied to the block's pre-activated input, as in the authors' code.
Dropout between the convs is 0 by default (pass ``dropout=0.3`` to get the paper's variant).
"""
from __future__ import annotations

from torch import Tensor, nn

from prunebench.errors import UserError
from prunebench.models.registry import MODELS, scaled
from prunebench.models.resnet import init_weights


class PreActBlock(nn.Module):
    """Pre-activation basic block, "B(3,3)" in the paper's notation."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.relu2 = nn.ReLU()
        self.dropout: nn.Module = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.shortcut: nn.Module | None = None
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        pre = self.relu1(self.bn1(x))
        out = self.conv2(self.dropout(self.relu2(self.bn2(self.conv1(pre)))))
        # the projection sees the pre-activated input; the identity sees the raw input
        return out + (x if self.shortcut is None else self.shortcut(pre))


class WideResNet(nn.Module):
    """WRN-depth-k for small images; ``width`` further scales every hidden channel count."""

    def __init__(self, depth: int, widen: int, in_channels: int = 3, num_classes: int = 10,
                 width: float = 1.0, dropout: float = 0.0) -> None:
        super().__init__()
        if depth < 10 or (depth - 4) % 6 != 0:
            raise UserError(f"WRN depth must be 6n+4 with n >= 1, got {depth}; use e.g. 16, 22 or 28")
        if not 0.0 <= dropout < 1.0:
            raise UserError(f"WRN dropout must be in [0, 1), got {dropout}; use e.g. 0.0 or 0.3")
        n = (depth - 4) // 6
        stem = scaled(16, width)
        self.stem = nn.Conv2d(in_channels, stem, 3, padding=1, bias=False)
        groups: list[nn.Module] = []
        in_ch = stem
        for i, base in enumerate((16, 32, 64)):
            out_ch = scaled(base * widen, width)
            blocks = []
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(PreActBlock(in_ch, out_ch, stride, dropout))
                in_ch = out_ch
            groups.append(nn.Sequential(*blocks))
        self.group1, self.group2, self.group3 = groups
        self.bn = nn.BatchNorm2d(in_ch)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(in_ch, num_classes)
        init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.group3(self.group2(self.group1(self.stem(x))))
        return self.fc(self.flatten(self.pool(self.relu(self.bn(x)))))


@MODELS.register("wrn16_8", family="wrn", depth=16, widen=8)
def wrn16_8(in_channels: int = 3, num_classes: int = 10, width: float = 1.0, image_size: int = 32,
            dropout: float = 0.0) -> nn.Module:
    """WRN-16-8 (~11M parameters)."""
    return WideResNet(16, 8, in_channels, num_classes, width, dropout)


@MODELS.register("wrn28_2", family="wrn", depth=28, widen=2)
def wrn28_2(in_channels: int = 3, num_classes: int = 10, width: float = 1.0, image_size: int = 32,
            dropout: float = 0.0) -> nn.Module:
    """WRN-28-2 (~1.5M parameters)."""
    return WideResNet(28, 2, in_channels, num_classes, width, dropout)


@MODELS.register("wrn28_10", family="wrn", depth=28, widen=10)
def wrn28_10(in_channels: int = 3, num_classes: int = 10, width: float = 1.0, image_size: int = 32,
             dropout: float = 0.0) -> nn.Module:
    """WRN-28-10 (~36M parameters)."""
    return WideResNet(28, 10, in_channels, num_classes, width, dropout)
