"""Masks, layer selection and allocation: exactness, enforcement, serialisation, density schemes."""
from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn.utils import prune as tprune

from prunebench.errors import UserError
from prunebench.models import create_model
from prunebench.pruning import PruningState, Selection, prune
from prunebench.pruning.allocation import (
    DENSITY_SCHEMES, erk_densities, global_topk, random_masks, uniform_per_layer, uniform_plus_densities, waterfill,
)
from prunebench.pruning.masks import MaskViolation
from prunebench.pruning.selection import prunable_layers


def small_net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, groups=4), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten(),
        nn.Linear(128, 32), nn.ReLU(), nn.Linear(32, 10),
    )


# ---------------------------------------------------------------------------------------- selection

def test_selection_policy() -> None:
    net = small_net()
    assert list(prunable_layers(net)) == ["0", "3", "7", "9"]
    assert list(Selection(keep_first_dense=True, keep_last_dense=True).layers(net)) == ["3", "7"]
    assert list(Selection(exclude_types=(nn.Linear,)).layers(net)) == ["0", "3"]
    assert list(Selection(exclude_types=("Conv2d",)).layers(net)) == ["7", "9"]
    assert list(Selection(exclude_names=("7",)).layers(net)) == ["0", "3", "9"]
    assert list(Selection().for_structured().layers(net)) == ["0", "7", "9"]  # grouped conv out
    resnet = create_model("resnet20", in_channels=1)
    no_short = Selection(exclude_names=("*.shortcut.*",)).layers(resnet)
    assert not any("shortcut" in n for n in no_short) and "layer2.0.conv1" in no_short
    assert all(n.startswith("layer3") is False for n in Selection(exclude_names=("layer3",)).layers(resnet))
    sel = Selection(exclude_names=("fc",), exclude_types=(nn.Linear,), keep_last_dense=True)
    assert Selection.from_dict(sel.to_dict()).layers(resnet).keys() == sel.layers(resnet).keys()
    with pytest.raises(UserError):
        Selection.from_dict({"exclude": ["fc"]})


def test_no_prunable_layers_is_user_error() -> None:
    with pytest.raises(UserError, match="no prunable layers"):
        PruningState.dense(nn.Sequential(nn.ReLU(), nn.BatchNorm1d(3)))
    with pytest.raises(UserError, match="no prunable layers"):
        prune(small_net(), "wt", 0.5, selection=Selection(exclude_types=("Conv2d", "Linear")))


# ---------------------------------------------------------------------------------------- state

def test_state_bookkeeping_and_update_never_revives() -> None:
    net = small_net()
    st = PruningState.dense(net)
    assert st.total == sum(p.numel() for p in Selection().weights(net).values())
    assert st.density() == 1.0 and st.prune_ratio() == 0.0
    all_params = sum(p.numel() for p in net.parameters())
    g = torch.Generator().manual_seed(0)
    first = {k: torch.rand(m.shape, generator=g) > 0.5 for k, m in st.masks.items()}
    st.update(first).apply()
    second = {k: torch.rand(m.shape, generator=g) > 0.5 for k, m in st.masks.items()}
    st.update(second).apply()
    for k, m in st.masks.items():
        assert torch.equal(m, first[k] & second[k])  # AND: nothing pruned comes back
        assert torch.all(st.weights()[k][~m] == 0)
    assert st.kept == sum(int(m.sum()) for m in st.masks.values())
    assert st.nonzero_params == all_params - (st.total - st.kept)
    assert st.layer_densities()["9.weight"] == pytest.approx(float(st.masks["9.weight"].float().mean()))
    st.verify()
    with torch.no_grad():
        net[7].weight[~st.masks["7.weight"]] = 1.0
    with pytest.raises(MaskViolation, match="7.weight"):
        st.verify()
    st.apply()
    st.verify()


def test_clone_bind_and_handed_out_masks_are_not_mutated() -> None:
    import copy

    net = small_net()
    st = prune(net, "wt", 0.5)
    before = dict(st.masks)  # no clone: update must not change these tensors in place
    snapshot = {k: m.clone() for k, m in st.masks.items()}
    twin = copy.deepcopy(net)
    other = st.clone(twin)
    prune(net, "wt", 0.8, state=st)
    assert all(torch.equal(before[k], snapshot[k]) for k in snapshot)
    assert other.prune_ratio() == pytest.approx(0.5, rel=1e-3) and st.prune_ratio() == pytest.approx(0.8, rel=1e-3)
    with torch.no_grad():
        for p in twin.parameters():
            p.fill_(1.0)
    other.apply()  # bound to the twin: zeroes the twin's pruned weights, not the original's
    assert all(torch.equal(other.weights()[k] != 0, other.masks[k]) for k in other.masks)
    assert other.weights()["0.weight"] is twin[0].weight


