"""prepare_for_inference / fold_batchnorm: the deployed copy computes what the model computes,
with the foldable BatchNorms gone, on every zoo model (parametrized over the registry) and on a
compressed one; models FX cannot trace fall back to an unfolded copy."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from helpers import randomize_bn

from prunebench.models import MODELS, create_model
from prunebench.pruning import prune
from prunebench.pruning.compress import compress
from prunebench.pruning.deploy import fold_batchnorm, prepare_for_inference


POST_ACTIVATION = ("resnet", "vgg")  # every BatchNorm follows its convolution: all must fold


@pytest.mark.parametrize("name", MODELS.names())
def test_deployed_copy_matches_every_zoo_model(name: str) -> None:
    torch.manual_seed(0)
    model = randomize_bn(create_model(name, in_channels=3, num_classes=10, image_size=32)).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(3, 3, 32, 32)
    deployed = prepare_for_inference(model)
    with torch.no_grad():
        ref, out = model(x), deployed(x)
    assert out.shape == ref.shape
    assert torch.allclose(out, ref, rtol=1e-4, atol=1e-5 * float(ref.abs().max()))
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    left = sum(isinstance(m, nn.BatchNorm2d) for m in deployed.modules())
    if name.startswith(POST_ACTIVATION) or n_bn == 0:
        assert left == 0
    else:  # pre-activation nets (wrn, densenet): BNs after a conv fold, those before one cannot
        assert 0 < left < n_bn
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in deployed.parameters() if p.dim() == 4)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # original untouched


def test_resnet_folds_every_batchnorm_and_keeps_a_compressed_model_exact(fmnist) -> None:
    torch.manual_seed(0)
    model = randomize_bn(create_model("resnet20", in_channels=1, image_size=28)).eval()
    state = prune(model, "ft", 0.5, data=fmnist)
    x = fmnist.normalize(fmnist.val.subset(slice(0, 8)).float_images())
    small = compress(model, state, x[:1])
    assert sum(p.numel() for p in small.parameters()) < 0.7 * sum(p.numel() for p in model.parameters())
    deployed = prepare_for_inference(small)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in deployed.modules())
    with torch.no_grad():
        assert torch.allclose(deployed(x), small.eval()(x), rtol=1e-4, atol=1e-4)


def test_fold_uses_running_statistics_not_the_batch() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 4, 3, bias=False), nn.BatchNorm2d(4), nn.ReLU())
    randomize_bn(net)
    folded = fold_batchnorm(net)
    conv = [m for m in folded.modules() if isinstance(m, nn.Conv2d)][0]
    bn = net[1]
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    assert torch.allclose(conv.weight, net[0].weight * scale.view(-1, 1, 1, 1))
    assert torch.allclose(conv.bias, bn.bias - bn.running_mean * scale)
    x = torch.randn(5, 2, 6, 6)
    with torch.no_grad():
        assert torch.allclose(folded(x), net.eval()(x), atol=1e-5)
    assert net[0].bias is None  # the original conv is not modified


def test_shared_modules_and_untraceable_models_are_not_folded() -> None:
    class TwoReaders(nn.Module):  # the conv output also feeds the sum: folding would change it
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.bn = nn.Conv2d(2, 2, 1), nn.BatchNorm2d(2)

        def forward(self, x):
            y = self.conv(x)
            return self.bn(y) + y

    class SharedConv(nn.Module):  # one conv module called twice, only one call feeds the BN
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.bn = nn.Conv2d(2, 2, 1), nn.BatchNorm2d(2)

        def forward(self, x):
            return self.bn(self.conv(x)) + self.conv(x * 2)

    class SharedPair(nn.Module):  # the same conv -> BN pair applied twice: must not be folded twice
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.bn = nn.Conv2d(2, 2, 1), nn.BatchNorm2d(2)

        def forward(self, x):
            return self.bn(self.conv(self.bn(self.conv(x))))

    class DataDependent(nn.Module):  # Python control flow on tensor values: FX cannot trace it
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.bn = nn.Conv2d(2, 2, 1), nn.BatchNorm2d(2)

        def forward(self, x):
            return self.bn(self.conv(x)) if x.sum() > 0 else x

    x = torch.rand(2, 2, 4, 4) + 0.1
    for cls in (TwoReaders, SharedConv, SharedPair, DataDependent):
        net = randomize_bn(cls()).eval()
        if cls is DataDependent:
            with pytest.warns(UserWarning, match="cannot trace"):
                folded = fold_batchnorm(net)
        else:
            folded = fold_batchnorm(net)
        assert any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
        with torch.no_grad():
            assert torch.allclose(folded(x), net(x), atol=1e-6)
