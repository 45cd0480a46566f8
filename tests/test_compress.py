"""compress / compression_gap / export_csr: physical savings that keep the masked model's outputs.

Real Fashion-MNIST images as inputs; models get random BN statistics so that a zeroed filter's
BN shift is nonzero (a compression that ignored it would change the outputs).
"""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from helpers import randomize_bn

from prunebench.errors import UserError
from prunebench.models import create_model
from prunebench.pruning import methods as _methods  # noqa: F401  (registration)
from prunebench.pruning.base import METHODS, PruneContext
from prunebench.pruning.compress import compress, compression_gap, export_csr, load_csr, masked_model
from prunebench.pruning.masks import PruningState


@pytest.fixture(scope="module")
def x(fmnist) -> torch.Tensor:
    return fmnist.normalize(fmnist.val.subset(slice(0, 8)).float_images())


def _outputs(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(x)


def _random_masks(state: PruningState, keep: float, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: torch.rand(m.shape, generator=g) < keep for k, m in state.masks.items()}


def test_densenet_concat_compresses_exactly(x) -> None:
    torch.manual_seed(0)
    model = randomize_bn(create_model("densenet22", in_channels=1, image_size=28)).eval()
    state = PruningState.dense(model)
    state.update(METHODS.get("ft")(model, state, 0.5, PruneContext(options={"input_shape": (1, 28, 28)})))
    small = compress(model, state, x[:1])
    assert torch.allclose(_outputs(small, x), _outputs(masked_model(model, state), x), atol=1e-5, rtol=0)
    gap = compression_gap(model, state, small, x[:1])
    assert gap["flop_gap"] == pytest.approx(0.0, abs=1e-9)
    assert gap["real_flop_ratio"] > 1.5 and gap["compressed_params"] < gap["masked_params"] + 1000


def test_original_is_untouched_and_mode_is_kept(x) -> None:
    torch.manual_seed(0)
    model = randomize_bn(create_model("resnet20", in_channels=1, image_size=28)).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    state = PruningState.dense(model)
    state.update(METHODS.get("random-filter")(model, state, 0.5, PruneContext(options={"input_shape": (1, 28, 28)})))
    small = compress(model, state, x[:1])
    assert small.training and model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()), "compress changed the input model"
    # the compressed model trains: forward + backward with real labels
    loss = nn.functional.cross_entropy(small(x), torch.zeros(len(x), dtype=torch.long))
    loss.backward()
    assert all(p.grad is not None for p in small.parameters())


def test_unstructured_masks_remove_nothing_but_stay_equal(x) -> None:
    torch.manual_seed(0)
    model = randomize_bn(create_model("vgg11_bn", in_channels=1, image_size=28, width=0.25)).eval()
    state = PruningState.dense(model)
    state.update(_random_masks(state, 0.5))
    small = compress(model, state, x[:1])
    assert sum(p.numel() for p in small.parameters()) == sum(p.numel() for p in model.parameters())
    assert torch.allclose(_outputs(small, x), _outputs(masked_model(model, state), x), atol=1e-5, rtol=0)
    gap = compression_gap(model, state, small, x[:1])
    assert gap["effective_flop_ratio"] > 1.8 and gap["real_flop_ratio"] == pytest.approx(1.0)
    assert gap["flop_gap"] > 0.8  # the masked model claims ~2x, the dense file realises none of it


def test_only_whole_groups_are_removed(x) -> None:
    """A filter zeroed in its producer only (consumer columns kept) carries BN's shift: it must stay."""
    torch.manual_seed(0)
    model = randomize_bn(create_model("vgg11_bn", in_channels=1, image_size=28, width=0.25)).eval()
    state = PruningState.dense(model)
    new = {k: m.clone() for k, m in state.masks.items()}
    new["features.0.weight"][:3] = False  # filters 0-2 of conv1 only
    new["features.4.weight"][:, 5:8] = False  # input channels 5-7 of conv2 only
    new["features.0.weight"][10] = False  # channel 10: filter and consumer columns -> removable
    new["features.4.weight"][:, 10] = False
    state.update(new)
    small = compress(model, state, x[:1])
    assert small.features[0].out_channels == model.features[0].out_channels - 1
    assert torch.allclose(_outputs(small, x), _outputs(masked_model(model, state), x), atol=1e-5, rtol=0)


def test_bad_example_input() -> None:
    model = create_model("lenet5", in_channels=1, image_size=28)
    state = PruningState.dense(model)
    with pytest.raises(UserError, match="example input"):
        compress(model, state, [1, 28, 28])
    with pytest.raises(UserError, match="cannot trace"):
        compress(model, state, torch.zeros(1, 3, 28, 28))  # wrong channel count


def test_export_csr_roundtrip_and_size(tmp_path) -> None:
    torch.manual_seed(0)
    model = create_model("lenet5", in_channels=1, image_size=28)
    state = PruningState.dense(model)
    masks = _random_masks(state, 0.1)
    masks["0.weight"] = torch.ones_like(masks["0.weight"])  # one dense layer stays dense in the file
    state.update(masks)
    path = tmp_path / "sparse.safetensors"
    info = export_csr(model, state, path, density_threshold=0.3)
    assert info["csr_layers"] == len(state.masks) - 1
    assert info["csr_bytes"] < 0.3 * info["dense_bytes"]  # 10% density: values + int32 columns ~ 20%
    want = masked_model(model, state).state_dict()
    got = load_csr(path)
    assert set(got) == set(want)
    assert all(torch.equal(got[k], want[k]) for k in want)
    # threshold 0 stores everything dense: same bytes as the dense file
    dense = export_csr(model, state, tmp_path / "dense.safetensors", density_threshold=0.0)
    assert dense["csr_layers"] == 0 and abs(dense["csr_bytes"] - dense["dense_bytes"]) < 256  # metadata only


def test_export_csr_errors(tmp_path) -> None:
    model = create_model("lenet5", in_channels=1, image_size=28)
    state = PruningState.dense(model)
    with pytest.raises(UserError, match="density_threshold"):
        export_csr(model, state, tmp_path / "a.safetensors", density_threshold=1.5)
    with pytest.raises(UserError, match="does not exist"):
        export_csr(model, state, tmp_path / "missing" / "a.safetensors")
    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(plain))
    with pytest.raises(UserError, match="not a prunebench CSR"):
        load_csr(plain)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    with pytest.raises(UserError, match="cannot read"):
        load_csr(junk)
