"""CIFAR-style ResNets (He et al. 2016, "Deep Residual Learning", Sec. 4.2): depth = 6n + 2.

A 3x3 stem with 16 channels, then 3 stages of n basic blocks with 16/32/64 channels (the first
block of stages 2 and 3 has stride 2), global average pooling and one linear layer.

Deviation from the paper: where a block changes shape, the shortcut is a 1x1 conv + BN
projection (the paper's "option B"), not the parameter-free zero-padding "option A". A
zero-padded identity cannot be expressed as a module, so structured pruners (torch-pruning's
dependency graph) could not couple the channels of the two branches. This adds ~2.8k
parameters to resnet20 (272,474 instead of 269,722 for 10 classes).

:func:`init_weights` is the shared initialisation of the conv nets in the zoo.
"""
from __future__ import annotations

from torch import Tensor, nn

from prunebench.errors import UserError
from prunebench.models.registry import MODELS, scaled


def init_weights(model: nn.Module) -> nn.Module:
    """Kaiming-normal convs (He et al. 2015, fan_out, ReLU gain), BN to identity, zero biases."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.zeros_(m.bias)
    return model


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN plus shortcut, then ReLU (He et al. 2016, Fig. 2 left)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.relu2 = nn.ReLU()
        if stride != 1 or in_ch != out_ch:
            self.shortcut: nn.Module = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), nn.BatchNorm2d(out_ch)
            )
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """Stem -> 3 stages of ``blocks_per_stage`` basic blocks -> global avg pool -> linear."""

    def __init__(self, blocks_per_stage: int, in_channels: int = 3, num_classes: int = 10,
                 width: float = 1.0) -> None:
        super().__init__()
        widths = [scaled(c, width) for c in (16, 32, 64)]
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(),
        )
        stages: list[nn.Module] = []
        in_ch = widths[0]
        for i, out_ch in enumerate(widths):
            blocks = []
            for j in range(blocks_per_stage):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(BasicBlock(in_ch, out_ch, stride))
                in_ch = out_ch
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(in_ch, num_classes)
        init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return self.fc(self.flatten(self.pool(x)))


def cifar_resnet(depth: int, in_channels: int = 3, num_classes: int = 10, width: float = 1.0,
                 image_size: int = 32) -> CifarResNet:
    """Build a CIFAR ResNet of any depth 6n+2 (20, 32, 44, 56, 110, 1202, ...)."""
    if depth < 8 or (depth - 2) % 6 != 0:
        raise UserError(f"CIFAR ResNet depth must be 6n+2 with n >= 1, got {depth}; use e.g. 20, 32, 56 or 110")
    del image_size  # global average pooling makes the network input-size agnostic
    return CifarResNet((depth - 2) // 6, in_channels, num_classes, width)


@MODELS.register("resnet20", family="resnet", depth=20)
def resnet20(in_channels: int = 3, num_classes: int = 10, width: float = 1.0, image_size: int = 32) -> nn.Module:
    """ResNet-20: 3 basic blocks per stage (~0.27M parameters)."""
    return cifar_resnet(20, in_channels, num_classes, width, image_size)


@MODELS.register("resnet32", family="resnet", depth=32)
def resnet32(in_channels: int = 3, num_classes: int = 10, width: float = 1.0, image_size: int = 32) -> nn.Module:
    """ResNet-32: 5 basic blocks per stage (~0.47M parameters)."""
    return cifar_resnet(32, in_channels, num_classes, width, image_size)


@MODELS.register("resnet56", family="resnet", depth=56)
def resnet56(in_channels: int = 3, num_classes: int = 10, width: float = 1.0, image_size: int = 32) -> nn.Module:
    """ResNet-56: 9 basic blocks per stage (~0.86M parameters)."""
    return cifar_resnet(56, in_channels, num_classes, width, image_size)


@MODELS.register("resnet110", family="resnet", depth=110)
def resnet110(in_channels: int = 3, num_classes: int = 10, width: float = 1.0, image_size: int = 32) -> nn.Module:
    """ResNet-110: 18 basic blocks per stage (~1.7M parameters)."""
    return cifar_resnet(110, in_channels, num_classes, width, image_size)