def test_apply_follows_dtype_changes() -> None:
    net = small_net()
    st = prune(net, "random", 0.7, seed=1)
    net.double()  # parameters change dtype in place: the cached float masks must follow
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    st.apply()
    st.verify()
    assert net[0].weight.dtype == torch.float64


def test_masks_stay_exact_under_sgd_momentum_weight_decay(fmnist) -> None:
    """Momentum + weight decay regrow pruned weights unless the masks are re-applied each step."""
    x = fmnist.normalize(fmnist.train.x[:64].float() / 255)
    y = fmnist.train.y[:64]

    def train(enforce: bool) -> tuple[nn.Module, PruningState]:
        torch.manual_seed(0)
        net = create_model("lenet5", in_channels=1, image_size=28)
        st = prune(net, "wt", 0.8)
        opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
        for step in range(6):
            opt.zero_grad()
            nn.functional.cross_entropy(net(x[step * 8:(step + 1) * 8 + 16]), y[step * 8:(step + 1) * 8 + 16]).backward()
            opt.step()
            if enforce:
                st.on_step(step)
        return net, st

    net, st = train(enforce=True)
    st.verify()
    assert st.prune_ratio() == pytest.approx(0.8, rel=1e-4)
    for k, p in st.weights().items():
        assert torch.count_nonzero(p[~st.masks[k]]) == 0
    net, st = train(enforce=False)
    with pytest.raises(MaskViolation):
        st.verify()


def test_safetensors_round_trip(tmp_path) -> None:
    net = create_model("resnet20", in_channels=1)
    st = prune(net, "random-erk", 0.9, seed=3)
    tensors = {**{k: v.contiguous() for k, v in net.state_dict().items()}, **st.state_dict()}
    assert all(v.dtype == torch.uint8 for k, v in st.state_dict().items())
    save_file(tensors, tmp_path / "ckpt.safetensors")
    loaded = load_file(tmp_path / "ckpt.safetensors")
    fresh = create_model("resnet20", in_channels=1)
    fresh.load_state_dict({k: v for k, v in loaded.items() if not k.startswith("mask/")})
    st2 = PruningState.from_state_dict(fresh, loaded, Selection())
    assert list(st2.masks) == list(st.masks)
    assert all(torch.equal(st2.masks[k], st.masks[k]) for k in st.masks)
    st2.verify()
    assert st2.prune_ratio() == st.prune_ratio()
    with pytest.raises(UserError):
        PruningState.from_state_dict(fresh, {k: v for k, v in loaded.items() if not k.startswith("mask/")})
    with pytest.raises(UserError, match="shape"):
        PruningState.from_state_dict(create_model("resnet20", in_channels=1, width=0.5), loaded)


def test_torch_prune_export_import_round_trip() -> None:
    torch.manual_seed(0)
    net = small_net().eval()
    st = prune(net, "wt", 0.75)
    x = torch.randn(4, 1, 12, 12)
    want = net(x)
    st.to_torch_prune(net)
    assert hasattr(net[3], "weight_orig") and torch.equal(net[3].weight_mask.bool(), st.masks["3.weight"])
    with torch.no_grad():
        net[3].weight_orig.add_(1.0)  # the hook must still zero the pruned entries
    st.apply()  # our state still points at the original parameter (now weight_orig)
    with pytest.raises(UserError, match="from_torch_prune"):
        PruningState.dense(net)
    st2 = PruningState.from_torch_prune(net)
    assert not hasattr(net[3], "weight_orig") and isinstance(net[3].weight, nn.Parameter)
    assert all(torch.equal(st2.masks[k], st.masks[k]) for k in st.masks)
    st2.verify()
    assert not torch.allclose(net(x), want)  # the +1 shift on kept weights survives, pruned stay 0
    assert st2.prune_ratio() == pytest.approx(0.75, rel=1e-3)


def test_wt_equals_torch_global_unstructured() -> None:
    torch.manual_seed(0)
    ours, ref = create_model("resnet20", in_channels=1), create_model("resnet20", in_channels=1)
    ref.load_state_dict(ours.state_dict())
    st = prune(ours, "wt", 0.9)
    params = [(ref.get_submodule(k.rsplit(".", 1)[0]), "weight") for k in st.masks]
    tprune.global_unstructured(params, pruning_method=tprune.L1Unstructured, amount=0.9)
    for (mod, _), k in zip(params, st.masks):
        assert torch.equal(mod.weight_mask.bool(), st.masks[k]), k  # continuous weights: no ties


# ---------------------------------------------------------------------------------------- allocation

