"""CIFAR-style VGG with batch norm (Simonyan & Zisserman 2015, configs A and D).

Feature extractor: the standard VGG-11 / VGG-16 stacks of conv3x3-BN-ReLU with five 2x2 max
pools. Head: adaptive average pooling to 1x1 and a single ``Linear(512*width, classes)`` (the
common CIFAR variant; the ImageNet 4096-4096 head would dominate the parameter count).

Choices, documented because they change parameter counts and input handling:

* Convs have no bias: each is followed by BN, whose shift makes a bias redundant.
* Max pools use ``ceil_mode=True``. On 32x32 this is identical to the usual floor mode
  (32->16->8->4->2->1); on 28x28 it gives 28->14->7->4->2->1 instead of reaching 0x0 and
  crashing at the fifth pool. The adaptive pool then makes the head size-independent.
"""
from __future__ import annotations

from torch import Tensor, nn

from prunebench.models.registry import MODELS, scaled
from prunebench.models.resnet import init_weights

# numbers are conv output channels, "M" a 2x2 max pool
_CONFIGS: dict[str, list[int | str]] = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
}


class VGG(nn.Module):
    """``features`` (conv/BN/ReLU/pool Sequential) -> avg pool 1x1 -> flatten -> linear."""

    def __init__(self, config: list[int | str], in_channels: int = 3, num_classes: int = 10,
                 width: float = 1.0) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = in_channels
        for item in config:
            if item == "M":
                layers.append(nn.MaxPool2d(2, stride=2, ceil_mode=True))
            else:
                out_ch = scaled(int(item), width)
                layers += [nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU()]
                in_ch = out_ch
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(in_ch, num_classes)
        init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.flatten(self.pool(self.features(x))))


@MODELS.register("vgg11_bn", family="vgg", depth=11)
def vgg11_bn(in_channels: int = 3, num_classes: int = 10, width: float = 1.0, image_size: int = 32) -> nn.Module:
    """VGG-11 with BN, CIFAR head (~9.2M parameters)."""
    return VGG(_CONFIGS["vgg11"], in_channels, num_classes, width)


@MODELS.register("vgg16_bn", family="vgg", depth=16)
def vgg16_bn(in_channels: int = 3, num_classes: int = 10, width: float = 1.0, image_size: int = 32) -> nn.Module:
    """VGG-16 with BN, CIFAR head (~14.7M parameters)."""
    return VGG(_CONFIGS["vgg16"], in_channels, num_classes, width)
