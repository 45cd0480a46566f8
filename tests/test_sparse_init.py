"""Sparse initialisation: criterion x density scheme, the realised densities, the shorthands, the scores at init."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from prunebench.errors import UserError
from prunebench.models import create_model
from prunebench.pruning import PruningState, prune
from prunebench.pruning.methods.grasp import class_balanced_batch
from prunebench.pruning.sensitivity import sensitivity_batch
from prunebench.pruning.sparse import CRITERIA, DENSITY_TOLERANCE, SCHEMES, criterion_scores, scheme_densities, sparse_init


class Net(nn.Module):
    """A fixed architecture whose shapes the hand computations below use: conv 3->8 3x3, conv 8->16 3x3,
    conv 16->16 1x1, linear 64->10."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 16, 3, padding=1)
        self.c3 = nn.Conv2d(16, 16, 1)
        self.fc = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.c1(x))
        x = F.relu(self.c2(x))
        x = F.adaptive_avg_pool2d(F.relu(self.c3(x)), 2)
        return self.fc(x.flatten(1))


SHAPES = {"c1.weight": (8, 3, 3, 3), "c2.weight": (16, 8, 3, 3), "c3.weight": (16, 16, 1, 1), "fc.weight": (10, 64)}


def _bisect(raw: dict[str, float], density: float) -> dict[str, float]:
    """Independent solution of sum_l min(1, eps raw_l) N_l = d N by bisection (no dense-set iteration)."""
    n = {k: math.prod(s) for k, s in SHAPES.items()}
    target = density * sum(n.values())
    lo, hi = 0.0, 1e6
    for _ in range(200):
        mid = (lo + hi) / 2
        if sum(min(1.0, mid * raw[k]) * n[k] for k in n) < target:
            lo = mid
        else:
            hi = mid
    return {k: min(1.0, hi * raw[k]) for k in n}


def _state() -> tuple[nn.Module, PruningState]:
    torch.manual_seed(0)
    model = Net()
    return model, PruningState.dense(model)


@pytest.mark.parametrize("density", [0.05, 0.2, 0.7])
def test_erk_and_er_densities_equal_an_independent_computation(density: float) -> None:
    model, state = _state()
    # ERK: (n_in + n_out + kh + kw) / (n_in n_out kh kw) = sum(shape) / prod(shape); linear as ER
    erk_raw = {k: (sum(s) / math.prod(s)) if len(s) == 4 else (s[0] + s[1]) / (s[0] * s[1]) for k, s in SHAPES.items()}
    # ER: (fan_in + fan_out) / (fan_in fan_out), fan_in of a conv = in x kh x kw
    er_raw = {k: (s[0] + math.prod(s[1:])) / (s[0] * math.prod(s[1:])) for k, s in SHAPES.items()}
    for scheme, raw in (("erk", erk_raw), ("er", er_raw)):
        got = scheme_densities(model, state, density, scheme)
        want = _bisect(raw, density)
        for k in SHAPES:
            assert got[k] == pytest.approx(want[k], rel=1e-6, abs=1e-9), (scheme, k)
        if density == 0.7:  # the dense-set iteration is exercised: some layer is capped at 1
            assert any(v == 1.0 for v in want.values()) and any(v < 1.0 for v in want.values())


def test_uniform_plus_first_dense_last_at_least_20_percent_rest_uniform() -> None:
    model, state = _state()
    n = {k: math.prod(s) for k, s in SHAPES.items()}
    total = sum(n.values())
    for density in (0.2, 0.4):  # last layer held at 0.2, then sharing the uniform density
        got = scheme_densities(model, state, density, "uniform-plus")
        assert got["c1.weight"] == 1.0
        assert got["fc.weight"] >= 0.2
        rest = (density * total - n["c1.weight"] - got["fc.weight"] * n["fc.weight"]) / (n["c2.weight"] + n["c3.weight"])
        assert got["c2.weight"] == pytest.approx(rest) and got["c3.weight"] == pytest.approx(rest)
        assert sum(got[k] * n[k] for k in n) == pytest.approx(density * total)
    with pytest.raises(UserError, match="infeasible for uniform"):
        scheme_densities(model, state, 0.1, "uniform-plus")


@pytest.mark.parametrize("scheme", SCHEMES.names())
@pytest.mark.parametrize("criterion", CRITERIA.names())
def test_every_scheme_x_criterion_hits_the_overall_density(scheme: str, criterion: str, fmnist) -> None:
    torch.manual_seed(0)
    model = create_model("lenet5", in_channels=1, num_classes=10, image_size=28)
    state, dens = sparse_init(model, 0.1, criterion=criterion, scheme=scheme, data=fmnist, seed=1)
    assert abs(state.density() - 0.1) <= DENSITY_TOLERANCE * 0.1
    realised = state.layer_densities()
    n = {k: m.numel() for k, m in state.masks.items()}
    for k in dens:  # every layer holds its scheme's count (rounding: one weight)
        assert abs(realised[k] * n[k] - dens[k] * n[k]) <= 1.0 + 1e-6, k
    if scheme == "uniform-plus":
        first, last = list(state.masks)[0], list(state.masks)[-1]
        assert realised[first] == 1.0 and realised[last] >= 0.2 - 1 / n[last]
    for k, w in state.weights().items():  # the masks are applied to the weights
        assert int(w.detach()[~state.masks[k]].count_nonzero()) == 0


