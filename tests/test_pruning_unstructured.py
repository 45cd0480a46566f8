"""Unstructured methods (every unstructured entry of METHODS), the ``prune`` entry point, SiPP's
sensitivity machinery and the efficiency counters, on real Fashion-MNIST.

Data-informed methods get a small |S| (``num_samples``) here for speed; the |S| formula itself
is checked separately.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from prunebench.data.base import Dataset, Split
from prunebench.errors import UserError
from prunebench.models import create_model
from prunebench.pruning import METHODS, Selection, count_params, flops, measure_latency, prune
from prunebench.pruning.sensitivity import (
    EPS32, layer_sensitivity, sample_size, sensitivity_batch, weight_sensitivity,
)

UNSTRUCTURED = [n for n in METHODS.names() if not METHODS.spec(n).structured]
DATA_INFORMED = [n for n in UNSTRUCTURED if METHODS.spec(n).data_informed]
FAST = {"num_samples": 12, "batch_size": 12, "samples_per_class": 2}  # small data batches, for speed


def options(method: str) -> dict:
    return {k: v for k, v in FAST.items() if k in METHODS.spec(method).options.model_fields}


class AddCat(nn.Module):
    """A user model with a residual add and a torch.cat."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1)
        self.res = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.left = nn.Conv2d(8, 6, 3, padding=1)
        self.right = nn.Conv2d(8, 10, 1)
        self.down = nn.Conv2d(16, 12, 3, stride=2)
        self.fc1 = nn.Linear(12 * 4, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.stem(x))
        x = torch.relu(x + self.res(x))
        y = torch.cat([torch.relu(self.left(x)), torch.relu(self.right(x))], dim=1)
        y = F.adaptive_avg_pool2d(torch.relu(self.down(y)), 2)
        return self.fc2(torch.relu(self.fc1(torch.flatten(y, 1))))


BUILDERS = {
    "lenet5": lambda: create_model("lenet5", in_channels=1, image_size=28),
    "resnet20": lambda: create_model("resnet20", in_channels=1, image_size=28),
    "vgg11_bn": lambda: create_model("vgg11_bn", in_channels=1, image_size=28, width=0.25),
    "addcat": AddCat,
}


def build(name: str) -> nn.Module:
    torch.manual_seed(0)
    return BUILDERS[name]()


# ------------------------------------------------------------------------------------ every method

@pytest.mark.parametrize("model_name", sorted(BUILDERS))
@pytest.mark.parametrize("method", UNSTRUCTURED)
def test_hits_target_ratio_and_cascades(method: str, model_name: str, fmnist) -> None:
    net = build(model_name)
    st = prune(net, method, 0.6, data=fmnist, seed=0, **options(method))
    assert st.prune_ratio() == pytest.approx(0.6, rel=0.005)
    st.verify()
    first = {k: m.clone() for k, m in st.masks.items()}
    st = prune(net, method, 0.9, data=fmnist, state=st, seed=0, **options(method))
    assert st.prune_ratio() == pytest.approx(0.9, rel=0.005)
    for k, m in st.masks.items():
        assert not (m & ~first[k]).any(), f"{method} revived weights of {k}"
        assert torch.count_nonzero(st.weights()[k][~m]) == 0
    assert net(fmnist.normalize(fmnist.val.x[:2].float() / 255)).shape == (2, 10)


@pytest.mark.parametrize("method", UNSTRUCTURED)
def test_deterministic_under_seed(method: str, fmnist) -> None:
    a = prune(build("lenet5"), method, 0.8, data=fmnist, seed=5, **options(method))
    b = prune(build("lenet5"), method, 0.8, data=fmnist, seed=5, **options(method))
    assert all(torch.equal(a.masks[k], b.masks[k]) for k in a.masks)
    if method.startswith("random"):
        c = prune(build("lenet5"), method, 0.8, data=fmnist, seed=6, **options(method))
        assert any(not torch.equal(a.masks[k], c.masks[k]) for k in a.masks)


