"""DenseNet-BC for small images (Huang et al. 2017, "Densely Connected Convolutional Networks").

Depth d gives n = (d - 4) / 6 bottleneck layers per dense block (each layer is two convs; the
stem, two transitions and the classifier make the other 4). A 3x3 stem with 2*growth channels,
3 dense blocks, transitions BN-ReLU-conv1x1-avgpool2 compressing channels by theta = 0.5, then
BN-ReLU, global average pooling and one linear layer.

Each bottleneck layer (BN-ReLU-conv1x1(4*growth)-BN-ReLU-conv3x3(growth)) returns
``torch.cat([x, new], dim=1)``: channel concatenation is the structure structured pruners must
map back onto the earlier layers' channels, which is why this model is in the zoo.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from prunebench.errors import UserError
from prunebench.models.registry import MODELS, scaled
from prunebench.models.resnet import init_weights


class Bottleneck(nn.Module):
    """BN-ReLU-conv1x1 -> BN-ReLU-conv3x3, output concatenated after the input (Eq. 2)."""

    def __init__(self, in_ch: int, growth: int) -> None:
        super().__init__()
        inner = 4 * growth
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(in_ch, inner, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(inner)
        self.relu2 = nn.ReLU()
        self.conv2 = nn.Conv2d(inner, growth, 3, padding=1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        new = self.conv2(self.relu2(self.bn2(self.conv1(self.relu1(self.bn1(x))))))
        return torch.cat([x, new], dim=1)


class Transition(nn.Module):
    """BN-ReLU-conv1x1-avgpool2 between dense blocks (halves size, compresses channels)."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(in_ch)
        self.relu = nn.ReLU()
        self.conv = nn.Conv2d(in_ch, out_ch, 1, bias=False)
        self.pool = nn.AvgPool2d(2)

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(self.conv(self.relu(self.bn(x))))


class DenseNetBC(nn.Module):
    """DenseNet-BC of depth 6n+4 with the given growth rate and compression."""

    def __init__(self, depth: int, growth: int = 12, compression: float = 0.5, in_channels: int = 3,
                 num_classes: int = 10, width: float = 1.0) -> None:
        super().__init__()
        if depth < 10 or (depth - 4) % 6 != 0:
            raise UserError(f"DenseNet-BC depth must be 6n+4 with n >= 1, got {depth}; use e.g. 22, 40 or 100")
        n = (depth - 4) // 6
        growth = scaled(growth, width)
        ch = 2 * growth
        self.stem = nn.Conv2d(in_channels, ch, 3, padding=1, bias=False)
        stages: list[nn.Module] = []
        for block in range(3):
            for _ in range(n):
                stages.append(Bottleneck(ch, growth))
                ch += growth
            if block < 2:
                out_ch = max(1, int(ch * compression))  # floor(theta * m), Sec. 3 "Compression"
                stages.append(Transition(ch, out_ch))
                ch = out_ch
        self.features = nn.Sequential(*stages)
        self.bn = nn.BatchNorm2d(ch)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(ch, num_classes)
        init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn(self.features(self.stem(x))))
        return self.fc(self.flatten(self.pool(x)))


@MODELS.register("densenet22", family="densenet", depth=22, growth=12)
def densenet22(in_channels: int = 3, num_classes: int = 10, width: float = 1.0, image_size: int = 32) -> nn.Module:
    """DenseNet-BC-22, growth 12, compression 0.5: 3 bottleneck layers per block (~72k parameters)."""
    return DenseNetBC(22, 12, 0.5, in_channels, num_classes, width)
