"""LeNet-300-100 and LeNet-5 (LeCun et al. 1998), the classic small pruning benchmarks.

LeNet-300-100 is the MLP of Han et al. (2015) / Frankle & Carbin (2019); LeNet-5 here is the
common modern variant with ReLU and max pooling and a padded first conv, so a 28x28 input keeps
the 32x32 geometry of the original (61,706 parameters for 28x28x1 and 10 classes).
Both are plain ``nn.Sequential`` stacks so pruning code can walk the layers in order.
"""
from __future__ import annotations

from torch import nn

from prunebench.errors import UserError
from prunebench.models.registry import MODELS, scaled


@MODELS.register("lenet300_100", family="lenet", arch="mlp")
def lenet300_100(in_channels: int = 3, num_classes: int = 10, width: float = 1.0,
                 image_size: int = 32) -> nn.Module:
    """MLP in -> 300 -> 100 -> classes on the flattened image (in = in_channels * image_size**2)."""
    h1, h2 = scaled(300, width), scaled(100, width)
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(in_channels * image_size * image_size, h1),
        nn.ReLU(),
        nn.Linear(h1, h2),
        nn.ReLU(),
        nn.Linear(h2, num_classes),
    )


@MODELS.register("lenet5", family="lenet", arch="cnn")
def lenet5(in_channels: int = 3, num_classes: int = 10, width: float = 1.0,
           image_size: int = 32) -> nn.Module:
    """conv6@5x5(pad 2) -> pool -> conv16@5x5 -> pool -> fc120 -> fc84 -> fc classes.

    The flatten size follows from ``image_size``: 16*5*5 for 28x28, 16*6*6 for 32x32.
    """
    side = (image_size // 2 - 4) // 2  # pad-2 conv keeps size; pool /2; valid 5x5 conv -4; pool /2
    if side < 1:
        raise UserError(f"lenet5 needs image_size >= 12, got {image_size}; use a larger input or lenet300_100")
    c1, c2 = scaled(6, width), scaled(16, width)
    f1, f2 = scaled(120, width), scaled(84, width)
    model = nn.Sequential(
        nn.Conv2d(in_channels, c1, kernel_size=5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, kernel_size=5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(c2 * side * side, f1),
        nn.ReLU(),
        nn.Linear(f1, f2),
        nn.ReLU(),
        nn.Linear(f2, num_classes),
    )
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return model