@pytest.mark.parametrize("method", METHODS.names())
def test_registry_entry_is_typed_and_its_options_are_checked(method: str) -> None:
    """Every method (structured ones too): typed metadata, an options model whose every option has a
    description and a default that validates, bad values and unknown names refused in one line."""
    import re

    from prunebench.pruning.registry import MethodSpec
    from prunebench.report.plots import method_colors

    spec = METHODS.spec(method)
    assert isinstance(spec, MethodSpec) and spec.summary, method
    assert all(isinstance(getattr(spec, k), bool) for k in ("structured", "data_informed", "baseline"))
    assert spec.color is None or re.fullmatch(r"#[0-9a-f]{6}", spec.color), spec.color
    assert spec.label is None or spec.label.strip() == spec.label != ""
    assert method_colors([method])[method].startswith("#")
    defaults = spec.options().model_dump()
    for key, field in spec.options.model_fields.items():
        assert field.description, (method, key)
        assert not field.is_required(), (method, key)
        assert spec.parse_options({key: defaults[key]}) == spec.options()  # the default validates
        with pytest.raises(UserError) as bad:
            spec.parse_options({key: {"not": "a value"}})
        assert "\n" not in str(bad.value) and method in str(bad.value) and key in str(bad.value)
    assert spec.non_default(defaults) == {}  # spelling the defaults out changes no key
    with pytest.raises(UserError, match="unknown option 'no_such_option'") as unknown:
        spec.parse_options({"no_such_option": 1})
    assert "\n" not in str(unknown.value)


def test_method_colours_are_distinct_and_deterministic() -> None:
    from prunebench.report.plots import method_colors

    names = METHODS.names() + ["ft-l2", "my-label"]
    colours = method_colors(names)
    assert len(set(colours.values())) == len(names) and colours == method_colors(list(reversed(names)))
    assert colours["ft"] == METHODS.spec("ft").color


@pytest.mark.parametrize("method", UNSTRUCTURED)
def test_bad_inputs_are_user_errors(method: str, fmnist) -> None:
    for bad in (1.0, -0.1, 1.5):
        with pytest.raises(UserError, match="prune ratio"):
            prune(build("lenet5"), method, bad, data=fmnist)
    with pytest.raises(UserError, match="unknown option"):
        prune(build("lenet5"), method, 0.5, data=fmnist, no_such_option=1)
    with pytest.raises(UserError, match="no prunable layers"):
        prune(nn.Sequential(nn.Flatten(), nn.ReLU()), method, 0.5, data=fmnist)
    net = build("lenet5")
    st = prune(net, method, 0.7, data=fmnist, **options(method))
    with pytest.raises(UserError, match="never revived"):
        prune(net, method, 0.5, data=fmnist, state=st, **options(method))


@pytest.mark.parametrize("method", DATA_INFORMED)
def test_data_informed_needs_data(method: str) -> None:
    with pytest.raises(UserError, match="needs a dataset"):
        prune(build("lenet5"), method, 0.5)


@pytest.mark.parametrize("method", DATA_INFORMED)
def test_uses_validation_split_never_test(method: str, fmnist) -> None:
    """Replacing the test split by garbage the model cannot even run on changes nothing."""
    garbage = Split(torch.zeros(3, 1, 5, 5, dtype=torch.uint8), torch.zeros(3, dtype=torch.long))
    no_test = Dataset(fmnist.info, fmnist.train, fmnist.val, garbage)
    a = prune(build("lenet5"), method, 0.8, data=fmnist, **options(method))
    b = prune(build("lenet5"), method, 0.8, data=no_test, **options(method))
    assert all(torch.equal(a.masks[k], b.masks[k]) for k in a.masks)
    other_val = Dataset(fmnist.info, fmnist.train, fmnist.train.subset(slice(0, 500)), fmnist.test)
    c = prune(build("lenet5"), method, 0.8, data=other_val, **options(method))
    assert any(not torch.equal(a.masks[k], c.masks[k]) for k in a.masks)


