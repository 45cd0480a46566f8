"""Corruptions on real Fashion-MNIST images: the contract of every registry entry at every
severity, monotonicity, exactness of the batched reformulations against the reference algorithms
(scipy / Pillow / the original sequential loop), the cache, the published-file readers, the
evaluator and the picture grid."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from torch import nn

from prunebench.data.base import DataInfo, Dataset, Split
from prunebench.data.idx import read_idx
from prunebench.errors import UserError
from prunebench.evaluation import EvalContext, run_evaluator
from prunebench.evaluation.corruptions import (
    CORRUPTIONS, SEVERITIES, benchmark_names, corrupt, corrupted_split, corruption_grid, heldout_names,
    load_cifar10_1, load_corrupted_npy,
)  # fmt: skip
from prunebench.evaluation.corruptions import _ops
from prunebench.evaluation.corruptions.blur import glass_shuffle_pixels, glass_shuffle_rows
from prunebench.evaluation.corruptions.digital import _pil_box_matrix
from prunebench.evaluation.corruptions.spatter import canny, chamfer_distance, equalize_hist

FMNIST = Path("/usr/share/datasets/fashion-mnist")
NAMES = CORRUPTIONS.names()
# No randomness: same output whatever the seed.
DETERMINISTIC = {"defocus_blur", "zoom_blur", "gaussian_blur", "brightness", "contrast", "saturate", "pixelate", "jpeg_compression"}
# Consecutive severities (s, s+1) where mean |corrupted - clean| does not grow, because of the
# CIFAR-10-C constants themselves (see the docstrings of the corruptions):
NOT_MONOTONE = {
    ("glass_blur", 1), ("glass_blur", 2), ("glass_blur", 4),  # same swaps, only sigma .05/.25/.4 differs: blur smooths swap noise
    ("motion_blur", 3),  # (6, 2) -> (8, 2): the extra taps weigh exp(-r^2 / 8) ~ 1e-9
    ("frost", 3), ("frost", 4),  # (a, b) = (.9, .4) -> (.85, .4) -> (.75, .45): a falls faster than b grows
    ("spatter", 3),  # severity 4 switches from water (mode 0) to mud (mode 1)
    ("saturate", 2),  # saturation factor .1 (severity 2) -> 1.5 (severity 3)
} | {("elastic_transform", s) for s in (1, 2, 3, 4)}  # affine jitter .08s -> .03s shrinks faster than the warp grows


def _fmnist(n: int) -> torch.Tensor:
    x = read_idx(FMNIST / "t10k-images-idx3-ubyte.gz")[:n]
    return torch.from_numpy(x.copy()).unsqueeze(1)


@pytest.fixture(scope="module")
def grey28() -> torch.Tensor:
    """300 real Fashion-MNIST test images, float (300, 1, 28, 28)."""
    return _fmnist(300).float() / 255


def _colour32(x: torch.Tensor) -> torch.Tensor:
    """Real images made RGB and 32 px: padded by 2, tinted, on a coloured background."""
    g = torch.Generator().manual_seed(1)
    xp = torch.nn.functional.pad(x, (2, 2, 2, 2))
    fg = torch.rand(len(x), 3, 1, 1, generator=g) * 0.8 + 0.2
    bg = torch.rand(len(x), 3, 1, 1, generator=g) * 0.5
    return (xp * fg + (1 - xp) * bg).clamp(0, 1)


@pytest.fixture(scope="module")
def colour32(grey28: torch.Tensor) -> torch.Tensor:
    return _colour32(grey28)


# ---------------------------------------------------------------- registry and contract


def test_registry_has_the_19_cifar10c_corruptions() -> None:
    assert len(CORRUPTIONS) == 19
    assert set(heldout_names()) == {"speckle_noise", "gaussian_blur", "spatter", "saturate"}
    assert len(benchmark_names()) == 15 and not set(benchmark_names()) & set(heldout_names())
    families = {n: CORRUPTIONS.spec(n).family for n in NAMES}
    assert {n for n, f in families.items() if f == "noise"} == {"gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise"}
    assert set(families.values()) == {"noise", "blur", "weather", "digital"}
    assert all(isinstance(CORRUPTIONS.spec(n).benchmark, bool) and CORRUPTIONS.spec(n).summary for n in NAMES)


@pytest.mark.parametrize("severity", SEVERITIES)
@pytest.mark.parametrize("name", NAMES)
def test_contract(name: str, severity: int, grey28: torch.Tensor, colour32: torch.Tensor) -> None:
    """In [0, 1], same shape / dtype, deterministic per seed, for grey / RGB at 28 / 32 px."""
    cases = [grey28[:48], colour32[:24], colour32[:8, :, 2:30, 2:30], torch.nn.functional.pad(grey28[:8], (2, 2, 2, 2))]
    for x in cases:
        y = corrupt(x, name, severity, seed=3)
        assert y.shape == x.shape and y.dtype == x.dtype and y.device == x.device
        assert torch.isfinite(y).all() and y.min() >= 0 and y.max() <= 1
    x = cases[0]
    y = corrupt(x, name, severity, seed=3)
    assert torch.equal(y, corrupt(x, name, severity, seed=3))
    other = corrupt(x, name, severity, seed=4)
    assert torch.equal(y, other) if name in DETERMINISTIC else not torch.equal(y, other)
    if name == "saturate":
        assert torch.equal(y, x)  # no saturation on one channel
    else:
        assert not torch.equal(y, x)


@pytest.mark.parametrize("name", NAMES)
def test_severity_monotone(name: str, grey28: torch.Tensor, colour32: torch.Tensor) -> None:
    """Mean |corrupted - clean| grows with severity, except where the constants say otherwise."""
    for x in (grey28, colour32[:100]):
        d = [(corrupt(x, name, s, seed=0) - x).abs().mean().item() for s in SEVERITIES]
        if name == "saturate" and x.shape[1] == 1:
            assert d == [0.0] * 5
            continue
        assert min(d) > 2e-3, d  # every severity visibly changes the images
        for s in range(1, 5):
            if (name, s) not in NOT_MONOTONE:
                assert d[s] > d[s - 1], (name, s, d)
        if name == "glass_blur":
            assert d[3] > d[2]  # two rounds of swaps


def test_float64_and_batch_of_one(grey28: torch.Tensor) -> None:
    x = grey28[:1].double()
    for name in NAMES:
        y = corrupt(x, name, 3, seed=0)
        assert y.dtype == torch.float64 and y.shape == x.shape


def test_bad_input_is_a_user_error(grey28: torch.Tensor) -> None:
    x = grey28[:2]
    with pytest.raises(UserError, match="did you mean 'gaussian_noise'"):
        corrupt(x, "gausian_noise", 1)
    for bad in (0, 6, "3", True, 2.0):
        with pytest.raises(UserError, match="severity"):
            corrupt(x, "fog", bad)  # type: ignore[arg-type]
    with pytest.raises(UserError, match="unsqueeze"):
        corrupt(x[0], "fog", 1)
    with pytest.raises(UserError, match="channels"):
        corrupt(x.repeat(1, 2, 1, 1), "fog", 1)
    with pytest.raises(UserError, match="at least 8x8"):
        corrupt(x[..., :6, :6], "fog", 1)
    with pytest.raises(UserError, match="/ 255"):
        corrupt((x * 255).to(torch.uint8), "fog", 1)


# ---------------------------------------------------------------- batched == reference


def _glass_reference(img: np.ndarray, dx: np.ndarray, dy: np.ndarray, delta: int) -> np.ndarray:
    """The original loop, verbatim in structure: (H, W, C) image, sequential swaps."""
    x = img.copy()
    h, w = x.shape[:2]
    for r in range(h - delta, delta, -1):
        for c in range(w - delta, delta, -1):
            rp, cp = r + dy[r, c], c + dx[r, c]
            x[r, c], x[rp, cp] = x[rp, cp].copy(), x[r, c].copy()
    return x


@pytest.mark.parametrize("delta", [1, 2])
def test_glass_shuffle_equals_the_sequential_loop(delta: int, grey28: torch.Tensor) -> None:
    g = torch.Generator().manual_seed(delta)
    img = _colour32(grey28[:6])[:, :, : 12 + delta, :14]
    n, _, h, w = img.shape
    dx = torch.randint(-delta, delta, (n, h, w), generator=g)
    dy = torch.randint(-delta, delta, (n, h, w), generator=g)
    fast = glass_shuffle_rows(img, dx, dy) if delta == 1 else glass_shuffle_pixels(img, dx, dy, delta)
    for i in range(n):
        ref = _glass_reference(img[i].permute(1, 2, 0).numpy(), dx[i].numpy(), dy[i].numpy(), delta)
        assert np.array_equal(fast[i].permute(1, 2, 0).numpy(), ref)
    if delta == 1:
        assert torch.equal(fast, glass_shuffle_pixels(img, dx, dy, 1))


def test_filters_and_resampling_match_scipy(grey28: torch.Tensor) -> None:
    ndimage = pytest.importorskip("scipy.ndimage")
    img = grey28[3, 0].double()
    for sigma, mode, trunc in ((0.7, "nearest", 4.0), (6.4, "reflect", 3.0), (1.0, "mirror", 4.0)):
        ours = _ops.gaussian_filter(img[None, None], sigma, mode=mode, truncate=trunc)[0, 0]
        ref = ndimage.gaussian_filter(img.numpy(), sigma, mode=mode, truncate=trunc)
        np.testing.assert_allclose(ours.numpy(), ref, atol=1e-10)
    g = torch.Generator().manual_seed(0)
    ys, xs = torch.rand(2, 28, 28, generator=g, dtype=torch.float64) * 40 - 6  # well outside the image too
    for mode in ("reflect", "mirror", "nearest"):
        ours = _ops.bilinear_sample(img[None, None], ys[None], xs[None], mode)[0, 0]
        ref = ndimage.map_coordinates(img.numpy(), [ys.numpy(), xs.numpy()], order=1, mode=mode)
        np.testing.assert_allclose(ours.numpy(), ref, atol=1e-10)
    for z in (1.03, 1.11, 1.75, 2.25):  # clipped_zoom against scipy's zoom (order 1)
        h = 28
        ch = int(np.ceil(h / z))
        top = (h - ch) // 2
        zoomed = ndimage.zoom(img.numpy()[top : top + ch, top : top + ch], z, order=1)
        trim = (zoomed.shape[0] - h) // 2
        ours = _ops.clipped_zoom(img[None, None], z)[0, 0]
        np.testing.assert_allclose(ours.numpy(), zoomed[trim : trim + h, trim : trim + h], atol=1e-10)


def test_zoom_blur_operator_equals_the_sum_of_zooms(colour32: torch.Tensor) -> None:
    from prunebench.evaluation.corruptions.blur import _ZOOMS, zoom_blur

    x = colour32[:4].double()
    for severity in (1, 5):
        zooms = _ZOOMS[severity - 1]
        ref = (x + sum(_ops.clipped_zoom(x, z) for z in zooms)) / (len(zooms) + 1)
        torch.testing.assert_close(zoom_blur(x, severity, torch.Generator()), ref.clamp(0, 1))
    assert [len(z) for z in _ZOOMS] == [7, 12, 16, 21, 26]
    big = torch.nn.functional.interpolate(x[:1], size=(72, 72))  # above 64 px: zoom by zoom
    assert zoom_blur(big, 2, torch.Generator()).shape == big.shape


def test_motion_blur_equals_the_shift_and_add_definition(colour32: torch.Tensor) -> None:
    """imagecorruptions' array motion blur, written out: rounded shifts, replicated edges, stop at
    the first shift that leaves the image."""
    import math

    x = colour32[:12, :, :20, :24]
    angles = torch.linspace(-180, 180, 12, dtype=torch.float64)
    radius, sigma = 9, 2.5
    out = _ops.motion_blur(x, radius, sigma, angles)
    k = torch.exp(-torch.arange(2 * radius + 1, dtype=torch.float64) ** 2 / (2 * sigma**2))
    k /= k.sum()
    for n in range(len(x)):
        ref = torch.zeros_like(x[n])
        a = math.radians(angles[n].item())
        for j in range(2 * radius + 1):
            dy, dx = -math.ceil(j * math.sin(a) - 0.5), -math.ceil(j * math.cos(a) - 0.5)
            if abs(dy) >= 20 or abs(dx) >= 24:
                break
            ys, xs = (torch.arange(20) - dy).clamp(0, 19), (torch.arange(24) - dx).clamp(0, 23)
            ref += k[j].item() * x[n][:, ys][:, :, xs]
        torch.testing.assert_close(out[n], ref)


def test_pixelate_matrix_is_pillows_box_filter(grey28: torch.Tensor) -> None:
    img = grey28[5, 0].numpy().astype(np.float32)
    for size in (26, 25, 23, 21, 18, 30):
        ref = np.asarray(Image.fromarray(img, mode="F").resize((size, size), Image.Resampling.BOX))
        ours = _pil_box_matrix(28, size) @ torch.from_numpy(img).double() @ _pil_box_matrix(28, size).T
        np.testing.assert_allclose(ours.numpy(), ref, atol=1e-5)
        up = np.asarray(Image.fromarray(ref, mode="F").resize((28, 28), Image.Resampling.BOX))
        np.testing.assert_allclose((_pil_box_matrix(size, 28) @ ours @ _pil_box_matrix(size, 28).T).numpy(), up, atol=1e-5)


def test_hsv_matches_matplotlib_and_round_trips(colour32: torch.Tensor) -> None:
    from matplotlib.colors import rgb_to_hsv

    x = colour32[:20].double()
    hsv = _ops.rgb_to_hsv(x)
    ref = rgb_to_hsv(x.permute(0, 2, 3, 1).numpy())
    np.testing.assert_allclose(hsv.permute(0, 2, 3, 1).numpy(), ref, atol=1e-9)
    torch.testing.assert_close(_ops.hsv_to_rgb(hsv), x)


def test_spatter_opencv_steps_on_known_shapes() -> None:
    img = torch.zeros(1, 1, 16, 16)
    img[..., 4:12, 4:12] = 200.0  # a bright square: Canny traces its outline, one pixel thick
    edges = canny(img)[0, 0]
    assert edges[4:12, 4:12].sum() + edges[3:13, 3:13].sum() > 0
    assert not edges[:2].any() and not edges[6:10, 6:10].any()
    rows = edges.any(1).nonzero().flatten()
    assert rows.min() >= 3 and rows.max() <= 12
    one = torch.zeros(1, 1, 9, 9, dtype=torch.bool)
    one[..., 4, 4] = True
    d = chamfer_distance(one, 20.0)[0, 0]
    assert d[4, 5] == 1 and d[5, 5] == pytest.approx(1.4) and d[5, 6] == pytest.approx(2.1969) and d[4, 7] == 3
    # the two raster passes reach the fixed point of relaxing every 5x5 chamfer move
    g = torch.Generator().manual_seed(0)
    zero = torch.rand(40, 1, 20, 20, generator=g) < 0.02
    moves = [((0, 1), 1.0), ((1, 0), 1.0), ((1, 1), 1.4), ((1, -1), 1.4), ((1, 2), 2.1969), ((2, 1), 2.1969),
             ((2, -1), 2.1969), ((1, -2), 2.1969)]  # fmt: skip
    moves += [((-dy, -dx), wt) for (dy, dx), wt in moves]
    ref = torch.where(zero, 0.0, 1e6)
    for _ in range(40):
        p = torch.nn.functional.pad(ref, (2, 2, 2, 2), value=1e6)
        for (dy, dx), wt in moves:
            ref = torch.minimum(ref, p[..., 2 + dy : 22 + dy, 2 + dx : 22 + dx] + wt)
    torch.testing.assert_close(chamfer_distance(zero, 20.0), ref.clamp(max=20.0))
    flat = chamfer_distance(torch.zeros(1, 1, 9, 9, dtype=torch.bool), 20.0)
    assert (flat == 20).all()  # no edge at all: everything is far, truncated
    v = torch.tensor([[[[10.0, 10, 20, 30], [30, 40, 40, 50]]]])
    eq = equalize_hist(v)
    assert eq.min() == 0 and eq.max() == 255
    assert torch.all(eq.flatten()[v.flatten().argsort()].diff() >= 0)
    assert (equalize_hist(torch.full((1, 1, 4, 4), 7.0)) == 7).all()


# ---------------------------------------------------------------- cache


def test_cache_gives_identical_images_and_writes_atomically(tmp_path: Path) -> None:
    x8 = _fmnist(120)
    first = corrupted_split(x8, "gaussian_noise", 2, seed=5, cache_dir=tmp_path, dataset="fashion-mnist")
    assert first.dtype == torch.uint8 and first.shape == x8.shape
    assert torch.equal(first, corrupted_split(x8, "gaussian_noise", 2, seed=5, cache_dir=None))
    files = list(tmp_path.rglob("*.safetensors"))
    assert len(files) == 1 and files[0].parent.name.startswith("fashion-mnist-")
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    # a second call reads the file: overwrite it with a marker and get the marker back
    marker = torch.full_like(x8, 7)
    save_file({"x": marker}, str(files[0]))
    assert torch.equal(corrupted_split(x8, "gaussian_noise", 2, seed=5, cache_dir=tmp_path, dataset="fashion-mnist"), marker)
    # other seed / severity / images: other files
    corrupted_split(x8, "gaussian_noise", 2, seed=6, cache_dir=tmp_path, dataset="fashion-mnist")
    corrupted_split(x8[:60], "gaussian_noise", 2, seed=5, cache_dir=tmp_path, dataset="fashion-mnist")
    assert len(list(tmp_path.rglob("*.safetensors"))) == 3
    # a damaged file is rebuilt
    files[0].write_bytes(b"\x00" * 10)
    assert torch.equal(corrupted_split(x8, "gaussian_noise", 2, seed=5, cache_dir=tmp_path, dataset="fashion-mnist"), first)
    # a failed write leaves neither a partial file nor a temp file behind
    key_dir = files[0].parent
    blocked = key_dir / "contrast-s1-seed0-v1.safetensors"
    blocked.mkdir()
    with pytest.raises(OSError):
        corrupted_split(x8, "contrast", 1, seed=0, cache_dir=tmp_path, dataset="fashion-mnist")
    assert blocked.is_dir() and not [p for p in key_dir.iterdir() if p.name.endswith(".tmp")]
    with pytest.raises(UserError, match="uint8"):
        corrupted_split(x8.float(), "contrast", 1, cache_dir=tmp_path)


# ---------------------------------------------------------------- readers


def test_cifar10c_style_reader(tmp_path: Path) -> None:
    g = np.random.default_rng(0)
    n = 7
    data = g.integers(0, 256, (5 * n, 32, 32, 3), dtype=np.uint8)
    labels = np.tile(g.integers(0, 10, n), 5).astype(np.int64)
    np.save(tmp_path / "fog.npy", data)
    np.save(tmp_path / "labels.npy", labels)
    sp = load_corrupted_npy(tmp_path, "fog", 3)
    assert sp.x.shape == (n, 3, 32, 32) and sp.x.dtype == torch.uint8
    assert np.array_equal(sp.x.permute(0, 2, 3, 1).numpy(), data[2 * n : 3 * n])
    assert np.array_equal(sp.y.numpy(), labels[2 * n : 3 * n])
    grey = g.integers(0, 256, (5 * n, 28, 28), dtype=np.uint8)  # MNIST-C style, no channel axis
    np.save(tmp_path / "zoom_blur.npy", grey)
    np.save(tmp_path / "labels.npy", labels[:n])  # N labels are accepted too
    sp = load_corrupted_npy(tmp_path, "zoom_blur", 5)
    assert sp.x.shape == (n, 1, 28, 28) and np.array_equal(sp.x[:, 0].numpy(), grey[4 * n :])
    with pytest.raises(UserError, match="this folder has: fog, zoom_blur"):
        load_corrupted_npy(tmp_path, "snow", 1)
    np.save(tmp_path / "labels.npy", labels[:3])
    with pytest.raises(UserError, match="different sets"):
        load_corrupted_npy(tmp_path, "fog", 1)
    np.save(tmp_path / "labels.npy", np.array([{"evil": 1}] * (5 * n), dtype=object), allow_pickle=True)
    with pytest.raises(UserError, match="object arrays are refused"):
        load_corrupted_npy(tmp_path, "fog", 1)
    with pytest.raises(UserError, match="severity"):
        load_corrupted_npy(tmp_path, "fog", 6)


def test_cifar10_1_reader(tmp_path: Path) -> None:
    g = np.random.default_rng(1)
    data = g.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8)
    labels = g.integers(0, 10, 20).astype(np.int64)
    np.save(tmp_path / "cifar10.1_v6_data.npy", data)
    np.save(tmp_path / "cifar10.1_v6_labels.npy", labels)
    sp = load_cifar10_1(tmp_path)
    assert sp.x.shape == (20, 3, 32, 32) and np.array_equal(sp.x.permute(0, 2, 3, 1).numpy(), data)
    assert np.array_equal(sp.y.numpy(), labels)
    with pytest.raises(UserError, match="not found"):
        load_cifar10_1(tmp_path, version="v4")


# ---------------------------------------------------------------- evaluator and grid


class NearestMean(nn.Module):
    """Nearest class mean on raw pixels: a real, training-free classifier."""

    def __init__(self, means: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("means", means.flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -torch.cdist(x.flatten(1), self.means)


def test_evaluator(tmp_path: Path) -> None:
    x8 = _fmnist(1000)
    y = torch.from_numpy(read_idx(FMNIST / "t10k-labels-idx1-ubyte.gz")[:1000].astype(np.int64))
    info = DataInfo("fashion-mnist", 10, 1, (28, 28), (0.0,), (1.0,))
    train, test = Split(x8[:700], y[:700]), Split(x8[700:], y[700:])
    data = Dataset(info, train, train, test)
    xs = train.float_images()
    model = NearestMean(torch.stack([xs[train.y == k].mean(0) for k in range(10)]))
    ctx = EvalContext(data=data, cache_dir=tmp_path, batch_size=128)
    m = run_evaluator("corruptions", model, ctx, corruptions=["contrast", "saturate", "gaussian_noise"], severities=[1, 5])
    names = ("contrast", "saturate", "gaussian_noise")
    outcomes = {k: m.pop(k) for k in list(m) if k.startswith("correct/")}
    assert set(outcomes) == {f"correct/{n}-{s}" for n in names for s in (1, 5)}
    assert all(v.float().mean().item() == pytest.approx(m["acc/" + k[8:]]) for k, v in outcomes.items())
    assert set(m) == {f"acc/{n}-{s}" for n in names for s in (1, 5)} | {f"acc/{n}" for n in names} | {"mean_acc", "mean_acc_heldout"}
    clean = (model(test.float_images()).argmax(1) == test.y).float().mean().item()
    assert 0.5 < clean < 0.9
    assert m["acc/saturate-1"] == pytest.approx(clean) and m["mean_acc_heldout"] == pytest.approx(clean)
    assert m["acc/contrast-5"] < m["acc/contrast-1"] <= clean + 0.02
    assert m["acc/contrast"] == pytest.approx((m["acc/contrast-1"] + m["acc/contrast-5"]) / 2)
    assert m["mean_acc"] == pytest.approx((m["acc/contrast"] + m["acc/gaussian_noise"]) / 2)
    assert len(list(tmp_path.rglob("*.safetensors"))) == 6
    again = run_evaluator("corruptions", model, ctx, corruptions="contrast", severities=5)
    assert again["acc/contrast-5"] == m["acc/contrast-5"]
    assert torch.equal(again["correct/contrast-5"], outcomes["correct/contrast-5"])
    with pytest.raises(UserError, match="unknown corruption"):
        run_evaluator("corruptions", model, ctx, corruptions=["contrast", "fgo"])
    with pytest.raises(UserError, match="severity"):
        run_evaluator("corruptions", model, ctx, corruptions="contrast", severities=[0])


def test_grid_png(tmp_path: Path) -> None:
    names = ["gaussian_noise", "frost", "elastic_transform", "saturate"]
    out = corruption_grid(_fmnist(2), tmp_path / "grid.png", seed=0, names=names)
    with Image.open(out) as im:
        w, h = im.size
        assert im.format == "PNG" and w > h > 100  # 4 rows, 6 columns of 2-image cells
        arr = np.asarray(im.convert("L"))
    assert arr.std() > 20  # images, not a blank canvas
    assert os.path.getsize(out) > 10_000
