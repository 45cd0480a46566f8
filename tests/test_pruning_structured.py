"""Structured methods (FT, PFP, random-filter) and the channel-group machinery behind them.

Every structured method in ``METHODS`` is run on LeNet-5, ResNet-20, VGG-11-BN (width 0.25 for
speed on a 2-core box) and a user model with a residual add and a ``torch.cat``, on real
Fashion-MNIST (PFP draws its batch from the validation split). Models get random BatchNorm
statistics and affine parameters so that BN shifts of zeroed filters are nonzero (the case in
which a careless compression changes the output).
"""
from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

from helpers import randomize_bn

from prunebench.errors import UserError
from prunebench.models import create_model
from prunebench.pruning import methods as _methods  # noqa: F401  (registration)
from prunebench.pruning.base import METHODS, PruneContext
from prunebench.pruning.compress import compress, compression_gap, masked_model
from prunebench.pruning.masks import PruningState
from prunebench.pruning.sensitivity import channel_sensitivity, sensitivity_inputs
from prunebench.pruning.structured import analyse

STRUCTURED = [n for n in METHODS.names() if METHODS.meta(n).get("structured")]
PFP_OPTIONS = {"num_samples": 8, "batch_size": 8}  # |S| from the formula is ~150 images: too slow for a unit test


