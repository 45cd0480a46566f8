"""Spatter (held-out weather corruption, CIFAR-10-C constants): water drops or mud splashes.

Mode 0 (water) shapes its mask the way the original does with OpenCV: Canny edges of the
liquid layer, a chamfer distance transform to them, truncation at 20, box blur, histogram
equalization, an emboss-like 3x3 filter and another box blur, all with OpenCV's 8-bit rounding;
each step is re-implemented here batched in torch. Mode 1 (mud) is a blurred, thresholded mask.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from prunebench.evaluation.corruptions._ops import conv2d_same, gaussian_filter, randn, rgb_to_gray, size_scale
from prunebench.evaluation.corruptions.registry import register

Tensor = torch.Tensor

_TAN22 = 0.4142135623730950488  # tan(22.5 deg), OpenCV's Canny direction bins


def _shift(x: Tensor, dy: int, dx: int, fill: float) -> Tensor:
    """out[i, j] = x[i + dy, j + dx], ``fill`` outside the image."""
    h, w = x.shape[-2:]
    p = F.pad(x, (2, 2, 2, 2), value=fill)
    return p[..., 2 + dy : 2 + dy + h, 2 + dx : 2 + dx + w]


def canny(img8: Tensor, low: float = 50, high: float = 150) -> Tensor:
    """OpenCV's Canny (aperture 3, L1 gradient) on 8-bit valued float images (N, 1, H, W).

    Sobel with replicated borders; non-maximum suppression in 4 direction bins with OpenCV's
    asymmetric comparisons (strict towards one neighbour, >= towards the other; the magnitude is 0
    outside the image); hysteresis: candidates (> low after NMS) 8-connected to a pixel > high."""
    sx = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    gx = conv2d_same(img8, sx, mode="nearest")
    gy = conv2d_same(img8, sx.t().contiguous(), mode="nearest")
    mag = gx.abs() + gy.abs()
    ax, ay = gx.abs(), gy.abs()
    horizontal = ay < ax * _TAN22
    vertical = ~horizontal & (ay > ax * (_TAN22 + 2))
    s_neg = (gx * gy) < 0  # opposite signs: the "/" diagonal
    m = lambda dy, dx: _shift(mag, dy, dx, 0.0)  # noqa: E731
    keep_h = (mag > m(0, -1)) & (mag >= m(0, 1))
    keep_v = (mag > m(-1, 0)) & (mag >= m(1, 0))
    keep_d = torch.where(s_neg, (mag > m(-1, 1)) & (mag > m(1, -1)), (mag > m(-1, -1)) & (mag > m(1, 1)))
    keep = torch.where(horizontal, keep_h, torch.where(vertical, keep_v, keep_d))
    cand = keep & (mag > low)
    edges = cand & (mag > high)
    for _ in range(img8.shape[-2] * img8.shape[-1]):
        grown = cand & (F.max_pool2d(edges.float(), 3, 1, 1) > 0)
        if torch.equal(grown, edges):
            break
        edges = grown
    return edges


# OpenCV's DIST_L2 5x5 chamfer mask: a = 1 (edge), b = 1.4 (diagonal), c = 2.1969 (knight move)
_A, _B, _C = 1.0, 1.4, 2.1969
# forward-pass neighbours above the current row: (rows up, column offset, weight)
_UP = [(1, -1, _B), (1, 0, _A), (1, 1, _B), (1, -2, _C), (1, 2, _C), (2, -1, _C), (2, 1, _C)]


def _shifted_cols(row: Tensor, dx: int, fill: float) -> Tensor:
    """out[..., j] = row[..., j + dx], ``fill`` outside."""
    if dx == 0:
        return row
    out = torch.full_like(row, fill)
    if dx > 0:
        out[..., :-dx] = row[..., dx:]
    else:
        out[..., -dx:] = row[..., :dx]
    return out


def _scan(d: Tensor, big: float) -> Tensor:
    """One raster pass of the two-pass chamfer algorithm (top-down, left to right) on (N, H, W):
    each row first takes the rows above it, then propagates left to right within itself:
    d[j] = min_k<=j (t[k] + a (j - k)) = a j + cummin_k (t[k] - a k)."""
    h, w = d.shape[-2:]
    cols = torch.arange(w, dtype=d.dtype, device=d.device) * _A
    rows = list(d.unbind(-2))
    for i in range(h):
        t = rows[i]
        for up, dx, wt in _UP:
            if i - up >= 0:
                t = torch.minimum(t, _shifted_cols(rows[i - up], dx, big) + wt)
        rows[i] = (t - cols).cummin(-1).values + cols
    return torch.stack(rows, -2)


def chamfer_distance(zero: Tensor, cap: float) -> Tensor:
    """cv2.distanceTransform(DIST_L2, 5) truncated at ``cap``: distance to the nearest True pixel
    of ``zero`` (N, 1, H, W) by 5x5 chamfer moves (outside the image counts as far), with the same
    two raster passes as OpenCV (the second one on the image rotated by 180 degrees)."""
    big = 1e6
    d = torch.where(zero[:, 0], 0.0, big).float()
    d = _scan(d, big)
    d = _scan(d.flip(-1, -2), big).flip(-1, -2)
    return d.clamp(max=cap).unsqueeze(1)


def equalize_hist(v: Tensor) -> Tensor:
    """cv2.equalizeHist per image on 8-bit valued floats (N, 1, H, W)."""
    n = v.shape[0]
    flat = v.reshape(n, -1).long()
    total = flat.shape[1]
    hist = torch.zeros(n, 256, dtype=torch.long, device=v.device).scatter_add_(1, flat, torch.ones_like(flat))
    first = (hist > 0).long().argmax(1, keepdim=True)  # lowest occupied level
    h0 = hist.gather(1, first)
    scale = 255.0 / (total - h0).clamp(min=1).double()
    cum = hist.cumsum(1) - h0  # count in (first, i]
    lut = torch.round(cum.double() * scale).clamp(0, 255)
    lut = torch.where(torch.arange(256, device=v.device).view(1, -1) <= first, torch.zeros_like(lut), lut)
    out = lut.gather(1, flat).float()
    const = (h0 == total).expand_as(out)
    out = torch.where(const, first.float().expand_as(out), out)
    return out.reshape(v.shape)


def _box3_u8(v: Tensor) -> Tensor:
    """cv2.blur(u8, (3, 3)): mean over 3x3, border reflect-101, rounded to 8 bits."""
    return torch.round(conv2d_same(v, torch.full((3, 3), 1 / 9.0), mode="mirror")).clamp(0, 255)


_EMBOSS = torch.tensor([[-2.0, -1, 0], [-1, 1, 1], [0, 1, 2]])


def water_mask(liquid: Tensor) -> Tensor:
    """The mode-0 mask m (N, 1, H, W) before normalization: liquid (8-bit) * shaped distance."""
    l8 = torch.floor(liquid.clamp(0, 1) * 255)  # (x * 255).astype(uint8), clamped against wrap-around
    edges = canny(l8)
    dist = chamfer_distance(edges, 20.0)
    dist = torch.floor(conv2d_same(dist, torch.full((3, 3), 1 / 9.0), mode="mirror") + 1e-4)  # blur, astype(uint8)
    dist = equalize_hist(dist.clamp(0, 255))
    dist = torch.round(conv2d_same(dist, _EMBOSS, mode="mirror")).clamp(0, 255)  # filter2D to CV_8U
    dist = _box3_u8(dist)
    return l8 * dist


@register("spatter", "weather", benchmark=False)
def spatter(x: Tensor, severity: int, gen: torch.Generator) -> Tensor:
    """A blurred, thresholded N(loc, scale) liquid layer; mode 0 adds pale-turquoise water
    (175, 238, 238) through the edge/distance mask, mode 1 pastes mud brown (63, 42, 20) through a
    blurred mask thresholded at 0.8. One-channel images get the colours' luma (OpenCV weights)."""
    loc, scale, sigma, thr, intensity, mode = (
        (0.62, 0.1, 0.7, 0.7, 0.5, 0),
        (0.65, 0.1, 0.8, 0.7, 0.5, 0),
        (0.65, 0.3, 1, 0.69, 0.5, 0),
        (0.65, 0.1, 0.7, 0.69, 0.6, 1),
        (0.65, 0.1, 0.5, 0.68, 0.6, 1),
    )[severity - 1]
    n, c, h, w = x.shape
    s = size_scale(x)
    liquid = loc + scale * randn(gen, (n, 1, h, w), x)
    liquid = gaussian_filter(liquid, sigma * s)
    liquid = torch.where(liquid < thr, torch.zeros_like(liquid), liquid)
    if mode == 0:
        m = water_mask(liquid.float()).to(x.dtype)
        peak = m.amax((2, 3), keepdim=True)
        m = torch.where(peak > 0, m / peak.clamp(min=1e-12), torch.zeros_like(m)) * intensity
        color = torch.tensor([175, 238, 238], dtype=x.dtype, device=x.device).view(1, 3, 1, 1) / 255
        color = rgb_to_gray(color) if c == 1 else color
        return (x + m * color).clamp_(0, 1)
    mask = gaussian_filter((liquid > thr).to(x.dtype), intensity * s)
    mask = torch.where(mask < 0.8, torch.zeros_like(mask), mask)
    color = torch.tensor([63, 42, 20], dtype=x.dtype, device=x.device).view(1, 3, 1, 1) / 255
    color = rgb_to_gray(color) if c == 1 else color
    return (x * (1 - mask) + color * mask).clamp_(0, 1)