def test_selection_is_respected(fmnist) -> None:
    net = build("resnet20")
    st = prune(net, "wt", 0.9, selection=Selection(keep_first_dense=True, keep_last_dense=True))
    assert "stem.0.weight" not in st.masks and "fc.weight" not in st.masks
    assert torch.count_nonzero(net.fc.weight) == net.fc.weight.numel()
    assert st.prune_ratio() == pytest.approx(0.9, rel=1e-4)


# ------------------------------------------------------------------------------------ SiPP / SNIP

def test_sipp_hand_computed_linear() -> None:
    """W = [[1, 2], [-1, 3]]; points [1, 1] and [2, 0] (see the derivation in the comments)."""
    lin = nn.Linear(2, 2)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 2.0], [-1.0, 3.0]]))
        lin.bias.fill_(100.0)  # bias is excluded from z
    g = layer_sensitivity(lin, torch.tensor([[1.0, 1.0], [2.0, 0.0]]))
    # x1: row0 z+=3 -> [1/3, 2/3]; row1 z+=3 -> w11: 1, z-=-1 -> w10: 1
    # x2: row0 z+=2 -> [1, 0];     row1 z+=0 (<= eps) -> w11: 0, z-=-2 -> w10: 1
    torch.testing.assert_close(g, torch.tensor([[[1 / 3, 2 / 3], [1.0, 1.0]], [[1.0, 0.0], [1.0, 0.0]]]))
    # negative activations: [-1, 1] becomes the points relu(a) = [0, 1] and relu(-a) = [1, 0]
    g = layer_sensitivity(lin, torch.tensor([[-1.0, 1.0]]))
    torch.testing.assert_close(g, torch.tensor([[[0.0, 1.0], [0.0, 1.0]], [[1.0, 0.0], [1.0, 0.0]]]))
    model = nn.Sequential(lin)
    s = weight_sensitivity(model, {"0": lin}, torch.tensor([[1.0, 1.0], [2.0, 0.0]]), batch_size=1)["0"]
    torch.testing.assert_close(s, torch.tensor([[1.0, 2 / 3], [1.0, 1.0]]))  # max over the points


def test_sipp_conv_mean_vs_max_over_patches() -> None:
    """1x2 kernel [1, 1] over the row [1, 3, 0]: patches [1, 3] (z=4) and [3, 0] (z=3)."""
    conv = nn.Conv2d(1, 1, (1, 2), bias=False)
    with torch.no_grad():
        conv.weight.fill_(1.0)
    a = torch.tensor([1.0, 3.0, 0.0]).view(1, 1, 1, 3)
    mean = layer_sensitivity(conv, a, "mean").flatten()
    mx = layer_sensitivity(conv, a, "max").flatten()
    torch.testing.assert_close(mean, torch.tensor([(1 / 4 + 3 / 3) / 2, (3 / 4 + 0) / 2]))
    torch.testing.assert_close(mx, torch.tensor([1.0, 3 / 4]))


@pytest.mark.parametrize("reduce", ["mean", "max"])
def test_sensitivity_matches_a_direct_loop(reduce: str) -> None:
    """Padding, stride, dilation, groups and signed inputs against a per-patch loop in float64."""
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 6, 3, stride=2, padding=2, dilation=2, groups=2)
    a = torch.randn(2, 4, 7, 7)
    ours = layer_sensitivity(conv, a, reduce).double()
    A = torch.cat([a.clamp(min=0), (-a).clamp(min=0)]).double()
    cols = F.unfold(A, 3, dilation=2, padding=2, stride=2)  # (B, 4*9, P)
    W = conv.weight.detach().double()
    ref = torch.zeros_like(ours)
    for b in range(A.shape[0]):
        for grp in range(2):
            c = cols[b, grp * 18:(grp + 1) * 18]  # this group's 2 input channels x 9 taps
            w = W[grp * 3:(grp + 1) * 3].reshape(3, 18)
            for sign_w in (w.clamp(min=0), w.clamp(max=0)):
                z = sign_w @ c  # (3, P)
                g = sign_w[:, :, None] * c[None] / z[:, None, :]
                g = torch.where((z.abs() <= EPS32)[:, None, :], torch.zeros_like(g), g)
                g = g.mean(-1) if reduce == "mean" else g.amax(-1)
                blk = ref[b, grp * 3:(grp + 1) * 3].view(3, 18)
                blk.copy_(torch.maximum(blk, g))
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)