class AddCat(nn.Module):
    """A user model: stem, a residual add, a two-branch torch.cat, a strided conv, a linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 16, 3, padding=1, bias=False)
        self.bn0 = nn.BatchNorm2d(16)
        self.res = nn.Conv2d(16, 16, 3, padding=1, bias=False)
        self.bn_res = nn.BatchNorm2d(16)
        self.left = nn.Conv2d(16, 12, 3, padding=1)
        self.right = nn.Conv2d(16, 20, 1)
        self.bn_cat = nn.BatchNorm2d(32)
        self.down = nn.Conv2d(32, 24, 3, stride=2)
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.fc1 = nn.Linear(96, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn0(self.stem(x)))
        x = torch.relu(x + self.bn_res(self.res(x)))
        y = torch.cat([torch.relu(self.left(x)), torch.relu(self.right(x))], dim=1)
        y = torch.relu(self.down(torch.relu(self.bn_cat(y))))
        return self.fc2(torch.relu(self.fc1(torch.flatten(self.pool(y), 1))))


BUILDERS = {
    "lenet5": lambda: create_model("lenet5", in_channels=1, image_size=28),
    "resnet20": lambda: create_model("resnet20", in_channels=1, image_size=28),
    "vgg11_bn": lambda: create_model("vgg11_bn", in_channels=1, image_size=28, width=0.25),
    "addcat": AddCat,
}


@functools.lru_cache(maxsize=None)
def _model(name: str) -> nn.Module:
    torch.manual_seed(0)
    return randomize_bn(BUILDERS[name]()).eval()


def _ctx(data, method: str, seed: int = 0) -> PruneContext:
    return PruneContext(data=data, seed=seed, options=dict(PFP_OPTIONS) if method == "pfp" else {})


@pytest.fixture(scope="module")
def pruned(fmnist):
    """(method, model, ratio) -> (model, state): one pruning run per combination, shared by tests."""
    cache: dict = {}

    def get(method: str, name: str, ratio: float = 0.5):
        key = (method, name, ratio)
        if key not in cache:
            model = _model(name)
            state = PruningState.dense(model)
            state.update(METHODS.get(method)(model, state, ratio, _ctx(fmnist, method)))
            cache[key] = (model, state)
        return cache[key]

    return get


def _images(data, n: int = 16) -> torch.Tensor:
    return data.normalize(data.val.subset(slice(0, n)).float_images())


@pytest.mark.parametrize("name", list(BUILDERS))
@pytest.mark.parametrize("method", STRUCTURED)
def test_hits_target_ratio_and_keeps_classes(pruned, method: str, name: str) -> None:
    model, state = pruned(method, name)
    assert abs(state.prune_ratio() - 0.5) <= 0.005 * 0.5, state.prune_ratio()
    last = list(state.masks)[-1]
    rows_kept = state.masks[last].reshape(state.masks[last].shape[0], -1).any(1)
    assert bool(rows_kept.all()), "an output class of the last layer was pruned"


@pytest.mark.parametrize("ratio", [0.2, 0.8])
@pytest.mark.parametrize("method", STRUCTURED)
def test_other_ratios(pruned, method: str, ratio: float) -> None:
    for name in ("lenet5", "addcat"):
        _, state = pruned(method, name, ratio)
        assert abs(state.prune_ratio() - ratio) <= 0.005 * ratio, (name, state.prune_ratio())


@pytest.mark.parametrize("name", list(BUILDERS))
@pytest.mark.parametrize("method", STRUCTURED)
def test_masks_remove_whole_channels(pruned, method: str, name: str) -> None:
    """Each mask is an outer product of kept rows and kept columns: whole filters / input channels."""
    model, state = pruned(method, name)
    for key, m in state.masks.items():
        flat = m.reshape(m.shape[0], m.shape[1], -1)
        rows, cols = flat.any(2).any(1), flat.any(2).any(0)
        expect = rows[:, None, None] & cols[None, :, None]
        assert torch.equal(flat, expect.expand_as(flat)), f"{method} on {name}: {key} is not channel-structured"


def test_filters_and_consumer_inputs_go_together(pruned) -> None:
    """LeNet-5: a removed conv2 filter removes its 25 fc1 input columns (behind the Flatten)."""
    model, state = pruned("ft", "lenet5")
    filters = state.masks["3.weight"].reshape(16, -1).any(1)
    cols = state.masks["7.weight"].any(0).reshape(16, 25)
    assert (~filters).any(), "ft removed no conv2 filter at 50%"
    assert torch.equal(cols.any(1), filters) and torch.equal(cols.all(1), filters)
    assert bool(state.masks["0.weight"].any(0).all()), "image channels of the first layer must never be pruned"


def test_residual_stream_is_one_group() -> None:
    model = _model("resnet20")
    names = [k.rsplit(".", 1)[0] for k in PruningState.dense(model).masks]
    struct = analyse(model, names, torch.zeros(1, 1, 28, 28))
    stream = next(g for g in struct.groups if "stem.0" in g.producers)
    assert {"layer1.0.conv2", "layer1.1.conv2", "layer1.2.conv2"} <= set(stream.producers)
    assert {"layer1.0.conv1", "layer2.0.conv1", "layer2.0.shortcut.0"} <= set(stream.consumers)
    fc_group = next(g for g in struct.groups if g.root == "fc")
    assert not fc_group.prunable and "output" in fc_group.reason


@pytest.mark.parametrize("name", ["vgg11_bn", "addcat"])
def test_ft_removes_the_smallest_filters(pruned, name: str) -> None:
    """Within every group, each kept channel's filter norm >= each removed channel's."""
    model, state = pruned("ft", name)
    names = [k.rsplit(".", 1)[0] for k in state.masks]
    struct = analyse(model, names, torch.zeros(1, 1, 28, 28))
    params = dict(model.named_parameters())
    norms = struct.gather_rows({n: params[f"{n}.weight"].detach().reshape(params[f"{n}.weight"].shape[0], -1).abs().sum(1)
                                for n in struct.layers})
    alive = struct.alive(state.masks)
    for g in struct.prunable_groups:
        s, a = norms[g.offset:g.offset + g.size], alive[g.offset:g.offset + g.size]
        if (~a).any() and a.any():
            assert float(s[a].min()) >= float(s[~a].max()), g.root


def test_pfp_keeps_the_most_sensitive_channels(pruned, fmnist) -> None:
    """LeNet-5 on the same S: kept fc1 units / conv2 filters are the top ones by the sensitivity
    s_j of the consumer's input channel (for fc1, behind the Flatten: max over a filter's 25 inputs)."""
    model, state = pruned("pfp", "lenet5")
    x = sensitivity_inputs(fmnist, PFP_OPTIONS["num_samples"], generator=_ctx(fmnist, "pfp").generator())
    sens = channel_sensitivity(model.eval(), {"7": model[7], "9": model[9]}, x)
    checks = [(sens["9"], state.masks["9.weight"].any(0)),
              (sens["7"].reshape(16, 25).amax(1), state.masks["7.weight"].reshape(120, 16, 25).any(2).any(0))]
    for s, kept in checks:
        assert (~kept).any() and kept.any()
        assert float(s[kept].min()) >= float(s[~kept].max())


def test_pfp_allocation_is_not_uniform(pruned) -> None:
    _, state = pruned("pfp", "resnet20")
    dens = [d for k, d in state.layer_densities().items() if k.endswith("conv1.weight")]
    assert max(dens) - min(dens) > 0.2, dens  # PFP's budget follows the sensitivities, FT's is uniform


@pytest.mark.parametrize("first", ["ft", "unstructured"])
@pytest.mark.parametrize("method", STRUCTURED)
def test_cascade_never_revives(fmnist, method: str, first: str) -> None:
    model = _model("resnet20")
    state = PruningState.dense(model)
    if first == "ft":
        state.update(METHODS.get("ft")(model, state, 0.3, _ctx(fmnist, "ft")))
    else:
        g = torch.Generator().manual_seed(1)
        state.update({k: torch.rand(m.shape, generator=g) > 0.3 for k, m in state.masks.items()})
    before = {k: m.clone() for k, m in state.masks.items()}
    new = METHODS.get(method)(model, state, 0.6, _ctx(fmnist, method))
    for k, m in new.items():
        assert not bool((m & ~before[k]).any()), f"{method} revived weights of {k}"
    state.update(new)
    assert abs(state.prune_ratio() - 0.6) <= 0.005 * 0.6
    # asking for less than what is already pruned changes nothing
    again = METHODS.get(method)(model, state, 0.4, _ctx(fmnist, method))
    assert all(torch.equal(again[k], state.masks[k]) for k in again)


@pytest.mark.parametrize("name", list(BUILDERS))
@pytest.mark.parametrize("method", STRUCTURED)
def test_compressed_equals_masked_and_is_smaller(pruned, fmnist, method: str, name: str) -> None:
    model, state = pruned(method, name)
    x = _images(fmnist)
    small = compress(model, state, x[:1]).eval()
    with torch.no_grad():
        want = masked_model(model, state).eval()(x)
        got = small(x)
    assert got.shape == want.shape == (len(x), 10)
    assert torch.allclose(got, want, atol=1e-5, rtol=0), float((got - want).abs().max())
    gap = compression_gap(model, state, small, x[:1])
    assert gap["compressed_params"] < gap["dense_params"]
    assert gap["real_flops"] < gap["dense_flops"]
    assert gap["flop_gap"] == pytest.approx(0.0, abs=1e-9)  # group-aware masks: all savings are real


@pytest.mark.parametrize("method", STRUCTURED)
def test_deterministic_under_seed(fmnist, method: str) -> None:
    model = _model("addcat")
    runs = [METHODS.get(method)(model, PruningState.dense(model), 0.5, _ctx(fmnist, method, seed=s)) for s in (3, 3, 4)]
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])
    differs = any(not torch.equal(runs[0][k], runs[2][k]) for k in runs[0])
    if method == "random-filter":
        assert differs, "another seed must draw other filters"
    elif method == "ft":
        assert not differs, "ft is data- and seed-free"


class _Linear(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(784, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


@pytest.mark.parametrize("method", STRUCTURED)
def test_user_errors(fmnist, method: str) -> None:
    model = _model("lenet5")
    ctx = _ctx(fmnist, method)
    for bad in (1.0, -0.1):
        with pytest.raises(UserError, match="prune ratio"):
            METHODS.get(method)(model, PruningState.dense(model), bad, ctx)
    with pytest.raises(UserError, match="cannot reach prune ratio"):
        METHODS.get(method)(model, PruningState.dense(model), 0.9999, ctx)
    lin = _Linear()
    with pytest.raises(UserError, match="no channel group"):
        METHODS.get(method)(lin, PruningState.dense(lin), 0.5, ctx)
    if METHODS.meta(method).get("data_informed"):
        with pytest.raises(UserError, match="needs a dataset"):
            METHODS.get(method)(model, PruningState.dense(model), 0.5, PruneContext())
    with pytest.raises(UserError, match="unknown option"):
        METHODS.get(method)(model, PruningState.dense(model), 0.5, PruneContext(data=fmnist, options={"bogus": 1}))
    if method == "ft":
        with pytest.raises(UserError, match="norm"):
            METHODS.get(method)(model, PruningState.dense(model), 0.5, PruneContext(options={"norm": "l7"}))


def test_ft_l2_option_differs(fmnist) -> None:
    model = _model("vgg11_bn")
    l1 = METHODS.get("ft")(model, PruningState.dense(model), 0.5, PruneContext(options={"norm": "l1"}))
    l2 = METHODS.get("ft")(model, PruningState.dense(model), 0.5, PruneContext(options={"norm": "l2"}))
    st = PruningState.dense(model).update(l2)
    assert abs(st.prune_ratio() - 0.5) <= 0.0025
    assert any(not torch.equal(l1[k], l2[k]) for k in l1)


def test_through_prune_api_zeroes_whole_channels(fmnist) -> None:
    """``prune()`` applies the masks: pruned filters are zero in the model itself, classes intact."""
    from prunebench.pruning.api import prune

    torch.manual_seed(0)
    model = randomize_bn(create_model("vgg11_bn", in_channels=1, image_size=28, width=0.25)).eval()
    state = prune(model, "ft", 0.5, data=fmnist)  # input shape from the dataset
    w = model.features[0].weight.detach().reshape(model.features[0].out_channels, -1)
    zero_rows = (w == 0).all(1)
    assert zero_rows.any() and torch.equal(zero_rows, ~state.masks["features.0.weight"].reshape(len(w), -1).any(1))
    assert abs(state.prune_ratio() - 0.5) <= 0.0025


def test_input_shape_is_guessed_without_data() -> None:
    torch.manual_seed(0)
    model = create_model("resnet20")  # 3x32x32: found by trying square sizes on the first conv
    state = PruningState.dense(model)
    state.update(METHODS.get("random-filter")(model, state, 0.4, PruneContext(seed=1)))
    assert abs(state.prune_ratio() - 0.4) <= 0.002


@pytest.mark.parametrize("method", STRUCTURED)
def test_round_to_keeps_whole_channel_blocks(fmnist, method: str) -> None:
    """round_to=8: every compressed layer keeps a multiple of 8 channels (or all it had), the
    outputs still equal the masked model's, and the ratio lands near the target (block-limited)."""
    model = create_model("resnet20", in_channels=1, image_size=28)
    torch.manual_seed(0)
    randomize_bn(model).eval()
    ctx = _ctx(fmnist, method)
    ctx.options["round_to"] = 8
    state = PruningState.dense(model)
    state.update(METHODS.get(method)(model, state, 0.5, ctx))
    assert abs(state.prune_ratio() - 0.5) < 0.01, state.prune_ratio()
    x = _images(fmnist, 4)
    small = compress(model, state, x[:1]).eval()
    dense_convs = {n: m for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    exact_state = PruningState.dense(model)
    exact_state.update(METHODS.get(method)(model, exact_state, 0.5, _ctx(fmnist, method)))
    exact = {n: m.out_channels for n, m in compress(model, exact_state, x[:1]).named_modules() if isinstance(m, nn.Conv2d)}
    for name, conv in small.named_modules():
        if isinstance(conv, nn.Conv2d):
            assert conv.out_channels % 8 == 0 or conv.out_channels == dense_convs[name].out_channels, (name, conv)
            # the method's own allocation, rounded: within one block of the exact widths everywhere
            assert abs(conv.out_channels - exact[name]) <= 8, (name, conv.out_channels, exact[name])
    # ... and to the nearest block on average (rounding every group up would keep thin stages whole)
    devs = [abs(m.out_channels - exact[n]) for n, m in small.named_modules() if isinstance(m, nn.Conv2d)]
    assert sum(devs) / len(devs) <= 4, devs
    assert sum(p.numel() for p in small.parameters()) < 0.7 * sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        assert torch.allclose(small(x), masked_model(model, state).eval()(x), atol=1e-5, rtol=0)
    # round_to=1 is the default exact allocation, and bad values are refused with the fix named.
    exact = METHODS.get(method)(model, PruningState.dense(model), 0.5, _ctx(fmnist, method))
    ctx.options["round_to"] = 1
    same = METHODS.get(method)(model, PruningState.dense(model), 0.5, ctx)
    assert all(torch.equal(exact[k], same[k]) for k in exact)
    for bad in (0, 2.5, "x"):
        ctx.options["round_to"] = bad
        with pytest.raises(UserError, match="round_to must be a positive integer"):
            METHODS.get(method)(model, PruningState.dense(model), 0.5, ctx)