def test_global_topk_exact_deterministic_and_never_revives() -> None:
    g = torch.Generator().manual_seed(0)
    current = {"a": torch.rand(10, 7, generator=g) > 0.3, "b": torch.rand(33, generator=g) > 0.3}
    scores = {"a": torch.rand(10, 7, generator=g), "b": torch.rand(33, generator=g)}
    scores["a"][~current["a"]] = 100.0  # pruned weights with huge scores stay pruned
    total = 103
    masks = global_topk(scores, current, 0.6)
    assert sum(int(m.sum()) for m in masks.values()) == round(0.4 * total)
    assert all(not (masks[k] & ~current[k]).any() for k in masks)
    assert torch.equal(global_topk(scores, current, 0.0)["a"], current["a"])  # cannot go below current
    ties = {"a": torch.ones(10, 7), "b": torch.ones(33)}
    dense = {"a": torch.ones(10, 7, dtype=torch.bool), "b": torch.ones(33, dtype=torch.bool)}
    t = global_topk(ties, dense, 0.5)
    assert int(t["a"].sum()) == 52 and int(t["b"].sum()) == 0  # earlier entries win ties
    assert bool(t["a"].reshape(-1)[:52].all())
    nan = {"a": torch.full((10, 7), float("nan")), "b": torch.rand(33, generator=g)}
    assert int(global_topk(nan, dense, 0.7)["b"].sum()) == 31  # NaN ranks lowest


def test_uniform_per_layer_and_waterfill() -> None:
    assert waterfill([10, 10, 10], [2, 10, 10], 15) == [2, 7, 6]
    assert sum(waterfill([3.3, 1.7, 0.0, 5.0], [4, 4, 4, 9], 11)) == 11
    assert waterfill([1, 1], [3, 3], 100) == [3, 3]
    g = torch.Generator().manual_seed(1)
    current = {"a": torch.ones(100, dtype=torch.bool), "b": torch.rand(200, generator=g) > 0.8}
    scores = {"a": torch.rand(100, generator=g), "b": torch.rand(200, generator=g)}
    m = uniform_per_layer(scores, current, 0.7)
    assert int(m["a"].sum() + m["b"].sum()) == 90
    assert not (m["b"] & ~current["b"]).any()
    assert int(m["b"].sum()) == int(current["b"].sum()) or int(m["a"].sum()) == 30


def _shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(p.shape) for k, p in Selection().weights(model).items()}


def test_erk_worked_check_resnet20() -> None:
    """methods.md: CIFAR ResNet-20 with 1x1 conv shortcuts at d = 0.05."""
    shapes = _shapes(create_model("resnet20"))
    d = erk_densities(shapes, 0.05)
    assert d["stem.0.weight"] == pytest.approx(0.475, abs=0.005)
    assert d["fc.weight"] == pytest.approx(0.949, abs=0.005)
    assert d["layer2.0.shortcut.0.weight"] == pytest.approx(0.80, abs=0.01)
    assert d["layer3.2.conv2.weight"] == pytest.approx(0.03, abs=0.003)


@pytest.mark.parametrize("scheme", sorted(DENSITY_SCHEMES))
@pytest.mark.parametrize("density", [0.02, 0.3, 0.8])
def test_density_schemes_hit_the_overall_density(scheme: str, density: float) -> None:
    shapes = _shapes(create_model("resnet20"))
    d = DENSITY_SCHEMES[scheme](shapes, density)
    n = {k: math.prod(s) for k, s in shapes.items()}
    assert sum(d[k] * n[k] for k in n) / sum(n.values()) == pytest.approx(density, rel=1e-9)
    assert all(0.0 <= v <= 1.0 + 1e-12 for v in d.values())


def test_uniform_plus_and_erk_plus_structure() -> None:
    shapes = _shapes(create_model("resnet20"))
    up = uniform_plus_densities(shapes, 0.05)
    assert up["stem.0.weight"] == 1.0 and up["fc.weight"] == pytest.approx(0.2)
    assert up["layer1.0.conv1.weight"] == up["layer3.2.conv2.weight"] < 0.05
    assert DENSITY_SCHEMES["erk-plus"](shapes, 0.05)["fc.weight"] == 1.0
    with pytest.raises(UserError):
        uniform_plus_densities(shapes, 0.0001)


def test_random_masks_exact_and_bernoulli() -> None:
    shapes = _shapes(create_model("resnet20"))
    current = {k: torch.ones(s, dtype=torch.bool) for k, s in shapes.items()}
    dens = erk_densities(shapes, 0.1)
    exact = random_masks(dens, current, exact=True, generator=torch.Generator().manual_seed(0))
    for k, m in exact.items():
        assert int(m.sum()) == pytest.approx(dens[k] * m.numel(), abs=1)
    assert sum(int(m.sum()) for m in exact.values()) == round(0.1 * sum(m.numel() for m in current.values()))
    again = random_masks(dens, current, exact=True, generator=torch.Generator().manual_seed(0))
    assert all(torch.equal(exact[k], again[k]) for k in exact)
    bern = random_masks(dens, current, exact=False, generator=torch.Generator().manual_seed(0))
    realised = sum(int(m.sum()) for m in bern.values()) / sum(m.numel() for m in bern.values())
    assert realised == pytest.approx(0.1, rel=0.05) and realised != 0.1
