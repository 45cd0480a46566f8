"""Blur corruptions (CIFAR-10-C constants, Hendrycks & Dietterich 2019).

Constants are for 32 px; blur sigmas and radii are multiplied by min(H, W) / 32 for other sizes
(so 28 px Fashion-MNIST gets 0.875 x). Zoom factors are relative and need no rescaling.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

from prunebench.evaluation.corruptions._ops import (
    bilinear_sample,
    clipped_zoom,
    conv2d_same,
    gaussian_filter,
    motion_blur as _motion_blur,
    size_scale,
    uniform,
    zoom_matrix,
)  # fmt: skip
from prunebench.evaluation.corruptions.registry import register

Tensor = torch.Tensor


@register("gaussian_blur", "blur", benchmark=False)
def gaussian_blur(x: Tensor, severity: int, gen: torch.Generator) -> Tensor:
    """Gaussian filter per channel (skimage defaults: border "nearest", truncate 4)."""
    sigma = (0.4, 0.6, 0.7, 0.8, 1.0)[severity - 1] * size_scale(x)
    return gaussian_filter(x, sigma).clamp(0, 1)


# --- glass blur -----------------------------------------------------------------------------------


def glass_shuffle_rows(img: Tensor, dx: Tensor, dy: Tensor) -> Tensor:
    """The original's sequential pixel swaps for max_delta = 1, one image row at a time, batched.

    The original visits h = H-1 .. 2 and, within each row, w = W-1 .. 2 and swaps pixel (h, w)
    with (h + dy, w + dx), dx, dy in {-1, 0}. Every swap partner lies above or to the left, so a
    visited pixel is never touched again and row h only exchanges values with itself and row h-1.
    Within row h let c(w) be the value sitting at (h, w) when it is visited: c(w) = c(w+1) if the
    visit at w+1 swapped left, else the row's entry value R(w), i.e. R at the end of the run of
    left swaps starting at w+1 (found with a reversed cummin). Then, per visited w:
    (0,0) keeps c(w); (-1,0) takes R(w-1); (0,-1) takes row h-1's value at w, which is c(w+1) if
    the visit at w+1 went up-left, else the untouched U(w); (-1,-1) takes U(w-1). Row h-1 ends with
    c(w) where w went up, c(w+1) where w+1 went up-left, U elsewhere. Unvisited columns keep c(w).
    Exactly equal to the sequential loop (tested against it); ``dx``, ``dy``: (N, H, W) int.
    """
    n, c, h, w = img.shape
    cur = img.clone()
    cols = torch.arange(w, device=img.device).view(1, w).expand(n, w)
    visited = cols >= 2
    sentinel = torch.full((n, 1), w, dtype=torch.long, device=img.device)
    no = torch.zeros((n, 1), dtype=torch.bool, device=img.device)
    for row in range(h - 1, 1, -1):
        ddx, ddy = dx[:, row, :].to(img.device), dy[:, row, :].to(img.device)
        left = visited & (ddx == -1) & (ddy == 0)
        up = visited & (ddx == 0) & (ddy == -1)
        upleft = visited & (ddx == -1) & (ddy == -1)
        # src(w) = (first w' >= w+1 that did not swap left) - 1; column w (sentinel) never swaps
        z = torch.cat([torch.where(left, w, cols), sentinel], 1)
        src = z.flip(1).cummin(1).values.flip(1)[:, 1:] - 1  # c(w) = R[src(w)]
        src_next = torch.cat([src[:, 1:], src[:, -1:]], 1)  # c(w+1) = R[src(w+1)]
        upleft_next = torch.cat([upleft[:, 1:], no], 1)
        # indices into cat([R, U]) (R: 0..w-1, U: w..2w-1)
        u_at_w = torch.where(upleft_next, src_next, cols + w)  # row h-1 at w when w is visited
        out_idx = torch.where(left, cols - 1, src)
        out_idx = torch.where(up, u_at_w, out_idx)
        out_idx = torch.where(upleft, cols + w - 1, out_idx)
        new_u_idx = torch.where(up, src, u_at_w)
        both = torch.cat([cur[:, :, row, :], cur[:, :, row - 1, :]], -1)  # (N, C, 2W)
        cur[:, :, row, :] = both.gather(2, out_idx.unsqueeze(1).expand(n, c, w))
        cur[:, :, row - 1, :] = both.gather(2, new_u_idx.unsqueeze(1).expand(n, c, w))
    return cur


def glass_shuffle_pixels(img: Tensor, dx: Tensor, dy: Tensor, delta: int) -> Tensor:
    """The sequential swaps for any max_delta, one pixel position at a time (batched over images).
    Used for images of 48 px and more, where max_delta rescales above 1."""
    n, c, h, w = img.shape
    cur = img.clone()
    ar = torch.arange(n, device=img.device)
    dx, dy = dx.to(img.device), dy.to(img.device)
    for row in range(h - delta, delta, -1):
        for col in range(w - delta, delta, -1):
            hp, wp = row + dy[:, row, col], col + dx[:, row, col]
            a = cur[ar, :, row, col].clone()
            cur[ar, :, row, col] = cur[ar, :, hp, wp]
            cur[ar, :, hp, wp] = a
    return cur


@register("glass_blur", "blur", benchmark=True)
def glass_blur(x: Tensor, severity: int, gen: torch.Generator) -> Tensor:
    """Blur, quantize to uint8 (truncating, like np.uint8), locally shuffle pixels, blur again."""
    sigma, delta, iterations = ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2))[severity - 1]
    s = size_scale(x)
    sigma, delta = sigma * s, max(1, int(round(delta * s)))
    n, _, h, w = x.shape
    img = torch.floor(gaussian_filter(x, sigma) * 255 + 1e-4).clamp_(0, 255) / 255
    for _ in range(iterations):
        dx = torch.randint(-delta, delta, (n, h, w), generator=gen, device=gen.device)
        dy = torch.randint(-delta, delta, (n, h, w), generator=gen, device=gen.device)
        img = glass_shuffle_rows(img, dx, dy) if delta == 1 else glass_shuffle_pixels(img, dx, dy, delta)
    return gaussian_filter(img, sigma).clamp(0, 1)


# --- defocus, motion, zoom ------------------------------------------------------------------------


def disk_kernel(radius: float, alias_sigma: float) -> Tensor:
    """CIFAR-10-C's disk: indicator x^2 + y^2 <= r^2 on a 17x17 grid (or (2r+1)^2 beyond r = 8),
    normalized, then smoothed with a 3x3 (5x5) Gaussian of ``alias_sigma`` (cv2.GaussianBlur,
    border reflect-101). Rows and columns that are exactly zero are cropped (same convolution)."""
    if radius <= 8:
        grid, ksize = torch.arange(-8, 9, dtype=torch.float64), 3
    else:
        grid, ksize = torch.arange(-radius, radius + 1, dtype=torch.float64), 5
    yy, xx = torch.meshgrid(grid, grid, indexing="ij")
    disk = ((xx**2 + yy**2) <= radius**2).double()
    disk /= disk.sum()
    t = torch.arange(ksize, dtype=torch.float64) - (ksize - 1) / 2
    g = torch.exp(-(t**2) / (2 * alias_sigma**2))
    g /= g.sum()
    k = conv2d_same(disk.view(1, 1, *disk.shape), torch.outer(g, g), mode="mirror")[0, 0]
    rows, cols = k.abs().sum(1).nonzero(), k.abs().sum(0).nonzero()
    r0, r1 = int(rows.min()), int(rows.max())
    c0, c1 = int(cols.min()), int(cols.max())
    rr = max(k.shape[0] // 2 - r0, r1 - k.shape[0] // 2)  # keep it centred
    cc = max(k.shape[1] // 2 - c0, c1 - k.shape[1] // 2)
    ch, cw = k.shape[0] // 2, k.shape[1] // 2
    return k[ch - rr : ch + rr + 1, cw - cc : cw + cc + 1]


def rescale_kernel(k: Tensor, scale: float) -> Tensor:
    """Resample a centred 2-D kernel defined on the 32 px grid to an image ``scale`` times as
    large: K_s(u) = K(u / scale) (bilinear, zero outside), renormalized. A discrete disk cannot be
    rescaled through its radius (r = 1 -> 0.875 would drop its four arms), its footprint can."""
    if scale == 1.0:
        return k
    k = torch.nn.functional.pad(k, (1, 1, 1, 1))  # a ring of zeros: the kernel tapers to 0 beyond its edge
    half = k.shape[0] // 2
    r = int(math.ceil(half * scale))
    u = torch.arange(-r, r + 1, dtype=torch.float64) / scale + half  # positions on the 32 px grid
    yy, xx = torch.meshgrid(u, u, indexing="ij")
    out = bilinear_sample(k.view(1, 1, *k.shape).double(), yy[None], xx[None], mode="nearest")[0, 0]
    return out / out.sum()


@register("defocus_blur", "blur", benchmark=True)
def defocus_blur(x: Tensor, severity: int, gen: torch.Generator) -> Tensor:
    """Convolve each channel with an anti-aliased disk (cv2.filter2D, border reflect-101); for
    sizes other than 32 px the 32 px kernel is resampled (:func:`rescale_kernel`)."""
    radius, alias = ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1))[severity - 1]
    kernel = rescale_kernel(disk_kernel(radius, alias), size_scale(x))
    return conv2d_same(x, kernel, mode="mirror").clamp(0, 1)


@register("motion_blur", "blur", benchmark=True)
def motion_blur(x: Tensor, severity: int, gen: torch.Generator) -> Tensor:
    """Array motion blur (imagecorruptions' replacement of ImageMagick's), angle ~ U(-45, 45) deg
    per image, CIFAR-10-C's (radius, sigma)."""
    radius, sigma = ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5))[severity - 1]
    s = size_scale(x)
    angle = uniform(gen, len(x), -45, 45)
    return _motion_blur(x, max(1, int(round(radius * s))), sigma * s, angle).clamp(0, 1)