@pytest.mark.parametrize("method,scheme", [("random", "uniform"), ("random-uniform-plus", "uniform-plus"),
                                           ("random-er", "er"), ("random-erk", "erk"), ("random-erk-plus", "erk-plus"),
                                           ("random-snip-ratio", "snip-ratio"), ("random-grasp-ratio", "grasp-ratio")])
@pytest.mark.parametrize("exact", [True, False])
def test_random_methods_are_shorthands_for_criterion_random(method: str, scheme: str, exact: bool, fmnist) -> None:
    masks = []
    for use_method in (True, False):
        torch.manual_seed(0)
        model = create_model("lenet5", in_channels=1, num_classes=10, image_size=28)
        if use_method:
            state = prune(model, method, 0.9, data=fmnist, seed=3, exact=exact)
        else:
            state, _ = sparse_init(model, 0.1, criterion="random", scheme=scheme, data=fmnist, seed=3, exact=exact)
        masks.append(state.masks)
    for k in masks[0]:
        assert torch.equal(masks[0][k], masks[1][k]), k


def test_criteria_keep_their_top_scores_inside_each_layer() -> None:
    model, state = _state()
    st, dens = sparse_init(model, 0.3, criterion="magnitude", scheme="uniform")
    for k, w in st.weights().items():
        kept = st.masks[k]
        # every kept |w| >= every removed |w| (magnitude at initialisation, per layer)
        a = w.detach().abs()
        assert (~kept).any() and float(a[kept].min()) >= float(a[~kept].max())


def test_snip_criterion_matches_direct_autograd(fmnist) -> None:
    torch.manual_seed(0)
    model = create_model("lenet5", in_channels=1, num_classes=10, image_size=28)
    state = PruningState.dense(model)
    got = criterion_scores(model, state, "snip", data=fmnist, seed=5, options={"num_samples": 64})
    x, y = sensitivity_batch(fmnist, 64, generator=torch.Generator().manual_seed(5))
    weights = state.weights()
    model.train()
    loss = F.cross_entropy(model(x), y)
    grads = torch.autograd.grad(loss, list(weights.values()))
    raw = {k: (w.detach() * g).abs() for (k, w), g in zip(weights.items(), grads, strict=True)}
    total = sum(float(s.sum()) for s in raw.values())
    for k in raw:
        torch.testing.assert_close(got[k], raw[k] / total, rtol=1e-4, atol=1e-9)


def test_grasp_criterion_matches_direct_hessian_gradient_product(fmnist) -> None:
    torch.manual_seed(0)
    model = create_model("lenet5", in_channels=1, num_classes=10, image_size=28)
    state = PruningState.dense(model)
    got = criterion_scores(model, state, "grasp", data=fmnist, seed=2, options={"samples_per_class": 4})
    x, y = class_balanced_batch(fmnist, 4, torch.Generator().manual_seed(2))
    weights = state.weights()
    params = list(weights.values())
    loss = F.cross_entropy(model(x) / 200.0, y)
    g = torch.autograd.grad(loss, params, create_graph=True)
    z = sum((gi.detach() * gi).sum() for gi in g)
    hg = torch.autograd.grad(z, params)
    score = {k: -(w.detach() * h) for (k, w), h in zip(weights.items(), hg, strict=True)}
    norm = abs(sum(float(s.sum()) for s in score.values())) + 1e-10
    for k in score:  # the criterion keeps the lowest GraSP scores: it returns their negation
        torch.testing.assert_close(got[k], -score[k] / norm, rtol=1e-3, atol=1e-9)


def test_bad_density_and_unknown_names_are_one_line_errors() -> None:
    model, state = _state()
    for bad in (0.0, 1.5, -0.1):
        with pytest.raises(UserError, match=r"in \(0, 1\]"):
            sparse_init(model, bad)
    with pytest.raises(UserError, match="unknown density scheme 'erkk'.*did you mean 'erk'"):
        sparse_init(model, 0.1, scheme="erkk")
    with pytest.raises(UserError, match="unknown sparse criterion"):
        sparse_init(model, 0.1, criterion="nope")
    with pytest.raises(UserError, match="infeasible"):  # a dense classifier larger than the whole budget
        sparse_init(model, 0.01, scheme="erk-plus")
    with pytest.raises(UserError, match="random criterion only"):
        sparse_init(model, 0.1, criterion="magnitude", exact=False)


@pytest.mark.parametrize("registry", [CRITERIA, SCHEMES])
def test_every_entry_has_its_metadata(registry) -> None:
    for spec in registry.specs():
        assert spec.summary, spec.name  # listed with a one-line description
        assert spec.label, spec.name
        assert isinstance(spec.data_informed, bool)
