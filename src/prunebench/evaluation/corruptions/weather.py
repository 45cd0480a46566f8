"""Weather corruptions (CIFAR-10-C constants, Hendrycks & Dietterich 2019): snow, frost, fog.

Spatter (also a weather effect, held out) lives in :mod:`.spatter`.
"""
from __future__ import annotations

import math

import torch

from prunebench.evaluation.corruptions._ops import (
    clipped_zoom,
    gaussian_filter,
    motion_blur,
    rand,
    randn,
    rgb_to_gray,
    size_scale,
    uniform,
)  # fmt: skip
from prunebench.evaluation.corruptions.registry import register

Tensor = torch.Tensor


@register("snow", "weather", benchmark=True)
def snow(x: Tensor, severity: int, gen: torch.Generator) -> Tensor:
    """A thresholded, zoomed N(loc, scale) layer motion-blurred at U(-135, -45) degrees (the
    array motion blur; the original calls ImageMagick), added twice (as is and rotated 180 deg) to
    the image lightened towards 1.5 * gray + 0.5."""
    loc, scale, zoom, thr, radius, sigma, blend = (
        (0.1, 0.2, 1, 0.6, 8, 3, 0.95),
        (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
        (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
        (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
        (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8),
    )[severity - 1]
    n, _, h, w = x.shape
    s = size_scale(x)
    layer = loc + scale * randn(gen, (n, 1, h, w), x)
    layer = clipped_zoom(layer, zoom)
    layer = torch.where(layer < thr, torch.zeros_like(layer), layer)
    layer = torch.floor(layer.clamp(0, 1) * 255) / 255  # the original goes through an 8-bit PNG
    angle = uniform(gen, n, -135, -45)
    layer = motion_blur(layer, max(1, int(round(radius * s))), sigma * s, angle)
    layer = torch.round(layer * 255) / 255  # ... and back from 8-bit
    x = blend * x + (1 - blend) * torch.maximum(x, rgb_to_gray(x) * 1.5 + 0.5)
    return (x + layer + layer.flip(-1, -2)).clamp_(0, 1)


# --- frost ----------------------------------------------------------------------------------------


def _draw_segments(size: int, starts: Tensor, angles: Tensor, lengths: Tensor, levels: Tensor) -> Tensor:
    """Rasterize line segments on a size x size canvas by splatting points every 0.5 px along
    them (bilinear weights, mass level * 0.5 each): a line of ``level`` per unit length."""
    step = 0.5
    k = int(torch.ceil(lengths.max() / step).item()) + 1
    t = torch.arange(k, dtype=torch.float32) * step  # (K,)
    keep = t[None, :] <= lengths[:, None]  # (S, K)
    d = torch.stack([torch.sin(angles), torch.cos(angles)], -1)  # (S, 2) as (dy, dx)
    pts = starts[:, None, :] + t[None, :, None] * d[:, None, :]  # (S, K, 2)
    pts, mass = pts[keep], (levels[:, None] * step).expand_as(keep)[keep]
    y0, x0 = pts[:, 0].floor(), pts[:, 1].floor()
    fy, fx = pts[:, 0] - y0, pts[:, 1] - x0
    canvas = torch.zeros((size + 2) * (size + 2))
    for oy, ox, wt in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx), (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
        yy, xx = (y0 + oy).long() + 1, (x0 + ox).long() + 1
        ok = (yy >= 0) & (yy < size + 2) & (xx >= 0) & (xx < size + 2)
        canvas.index_add_(0, (yy * (size + 2) + xx)[ok], (mass * wt)[ok])
    return canvas.view(size + 2, size + 2)[1:-1, 1:-1]


def frost_texture(size: int, gen: torch.Generator, scale: float = 1.0) -> Tensor:
    """A procedural frost plate (3, size, size) in [0, 1]: the documented stand-in for the frost
    photographs of the original. Hazy multi-octave noise (rime) plus fern-like ice needles: long
    strokes that each sprout side branches at +-60 degrees (hexagonal ice), and a bluish-white tint.
    ``scale`` = image size / 32 sets stroke widths and lengths in image pixels."""
    cpu = torch.empty(0)
    # rime: value noise summed over octaves 4, 8, 16, ... px, amplitude halving
    haze = torch.zeros(1, 1, size, size)
    amp, cell = 1.0, max(2, size // 4)
    while cell >= 1:
        g = rand(gen, (1, 1, size // cell + 2, size // cell + 2), cpu)
        up = torch.nn.functional.interpolate(g, scale_factor=cell, mode="bicubic", align_corners=False)
        haze += amp * up[..., :size, :size]
        amp, cell = amp * 0.55, cell // 2
    haze = (haze - haze.min()) / (haze.max() - haze.min() + 1e-8)
    # needles: main strokes, then branches spawned along them
    n_main = max(1, int(9 * (size / (32 * scale)) ** 2))  # ~9 strokes per 32x32 image area
    centers = rand(gen, (n_main, 2), cpu) * size
    dominant = float(uniform(gen, 1, 0, math.pi)[0])
    angles = dominant + (rand(gen, (n_main,), cpu) - 0.5) * 2.2 + (rand(gen, (n_main,), cpu) < 0.5) * math.pi
    lengths = (4 + 14 * rand(gen, (n_main,), cpu)) * scale
    levels = 0.3 + 0.6 * rand(gen, (n_main,), cpu)
    k = 4
    along = rand(gen, (n_main, k), cpu) * lengths[:, None]
    d = torch.stack([torch.sin(angles), torch.cos(angles)], -1)
    b_centers = (centers[:, None, :] + along[..., None] * d[:, None, :]).reshape(-1, 2)
    side = torch.where(rand(gen, (n_main, k), cpu) < 0.5, -1.0, 1.0)
    b_angles = (angles[:, None] + side * math.pi / 3).reshape(-1)
    b_lengths = (lengths[:, None] * (0.2 + 0.35 * rand(gen, (n_main, k), cpu))).reshape(-1)
    b_levels = (levels[:, None] * 0.8).expand(-1, k).reshape(-1)
    lines = _draw_segments(
        size, torch.cat([centers, b_centers]), torch.cat([angles, b_angles]),
        torch.cat([lengths, b_lengths]), torch.cat([levels, b_levels]),
    )  # fmt: skip
    # give the strokes a width: blur, rescaled so a lone stroke peaks at its level
    width = 0.55 * scale
    needles = gaussian_filter(lines.view(1, 1, size, size), width)[0, 0] * (math.sqrt(2 * math.pi) * width)
    plate = 1 - torch.exp(-1.5 * (0.8 * haze[0, 0] ** 1.2 + needles))  # soft saturation
    plate = gaussian_filter(plate.view(1, 1, size, size), 0.35 * scale)[0, 0]
    tint = torch.tensor([0.86, 0.94, 1.0]).view(3, 1, 1)
    return (plate.unsqueeze(0) * tint).clamp(0, 1)


@register("frost", "weather", benchmark=True)
def frost(x: Tensor, severity: int, gen: torch.Generator) -> Tensor:
    """a * x + b * F, F a random crop of one of 5 frost plates (the original picks one of 5
    photographs); the plates are procedural here (:func:`frost_texture`), generated per call."""
    a, b = ((1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45))[severity - 1]
    n, c, h, w = x.shape
    s = size_scale(x)
    size = max(2 * max(h, w) + 16, 64)
    plates = torch.stack([frost_texture(size, gen, s) for _ in range(5)])  # (5, 3, S, S)
    if c == 1:
        plates = rgb_to_gray(plates)
    pick = torch.randint(0, 5, (n,), generator=gen, device=gen.device).cpu()
    oy = torch.randint(0, size - h + 1, (n,), generator=gen, device=gen.device).cpu()
    ox = torch.randint(0, size - w + 1, (n,), generator=gen, device=gen.device).cpu()
    rows = (oy[:, None] + torch.arange(h))[:, :, None]
    cols = (ox[:, None] + torch.arange(w))[:, None, :]
    crops = plates[pick[:, None, None], :, rows, cols].permute(0, 3, 1, 2)  # (N, C, H, W)
    return (a * x + b * crops.to(x.device, x.dtype)).clamp_(0, 1)


# --- fog ------------------------------------------------------------------------------------------


def plasma_fractal(n: int, mapsize: int, decay: float, gen: torch.Generator) -> Tensor:
    """Diamond-square plasma fractal as in CIFAR-10-C (start wibble 100, perturbations
    wibble * U(-wibble, wibble), wibble /= decay per level), ``n`` maps (n, S, S) normalized to [0, 1]."""
    assert mapsize & (mapsize - 1) == 0, mapsize
    m = torch.zeros(n, mapsize, mapsize, dtype=torch.float64)
    step, wibble = mapsize, 100.0

    def wibbled(a: Tensor) -> Tensor:
        u = torch.rand(a.shape, generator=gen, device=gen.device, dtype=torch.float64).cpu()
        return a / 4 + wibble * (wibble * (2 * u - 1))

    while step >= 2:
        half = step // 2
        corner = m[:, 0::step, 0::step]
        sq = corner + corner.roll(-1, 1)
        sq = sq + sq.roll(-1, 2)
        m[:, half::step, half::step] = wibbled(sq)
        dr, ul = m[:, half::step, half::step], m[:, 0::step, 0::step]
        m[:, 0::step, half::step] = wibbled(dr + dr.roll(1, 1) + ul + ul.roll(-1, 2))
        m[:, half::step, 0::step] = wibbled(dr + dr.roll(1, 2) + ul + ul.roll(-1, 1))
        step //= 2
        wibble /= decay
    lo = m.amin((1, 2), keepdim=True)
    m = m - lo
    return m / m.amax((1, 2), keepdim=True).clamp(min=1e-12)


@register("fog", "weather", benchmark=True)
def fog(x: Tensor, severity: int, gen: torch.Generator) -> Tensor:
    """(x + c * P) * m / (m + c), P a plasma fractal (one per image, map size the next power of two
    of the image size, top-left crop), m the image's maximum."""
    c, decay = ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75))[severity - 1]
    n, _, h, w = x.shape
    size = 1 << (max(h, w) - 1).bit_length()
    p = plasma_fractal(n, size, decay, gen)[:, :h, :w].unsqueeze(1).to(x.device, x.dtype)
    m = x.amax((1, 2, 3), keepdim=True)
    return ((x + c * p) * m / (m + c)).clamp_(0, 1)