# np.arange(1, e, 0.01): 7, 12, 16, 21, 26 factors (float rounding adds the end point for 1.06, 1.11)
_ZOOMS = [np.arange(1, e, 0.01).tolist() for e in (1.06, 1.11, 1.16, 1.21, 1.26)]


@lru_cache(maxsize=32)
def _zoom_operator(h: int, w: int, severity: int) -> Tensor:
    """zoom_blur as one (H*W, H*W) matrix: (I + sum_z M_z (x) N_z) / (n + 1), since each clipped
    zoom is M_z X N_z^T, i.e. kron(M_z, N_z) on the row-major flattened plane."""
    zooms = _ZOOMS[severity - 1]
    op = torch.eye(h * w, dtype=torch.float64)
    for z in zooms:
        op += torch.kron(zoom_matrix(h, z), zoom_matrix(w, z))
    return op / (len(zooms) + 1)


@register("zoom_blur", "blur", benchmark=True)
def zoom_blur(x: Tensor, severity: int, gen: torch.Generator) -> Tensor:
    """Average of the image and its clipped zooms by each factor (the first factor is 1). Up to
    64 x 64 px as one matrix product per batch (one large GEMM beats 7-26 small ones), above
    that zoom by zoom."""
    n, c, h, w = x.shape
    if h * w <= 4096:
        op = _zoom_operator(h, w, severity).to(x)
        return (x.reshape(n * c, h * w) @ op.T).reshape(n, c, h, w).clamp_(0, 1)
    zooms = _ZOOMS[severity - 1]
    out = x.clone()
    for z in zooms:
        out += clipped_zoom(x, z)
    return (out / (len(zooms) + 1)).clamp_(0, 1)