def test_dead_inputs_get_zero_sensitivity(fmnist) -> None:
    """A weight that only ever multiplies a zero activation has sensitivity 0 (and is pruned first)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 16), nn.ReLU(), nn.Linear(16, 10))
    with torch.no_grad():
        net[1].weight[3].zero_()
        net[1].bias[3] = -1.0  # hidden unit 3 is always 0 after the ReLU
    x, _ = sensitivity_batch(fmnist, 20, generator=torch.Generator().manual_seed(0))
    s = weight_sensitivity(net, {"1": net[1], "3": net[3]}, x)
    assert torch.all(s["3"][:, 3] == 0) and torch.all(s["3"][:, [0, 1, 2, 4]] > 0)
    st = prune(net, "sipp", 0.05, data=fmnist, num_samples=20)
    assert not st.masks["3.weight"][:, 3].any()


def test_sample_size_formula() -> None:
    net = create_model("lenet5", in_channels=1, image_size=28)
    layers = Selection().layers(net)
    eta = 6 * 28 * 28 + 16 * 10 * 10 + 120 + 84 + 10
    want = math.ceil(3 * math.log(8 * (6 * 28 * 28) / (1e-16 / eta)))
    assert sample_size(net, layers, torch.zeros(1, 1, 28, 28)) == want


@pytest.mark.parametrize("method", UNSTRUCTURED)
def test_leaves_buffers_and_unpruned_weights_alone(method: str, fmnist) -> None:
    """Scoring (in train mode too: the random-*-ratio schemes) must not move BatchNorm statistics,
    and pruning changes weights only by zeroing the removed ones."""
    net = build("resnet20")
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    opts = {**options(method), **({"train_mode": True} if "train_mode" in METHODS.spec(method).options.model_fields else {})}
    st = prune(net, method, 0.7, data=fmnist, **opts)
    after = net.state_dict()
    for k, v in before.items():
        mask = st.masks.get(k)
        want = v if mask is None else v * mask
        assert torch.equal(after[k], want), k


def test_snip_scores_are_weight_times_gradient(fmnist) -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    x, y = sensitivity_batch(fmnist, 40, generator=torch.Generator().manual_seed(0))
    net.zero_grad()
    F.cross_entropy(net.eval()(x), y).backward()
    score = (net[1].weight * net[1].weight.grad).abs().flatten()
    keep = score.topk(784).indices
    net.zero_grad()
    st = prune(net, "snip", 0.9, data=fmnist, num_samples=40, batch_size=16)
    assert net[1].weight.grad is None  # .grad left untouched (autograd.grad, no accumulation)
    assert set(st.masks["1.weight"].flatten().nonzero().flatten().tolist()) == set(keep.tolist())


def test_grasp_scores_match_a_finite_difference_hessian_gradient_product(fmnist) -> None:
    """-theta * (H g) from the double backward equals the same product with H g by central finite
    differences of the gradient along g; the method keeps exactly the lowest-scored weights."""
    from prunebench.pruning.methods.grasp import class_balanced_batch, grasp_scores

    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 6), nn.Tanh(), nn.Linear(6, 10)).double()
    x, y = class_balanced_batch(fmnist, 2, torch.Generator().manual_seed(0))
    x = x.double()
    assert sorted(y.tolist()) == sorted(list(range(10)) * 2)  # class-balanced
    weights = {"1.weight": net[1].weight, "3.weight": net[3].weight}
    got = grasp_scores(net, weights, x, y, temperature=200.0, batch_size=7)  # chunked accumulation

    def grad_at(shift: list[torch.Tensor] | None, eps: float = 0.0) -> list[torch.Tensor]:
        with torch.no_grad():
            backup = [w.clone() for w in weights.values()]
            if shift is not None:
                for w, d in zip(weights.values(), shift):
                    w.add_(eps * d)
        loss = F.cross_entropy(net(x) / 200.0, y)
        grads = torch.autograd.grad(loss, list(weights.values()))
        with torch.no_grad():
            for w, b in zip(weights.values(), backup):
                w.copy_(b)
        return [g.detach() for g in grads]

    g = grad_at(None)
    eps = 1e-7 / max(float(t.abs().max()) for t in g)  # weight shifts of at most 1e-7 (float64)
    hg = [(a - b) / (2 * eps) for a, b in zip(grad_at(g, eps), grad_at(g, -eps))]
    ref = {k: -(w.detach() * h) for (k, w), h in zip(weights.items(), hg)}
    norm = abs(sum(float(r.sum()) for r in ref.values())) + 1e-10
    for k in ref:
        assert torch.allclose(got[k], ref[k] / norm, rtol=1e-4, atol=1e-6 * float(got[k].abs().max())), k
    st = prune(net, "grasp", 0.8, data=fmnist, samples_per_class=2, batch_size=7)
    flat = torch.cat([got[k].flatten() for k in weights])
    kept = torch.cat([st.masks[k].flatten() for k in weights])
    assert kept.sum() == round(0.2 * flat.numel())
    assert flat[kept].max() <= flat[~kept].min()  # the highest scores were removed


@pytest.mark.parametrize("score", ["snip", "grasp"])
def test_score_ratio_schemes_take_layer_densities_from_the_scores(fmnist, score: str) -> None:
    """random-<score>-ratio keeps, layer by layer, as many weights as <score> itself does (same data,
    train-mode scores), but chooses them at random inside each layer."""
    opts = {k: v for k, v in FAST.items() if k in METHODS.spec(score).options.model_fields}
    by_score = prune(build("lenet5"), score, 0.8, data=fmnist, train_mode=True, **opts)
    by_random = prune(build("lenet5"), f"random-{score}-ratio", 0.8, data=fmnist, **opts)
    counts = {k: int(m.sum()) for k, m in by_score.masks.items()}
    assert {k: int(m.sum()) for k, m in by_random.masks.items()} == counts
    assert len(set(counts[k] / m.numel() for k, m in by_score.masks.items())) > 1  # not uniform
    assert any(not torch.equal(by_score.masks[k], by_random.masks[k]) for k in counts)


# ------------------------------------------------------------------------------------ efficiency

def test_efficiency_counters() -> None:
    net = nn.Sequential(nn.Conv2d(1, 4, 3, bias=False), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))
    conv_flops, fc_flops = 2 * 4 * 9 * 36, 2 * 144 * 10
    dense = flops(net, (1, 8, 8))
    assert dense.dense == dense.effective == conv_flops + fc_flops
    st = prune(net, "random", 0.75, selection=Selection(exclude_types=("Linear",)))
    counts = count_params(net, st)
    assert counts.total == 36 + 1450 and counts.prunable == 36 and counts.nonzero == counts.total - 27
    eff = flops(net, (2, 1, 8, 8), st)
    assert eff.dense == conv_flops + fc_flops and eff.effective == pytest.approx(conv_flops * 0.25 + fc_flops)
    threads = torch.get_num_threads()
    net.train()
    assert measure_latency(net, (1, 8, 8), threads=2, warmup=1, repeats=3) > 0
    assert torch.get_num_threads() == threads and net.training
