"""Evaluators on real Fashion-MNIST / MNIST data and tiny models with known answers.

Uses the session fixtures of conftest.py: ``fmnist`` (real Fashion-MNIST subsets) and ``mnist_root``.
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from prunebench.data import load_dataset
from prunebench.data.base import DataInfo, Dataset, Split
from prunebench.errors import UserError
from prunebench.evaluation import EVALUATORS, EvalContext, run_evaluator
from prunebench.evaluation.evaluators.calibration import calibration_metrics
from prunebench.evaluation.evaluators.informative_features import removal_order, top_mask
from prunebench.evaluation.evaluators.ood import _fit_shape, aupr_in, auroc, fpr_at_tpr

OURS = {"nominal", "noise-similarity", "informative-features", "ood", "calibration", "adversarial", "trainability"}


def tiny_conv(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Flatten(), nn.Linear(16 * 7 * 7, 10),
    )


def _train(model: nn.Module, data: Dataset, steps: int = 150, seed: int = 0) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    x = data.normalize(data.train.float_images())
    for _ in range(steps):
        idx = torch.randint(0, len(x), (64,), generator=gen)
        opt.zero_grad()
        F.cross_entropy(model(x[idx]), data.train.y[idx]).backward()
        opt.step()
    model.zero_grad(set_to_none=True)
    return model.eval()


@pytest.fixture(scope="module")
def trained(fmnist: Dataset) -> nn.Module:
    return _train(tiny_conv(0), fmnist, seed=0)


@pytest.fixture(scope="module")
def other(fmnist: Dataset) -> nn.Module:
    return _train(tiny_conv(1), fmnist, seed=1)


# ---------------------------------------------------------------- registry-wide


QUICK = {
    "noise-similarity": {"n": 32, "draws": 8},
    "informative-features": {"n": 16, "round_frac": 0.2},
    "adversarial": {"n": 32, "steps": 2},
    "trainability": {"n": 4, "grad_batch": 32},
    "ood": {"out": ["gaussian", "uniform"]},
}


@pytest.mark.parametrize("name", EVALUATORS.names())
def test_every_evaluator_returns_finite_floats(name: str, fmnist: Dataset, trained: nn.Module, other: nn.Module) -> None:
    model = tiny_conv(2).train()  # left in train mode on purpose: evaluators must switch to eval and back
    ctx = EvalContext(fmnist, parent=trained, baseline=other, max_samples=64, batch_size=256)
    try:
        metrics = run_evaluator(name, model, ctx, QUICK.get(name))
    except UserError as e:  # e.g. corrupted test sets whose source files are absent here
        if name in OURS:
            raise
        pytest.skip(f"{name}: {e}")
    floats = {k: v for k, v in metrics.items() if not isinstance(v, torch.Tensor)}
    assert floats and all(isinstance(k, str) and isinstance(v, float) and math.isfinite(v) for k, v in floats.items())
    outcomes = {k[len("correct/"):]: v for k, v in metrics.items() if k.startswith("correct/")}
    # every accuracy-type distribution has its per-example outcomes, and they average to the accuracy
    assert set(outcomes) == {k[len("acc/"):] for k in floats if k.startswith("acc/") and k.count("/") == 1
                             and ("-" in k or k == "acc/nominal")}
    for dist, correct in outcomes.items():
        assert correct.dtype == torch.bool and correct.shape[0] == min(64, QUICK.get(name, {}).get("n", 64))
        assert correct.double().mean().item() == pytest.approx(floats[f"acc/{dist}"], abs=1e-9)
    for key, agree in metrics.items():  # agreement outcomes average to the match rates
        if key.startswith(("agree/", "baseline_agree/")):
            prefix, eps = key.split("/")[0].replace("agree", "match"), key.split("noise-")[1]
            assert agree.double().mean().item() == pytest.approx(floats[f"{prefix}/{eps}"], abs=1e-9)
    assert model.training and all(m.training for m in model.modules())  # mode restored
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("name", EVALUATORS.names())
def test_evaluator_spec_metadata(name: str) -> None:
    """What the listing, the study config and the report read from the spec is there and valid."""
    spec = EVALUATORS.spec(name)
    assert spec.summary and spec.description.strip() and spec.axis_label.strip()
    assert isinstance(spec.needs_parent, bool) and isinstance(spec.always, bool)
    assert spec.panels is None or all(isinstance(p, str) and p for p in spec.panels)
    assert all(p.metric and p.ylabel and p.caption for p in spec.param_plots)
    for key, field in spec.options.model_fields.items():
        assert field.description, f"{name}: option {key!r} has no description"
        assert not field.is_required(), f"{name}: option {key!r} needs a default (a study may leave it out)"
    defaults = spec.options()
    # every default passes its own validation (re-parsed from its JSON form) and hashes as "nothing given"
    assert spec.parse_options(defaults.model_dump(mode="json")) == defaults
    assert spec.non_default(defaults) == {} and spec.non_default(defaults.model_dump(mode="json")) == {}
    if spec.check_options is not None:
        assert spec.non_default(spec.check_options)  # a cheap setting differs from the full default
    with pytest.raises(UserError, match=f"evaluator '{name}': unknown option 'no_such_option'"):
        spec.parse_options({"no_such_option": 1})


@pytest.mark.parametrize("name", [n for n in EVALUATORS.names() if EVALUATORS.spec(n).needs_parent])
def test_needs_parent_without_parent_is_user_error(name: str, fmnist: Dataset, trained: nn.Module) -> None:
    with pytest.raises(UserError, match="parent"):
        run_evaluator(name, trained, EvalContext(fmnist, max_samples=8))


@pytest.mark.parametrize("name", sorted(OURS))
def test_unknown_option_is_user_error(name: str, fmnist: Dataset, trained: nn.Module) -> None:
    with pytest.raises(UserError, match="option"):
        run_evaluator(name, trained, EvalContext(fmnist, parent=trained, max_samples=8), no_such_option=1)


def test_nominal_matches_direct_computation(fmnist: Dataset, trained: nn.Module) -> None:
    m = run_evaluator("nominal", trained, EvalContext(fmnist, batch_size=300))
    logits = trained(fmnist.normalize(fmnist.test.float_images()))
    assert m["acc/nominal"] == pytest.approx((logits.argmax(1) == fmnist.test.y).float().mean().item())
    assert m["loss"] == pytest.approx(F.cross_entropy(logits, fmnist.test.y).item(), rel=1e-5)
    assert m["acc/nominal"] > 0.6  # the tiny net did learn something


# ---------------------------------------------------------------- noise similarity


def test_noise_similarity_self_is_identical(fmnist: Dataset, trained: nn.Module) -> None:
    ctx = EvalContext(fmnist, parent=trained, baseline=trained, max_samples=100)
    m = run_evaluator("noise-similarity", trained, ctx, draws=10, eps=[0.0, 0.35, 0.7])
    for e in ("0", "0.35", "0.7"):
        assert m[f"match/{e}"] == 1.0 and m[f"baseline_match/{e}"] == 1.0
        assert m[f"softmax_l2/{e}"] == 0.0 and m[f"logit_l2/{e}"] == 0.0
        assert m[f"acc/noise-{e}"] == m[f"parent_acc/{e}"]
    nominal = run_evaluator("nominal", trained, ctx)["acc/nominal"]
    assert m["acc/noise-0"] == pytest.approx(nominal)
    assert m["acc/noise-0.7"] < m["acc/noise-0"]  # noise of 0.7 std units does hurt


def test_noise_similarity_against_another_net(fmnist: Dataset, trained: nn.Module, other: nn.Module) -> None:
    ctx = EvalContext(fmnist, parent=other, max_samples=200, seed=3)
    m = run_evaluator("noise-similarity", trained, ctx, draws=5, eps=[0.0, 0.5])
    xn = fmnist.normalize(fmnist.test.float_images()[:200])
    with torch.no_grad():
        a, b = trained(xn), other(xn)
    assert m["match/0"] == pytest.approx((a.argmax(1) == b.argmax(1)).float().mean().item())
    assert m["softmax_l2/0"] == pytest.approx((a.softmax(1) - b.softmax(1)).norm(dim=1).mean().item(), rel=1e-5)
    assert m["logit_l2/0"] == pytest.approx((a - b).norm(dim=1).mean().item(), rel=1e-5)
    assert "baseline_match/0" not in m
    assert 0.0 < m["match/0.5"] < 1.0 and m["softmax_l2/0.5"] > 0
    again = run_evaluator("noise-similarity", trained, ctx, draws=5, eps=[0.0, 0.5])
    floats = lambda d: {k: v for k, v in d.items() if not isinstance(v, torch.Tensor)}  # noqa: E731
    assert floats(again) == floats(m) and torch.equal(again["correct/noise-0.5"], m["correct/noise-0.5"])  # seeded
    ctx.seed = 4
    assert run_evaluator("noise-similarity", trained, ctx, draws=5, eps=[0.0, 0.5])["logit_l2/0.5"] != m["logit_l2/0.5"]


# ---------------------------------------------------------------- informative features


def test_informative_features_self_overlap_is_full(fmnist: Dataset, trained: nn.Module) -> None:
    ctx = EvalContext(fmnist, parent=trained, baseline=trained, max_samples=40)
    m = run_evaluator("informative-features", trained, ctx, ks=[5, 25])
    for k in ("5", "25"):
        assert m[f"overlap/{k}"] == 1.0 and m[f"baseline_overlap/{k}"] == 1.0
        assert m[f"acc_own/{k}"] == m[f"acc_parent_feat/{k}"] == m[f"parent_acc_own/{k}"]


def test_informative_features_orderings_are_meaningful(fmnist: Dataset, trained: nn.Module, other: nn.Module) -> None:
    xn = fmnist.normalize(fmnist.test.float_images()[:100])
    y = fmnist.test.y[:100]
    order = removal_order(trained, xn, round_frac=0.05)
    assert torch.equal(order.sort(1).values, torch.arange(784).expand(100, -1))  # a permutation per image
    keep_top, keep_bottom = top_mask(order, 25), top_mask(order.flip(1), 25)
    assert keep_top.sum(1).eq(196).all()

    def acc(keep: torch.Tensor) -> float:
        with torch.no_grad():
            return (trained(xn * keep.view(-1, 1, 28, 28)).argmax(1) == y).float().mean().item()

    assert acc(keep_top) > acc(keep_bottom) + 0.2  # the most informative quarter beats the least informative
    ctx = EvalContext(fmnist, parent=other, max_samples=50)
    m = run_evaluator("informative-features", trained, ctx, ks=[10, 50])
    assert 0.1 < m["overlap/10"] < 1.0 and m["overlap/10"] < m["overlap/50"] <= 1.0  # chance would be 0.1 / 0.5


# ---------------------------------------------------------------- OoD


def test_ood_metrics_hand_computed() -> None:
    s_in, s_out = torch.tensor([3.0, 2.0, 2.0, 1.0]), torch.tensor([2.0, 0.0, 1.0])
    # pairs: 3 beats all (3); each 2 ties one and beats two (2.5 x 2); 1 ties one, beats one (1.5) -> 9.5/12
    assert auroc(s_in, s_out) == pytest.approx(9.5 / 12)
    # thresholds 3, 2, 1, 0: (recall, precision) = (1/4, 1), (3/4, 3/4), (1, 4/6), (1, 4/7)
    assert aupr_in(s_in, s_out) == pytest.approx(0.25 * 1 + 0.5 * 0.75 + 0.25 * 4 / 6)
    assert fpr_at_tpr(s_in, s_out) == pytest.approx(2 / 3)  # all 4 in-scores kept -> t = 1
    s_in, s_out = torch.arange(1.0, 21.0), torch.tensor([0.5, 1.5, 2.5, 10.0, 25.0])
    assert fpr_at_tpr(s_in, s_out) == pytest.approx(3 / 5)  # 19 of 20 kept -> t = 2 -> 2.5, 10, 25
    sep_in, sep_out = torch.rand(50) + 2, torch.rand(70)
    assert auroc(sep_in, sep_out) == 1.0 and aupr_in(sep_in, sep_out) == 1.0 and fpr_at_tpr(sep_in, sep_out) == 0.0
    assert auroc(sep_out, sep_in) == 0.0


def test_ood_metrics_agree_with_torchmetrics_on_ties() -> None:
    from torchmetrics.functional.classification import binary_auroc, binary_average_precision

    gen = torch.Generator().manual_seed(0)
    s_in = torch.randint(0, 8, (300,), generator=gen).double()
    s_out = torch.randint(0, 6, (200,), generator=gen).double()
    scores, target = torch.cat([s_in, s_out]), torch.cat([torch.ones(300), torch.zeros(200)]).long()
    assert auroc(s_in, s_out) == pytest.approx(binary_auroc(scores, target).item(), abs=1e-6)
    assert aupr_in(s_in, s_out) == pytest.approx(binary_average_precision(scores, target).item(), abs=1e-6)


def test_ood_fashion_vs_mnist_and_noise(fmnist: Dataset, trained: nn.Module, mnist_root: Path) -> None:
    ctx = EvalContext(fmnist, max_samples=500)
    m = run_evaluator("ood", trained, ctx, out=["mnist", "gaussian", "uniform"], roots={"mnist": str(mnist_root)}, n_out=500)
    assert set(m) == {f"{k}/{s}-{o}" for k in ("auroc", "aupr", "fpr95") for s in ("msp", "energy")
                      for o in ("mnist", "gaussian", "uniform")}
    assert all(0.0 <= v <= 1.0 for v in m.values())
    assert m["auroc/msp-mnist"] > 0.5  # a trained Fashion-MNIST net is less sure on digits
    with pytest.raises(UserError):
        run_evaluator("ood", trained, ctx, out=["no-such-set"])


def test_ood_converts_a_grayscale_set_for_rgb_data(fmnist: Dataset, mnist_root: Path) -> None:
    x = F.pad(fmnist.test.x[:300], (2, 2, 2, 2)).expand(-1, 3, -1, -1).contiguous()  # 3x32x32 "colour" data
    split = Split(x, fmnist.test.y[:300])
    data = Dataset(DataInfo("rgb-fashion", 10, 3, (32, 32), (0.3,) * 3, (0.35,) * 3), split, split, split)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))
    with pytest.warns(UserWarning, match="'mnist'.*1->3 channels.*resized"):
        m = run_evaluator("ood", model, EvalContext(data), out=["mnist"], roots={"mnist": str(mnist_root)}, n_out=200)
    assert set(m) == {f"{k}/{s}-mnist" for k in ("auroc", "aupr", "fpr95") for s in ("msp", "energy")}


def test_ood_resizes_and_converts_with_warning() -> None:
    rgb = torch.rand(4, 3, 1, 1).expand(-1, -1, 32, 32).contiguous()  # constant colour images
    with pytest.warns(UserWarning, match="3->1 channels.*resized"):
        gray = _fit_shape(rgb, 1, (28, 28), "svhn")
    assert gray.shape == (4, 1, 28, 28)
    assert torch.allclose(gray, rgb.mean(1, keepdim=True)[:, :, :1, :1].expand(-1, -1, 28, 28), atol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _fit_shape(gray, 1, (28, 28), "same") is gray  # same shape: untouched, no warning


# ---------------------------------------------------------------- calibration


def _sampled_label_data(fmnist: Dataset, model: nn.Module, seed: int = 0) -> Dataset:
    x01 = fmnist.test.float_images()
    with torch.no_grad():
        probs = model(fmnist.normalize(x01)).softmax(1)
    y = torch.multinomial(probs, 1, generator=torch.Generator().manual_seed(seed)).squeeze(1)
    return Dataset(fmnist.info, fmnist.train, fmnist.val, Split(fmnist.test.x, y))


def test_calibration_calibrated_vs_overconfident(fmnist: Dataset) -> None:
    full = load_dataset("fashion-mnist", train_limit=100)  # all 10k test images
    torch.manual_seed(0)
    lin = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    nn.init.normal_(lin[1].weight, std=0.08)
    data = _sampled_label_data(full, lin)  # labels drawn from the model's own predictive distribution
    cal = run_evaluator("calibration", lin, EvalContext(data))
    assert 0.3 < cal["mean_confidence"] < 0.9  # confidences spread over the bins
    assert cal["ece"] < 0.03 and cal["mce"] < 0.2
    with torch.no_grad():
        lin[1].weight *= 4
        lin[1].bias *= 4
    over = run_evaluator("calibration", lin, EvalContext(data))
    assert over["ece"] > 0.15 and over["ece"] > 5 * cal["ece"] and over["nll"] > cal["nll"]
    assert over["mce"] >= over["ece"]


def test_calibration_nll_and_brier_by_hand() -> None:
    logits = torch.log(torch.tensor([[0.7, 0.2, 0.1], [0.5, 0.25, 0.25]]))
    m = calibration_metrics(logits, torch.tensor([0, 1]))
    assert m["nll"] == pytest.approx(-(math.log(0.7) + math.log(0.25)) / 2)
    assert m["brier"] == pytest.approx(((0.3**2 + 0.2**2 + 0.1**2) + (0.5**2 + 0.75**2 + 0.25**2)) / 2)
    # confidences 0.7 (bin 10, correct) and 0.5 (bin 7, wrong): ECE = (0.3 + 0.5) / 2, MCE = 0.5
    assert m["ece"] == pytest.approx(0.4) and m["mce"] == pytest.approx(0.5)


# ---------------------------------------------------------------- adversarial


def _linear_binary_problem(eps_grid: list[float]) -> tuple[nn.Module, Dataset, np.ndarray, np.ndarray]:
    """A 6x6 one-channel linearly separable problem and a linear net f(x) = W (x - mean) / std + b whose
    logit gap in pixel space is v.x + c; returns (model, data, |margins|, ||v||_1)."""
    rng = np.random.default_rng(0)  # pixels stay in [40, 215] / 255, so x +- 0.1 never leaves [0, 1]
    v = rng.normal(size=36)
    s = rng.uniform(-1, 1, size=(4000, 1))  # spread the points along sign(v) so margins vary widely
    x = np.clip(128 + 85 * s * np.sign(v) + rng.integers(-20, 21, size=(4000, 36)), 40, 215).astype(np.uint8)
    gap = x.astype(np.float64) / 255 @ v
    c = -np.median(gap)
    margin = gap + c
    l1 = np.abs(v).sum()
    far = np.all(np.abs(np.abs(margin)[:, None] - np.array(eps_grid) * l1) > 1e-3, axis=1) & (np.abs(margin) > 1e-3)
    x, margin = x[far], margin[far]
    mean, std = 0.3, 0.5
    model = nn.Sequential(nn.Flatten(), nn.Linear(36, 2))
    with torch.no_grad():  # logit1 - logit0 = std v . (x - mean) / std + b1 - b0 = v . x + c
        model[1].weight.copy_(torch.tensor(np.stack([-std * v / 2, std * v / 2])))
        model[1].bias.copy_(torch.tensor([0.0, c + mean * v.sum()]))
    info = DataInfo("linear-toy", 2, 1, (6, 6), (mean,), (std,))
    split = Split(torch.from_numpy(x.reshape(-1, 1, 6, 6)), torch.from_numpy((margin > 0).astype(np.int64)))
    return model, Dataset(info, split, split, split), np.abs(margin), l1


def test_adversarial_linear_model_exact_robust_accuracy() -> None:
    grid = [0.01, 0.03, 0.1]
    model, data, margin, l1 = _linear_binary_problem(grid)
    m = run_evaluator("adversarial", model, EvalContext(data), n=len(margin), eps=grid)
    assert m["clean_acc"] == 1.0
    for e in grid:
        expected = float(np.mean(margin > e * l1))  # robust iff margin > eps * ||w_1 - w_0||_1 (pixel space)
        assert 0.5 < expected < 0.98  # neither trivial nor empty
        assert m[f"acc/fgsm-{e:g}"] == pytest.approx(expected, abs=1e-12)
        assert m[f"acc/pgd-{e:g}"] == pytest.approx(expected, abs=1e-12)


def test_adversarial_monotone_and_leaves_model_alone(fmnist: Dataset, trained: nn.Module) -> None:
    ctx = EvalContext(fmnist, max_samples=200)
    trained[0].weight.requires_grad_(False)
    try:
        runs = {s: run_evaluator("adversarial", trained, ctx, steps=s) for s in (1, 3, 10)}
        assert not trained[0].weight.requires_grad and trained[3].weight.requires_grad
        assert all(p.grad is None for p in trained.parameters()) and not trained.training
    finally:
        trained[0].weight.requires_grad_(True)
    grid = ["0.01", "0.03", "0.1"]
    for m in runs.values():
        for attack in ("fgsm", "pgd"):
            accs = [m[f"acc/{attack}-{e}"] for e in grid]
            assert accs[0] <= m["clean_acc"] and accs == sorted(accs, reverse=True)
        assert m["acc/pgd-0.1"] < m["clean_acc"] - 0.3  # eps 0.1 breaks an undefended net
    for e in grid:
        assert runs[10][f"acc/pgd-{e}"] <= runs[3][f"acc/pgd-{e}"] <= runs[1][f"acc/pgd-{e}"]
    assert runs[10]["acc/pgd-0.03"] <= runs[10]["acc/fgsm-0.03"] + 0.02  # PGD at least about as strong


# ---------------------------------------------------------------- trainability


def test_trainability_linear_jacobian_is_weight_matrix(fmnist: Dataset) -> None:
    torch.manual_seed(0)
    lin = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    ctx = EvalContext(fmnist, max_samples=16)
    sv = torch.linalg.svdvals(lin[1].weight.detach().double())
    for space, scale in (("normalized", 1.0), ("pixel", 1.0 / fmnist.info.std[0])):
        m = run_evaluator("trainability", lin, ctx, n=4, grad_batch=16, space=space)
        s = sv * scale
        assert m["jac_sv_mean"] == pytest.approx(s.mean().item(), rel=1e-4)
        assert m["jac_sv_std_over_mean"] == pytest.approx((s.std(unbiased=False) / s.mean()).item(), rel=1e-3)
        assert m["jac_cond"] == pytest.approx((s.max() / s.min()).item(), rel=1e-3)
        assert m["jac_isometry_dev"] == pytest.approx((s - 1).pow(2).mean().item(), rel=1e-3)


def test_trainability_gradient_norm_respects_pruned_weights(fmnist: Dataset) -> None:
    torch.manual_seed(0)
    lin = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    with torch.no_grad():
        lin[1].weight[:, ::2] = 0.0  # "pruned" half
    m = run_evaluator("trainability", lin, EvalContext(fmnist, seed=5), n=2, grad_batch=64)
    idx = torch.randperm(len(fmnist.train), generator=torch.Generator().manual_seed(5))[:64]
    loss = F.cross_entropy(lin(fmnist.normalize(fmnist.train.float_images()[idx])), fmnist.train.y[idx])
    gw, gb = torch.autograd.grad(loss, [lin[1].weight, lin[1].bias])
    assert m["train_loss"] == pytest.approx(loss.item(), rel=1e-5)
    assert m["grad_norm"] == pytest.approx(math.sqrt(gw.pow(2).sum() + gb.pow(2).sum()), rel=1e-5)
    assert m["grad_norm_unpruned"] == pytest.approx(math.sqrt(gw[:, 1::2].pow(2).sum() + gb.pow(2).sum()), rel=1e-5)
    assert lin[1].weight.grad is None
