"""Model zoo: every registered model, on MNIST-like (1x28x28) and CIFAR-like (3x32x32) inputs.

Parametrized over ``MODELS.names()``, so a model added later is tested here for free.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from prunebench.errors import UserError
from prunebench.models import MODELS, create_model

SHAPES = [(1, 28), (3, 32)]
NAMES = MODELS.names()
BIG = 5_000_000  # above this many parameters a model is tested with batch size 2
FASHION = "/usr/share/datasets/fashion-mnist"


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("name", NAMES)
def test_forward_backward_train_eval(name: str, shape: tuple[int, int]) -> None:
    c, s = shape
    torch.manual_seed(0)
    model = create_model(name, in_channels=c, num_classes=7, image_size=s)
    batch = 2 if n_params(model) > BIG else 4
    x = torch.randn(batch, c, s, s)

    model.train()
    out = model(x)
    assert out.shape == (batch, 7)
    assert torch.isfinite(out).all()
    out.square().mean().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{name}: {pname} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name}: {pname} has a non-finite gradient"
    assert any(p.grad.abs().sum() > 0 for p in model.parameters())

    model.eval()
    with torch.no_grad():
        a, b = model(x), model(x)
    assert a.shape == (batch, 7) and torch.isfinite(a).all()
    torch.testing.assert_close(a, b)  # eval mode is deterministic (BN running stats, no dropout)
    # eval output does not depend on the rest of the batch (BN uses running statistics)
    with torch.no_grad():
        torch.testing.assert_close(model(x[:1]), a[:1], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_width_scales_parameters(name: str) -> None:
    full = n_params(create_model(name, width=1.0))
    half = n_params(create_model(name, width=0.5))
    quarter = n_params(create_model(name, width=0.25))
    assert quarter < half < full
    # nearly all weights sit in hidden x hidden layers, so halving width roughly quarters them
    # (lenet300_100's input layer scales only linearly, hence the loose upper bound)
    assert half < 0.6 * full


@pytest.mark.parametrize("name", NAMES)
def test_factory_signature_and_meta(name: str) -> None:
    factory = MODELS.get(name)
    model = factory(in_channels=1, num_classes=3, width=1.0, image_size=28)
    assert isinstance(model, nn.Module)
    spec = MODELS.spec(name)
    assert isinstance(spec.family, str) and spec.family and spec.arch in ("mlp", "cnn")
    assert all(v is None or (isinstance(v, int) and v > 0) for v in (spec.depth, spec.widen, spec.growth))
    assert spec.depth is None or str(spec.depth) in name  # resnet20, vgg16_bn, wrn28_10, densenet22
    # pruning code finds layers as modules: every parameter belongs to Conv2d/Linear/BatchNorm2d
    for m in model.modules():
        if any(True for _ in m.parameters(recurse=False)):
            assert isinstance(m, (nn.Conv2d, nn.Linear, nn.BatchNorm2d)), type(m)


KNOWN = [
    # (name, in_channels, image_size, exact count) for 10 classes
    ("lenet300_100", 1, 28, 266_610),  # 784*300+300 + 300*100+100 + 100*10+10
    ("lenet5", 1, 28, 61_706),  # 156 + 2,416 + 48,120 + 10,164 + 850
    ("lenet5", 3, 32, 83_126),  # flatten 16*6*6 on 32x32
    ("resnet20", 3, 32, 272_474),  # 269,722 with option-A shortcuts + 2 projections (2,752)
    ("resnet56", 3, 32, 855_770),
    ("resnet110", 3, 32, 1_730_714),
    ("wrn28_10", 3, 32, 36_479_194),  # "36.5M" in Zagoruyko & Komodakis, Table 1
    ("wrn16_8", 3, 32, 10_961_370),  # "11.0M"
    ("wrn28_2", 3, 32, 1_467_610),
    ("vgg16_bn", 3, 32, 14_724_042),  # 14,728,266 of the bias-carrying variant minus 4,224 conv biases
]


@pytest.mark.parametrize("name,c,s,count", KNOWN, ids=[f"{k[0]}-{k[1]}x{k[2]}" for k in KNOWN])
def test_known_parameter_counts(name: str, c: int, s: int, count: int) -> None:
    assert n_params(create_model(name, in_channels=c, image_size=s)) == count


def test_resnet20_uses_projection_shortcuts() -> None:
    model = create_model("resnet20")
    one_by_one = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1)]
    assert [(m.in_channels, m.out_channels, m.stride) for m in one_by_one] == [(16, 32, (2, 2)), (32, 64, (2, 2))]
    assert 0.26e6 < n_params(model) < 0.28e6


def test_densenet22_concatenates_growth_channels() -> None:
    model = create_model("densenet22", in_channels=1, image_size=28)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    # stem + 3 blocks x 3 bottlenecks x 2 convs + 2 transitions = 21 convs, + the linear = depth 22
    assert len(convs) == 21
    # block 1: 24 -> 60 channels; transition compresses by 0.5 -> 30; block 2 -> 66 -> 33; block 3 -> 69
    transitions = [m for m in convs if m.kernel_size == (1, 1) and m.out_channels != 48]
    assert [(m.in_channels, m.out_channels) for m in transitions] == [(60, 30), (66, 33)]
    assert model.fc.in_features == 69


def test_vgg_pools_survive_28x28() -> None:
    model = create_model("vgg11_bn", in_channels=1, image_size=28).eval()
    x = torch.randn(1, 1, 28, 28)
    sizes = []
    for layer in model.features:
        x = layer(x)
        if isinstance(layer, nn.MaxPool2d):
            sizes.append(x.shape[-1])
    assert sizes == [14, 7, 4, 2, 1]


def test_lenet_flatten_follows_image_size() -> None:
    assert create_model("lenet5", image_size=28)[7].in_features == 16 * 5 * 5
    assert create_model("lenet5", image_size=32)[7].in_features == 16 * 6 * 6
    assert create_model("lenet300_100", in_channels=3, image_size=32)[1].in_features == 3 * 32 * 32


def test_bad_names_and_options_are_user_errors() -> None:
    with pytest.raises(UserError, match="unknown model 'resnet21'.*did you mean"):
        create_model("resnet21")
    with pytest.raises(UserError, match="width"):
        create_model("resnet20", width=0)
    with pytest.raises(UserError, match="bad options"):
        create_model("resnet20", depth=3)
    with pytest.raises(UserError, match="image_size"):
        create_model("lenet5", image_size=8)
    with pytest.raises(UserError, match="dropout"):
        create_model("wrn28_2", dropout=1.5)


def test_wrn_dropout_option() -> None:
    model = create_model("wrn28_2", dropout=0.3, width=0.25)
    assert sum(isinstance(m, nn.Dropout) and m.p == 0.3 for m in model.modules()) == 12
    assert not any(isinstance(m, nn.Dropout) for m in create_model("wrn28_2", width=0.25).modules())


@pytest.mark.parametrize("name", NAMES)
def test_torch_pruning_can_compress(name: str) -> None:
    """The dependency graph resolves every coupling (residual adds, concatenations, projections)."""
    tp = pytest.importorskip("torch_pruning")
    torch.manual_seed(0)
    model = create_model(name, width=0.25).eval()
    x = torch.randn(2, 3, 32, 32)
    before = n_params(model)
    head = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pruner = tp.pruner.MagnitudePruner(model, x, importance=tp.importance.MagnitudeImportance(p=1),
                                           pruning_ratio=0.5, ignored_layers=[head])
        pruner.step()
    out = model(x)
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    assert n_params(model) < 0.55 * before


@pytest.mark.parametrize("name,width", [("lenet300_100", 0.5), ("lenet5", 0.5), ("resnet20", 0.25)])
def test_small_models_fit_real_fashion_mnist_batch(name: str, width: float) -> None:
    """A few Adam steps on 32 real Fashion-MNIST images halve the loss: the gradients are right."""
    from prunebench.data.idx import read_idx

    images = read_idx(f"{FASHION}/t10k-images-idx3-ubyte.gz")[:32]
    labels = read_idx(f"{FASHION}/t10k-labels-idx1-ubyte.gz")[:32]
    x = torch.from_numpy(np.array(images)).float().div(255).unsqueeze(1)
    y = torch.from_numpy(labels.astype(np.int64))
    torch.manual_seed(0)
    model = create_model(name, in_channels=1, image_size=28, width=width).train()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses
