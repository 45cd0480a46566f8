"""Batched image primitives shared by the corruptions: filters, border modes, resampling, HSV.

Everything works on float tensors ``(N, C, H, W)`` on any device. Border modes are named as in
scipy.ndimage, the library the CIFAR-10-C script filtered with:

- ``nearest``  (a a a | a b c | c c c)   scipy "nearest", OpenCV BORDER_REPLICATE
- ``reflect``  (b a | a b c | c b)       scipy "reflect" (half-sample symmetric)
- ``mirror``   (c b | a b c | b a)       scipy "mirror", OpenCV BORDER_REFLECT_101 (its default)
- ``wrap``     (b c | a b c | a b)       periodic

Padding is done with index arithmetic (gather), so a pad wider than the image (large sigma on a
small image) still follows the mode, as scipy does.
"""
from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F

Tensor = torch.Tensor


def size_scale(x: Tensor) -> float:
    """How much larger than CIFAR's 32 px the image is; scale-dependent constants are multiplied by it."""
    return min(x.shape[-2], x.shape[-1]) / 32.0


def border_index(idx: Tensor, n: int, mode: str) -> Tensor:
    """Map integer positions (possibly outside 0..n-1) into the image according to a border mode."""
    if n == 1:
        return torch.zeros_like(idx)
    if mode == "nearest":
        return idx.clamp(0, n - 1)
    if mode == "wrap":
        return idx.remainder(n)
    if mode == "reflect":  # period 2n: 0..n-1, n-1..0
        r = idx.remainder(2 * n)
        return torch.where(r < n, r, 2 * n - 1 - r)
    if mode == "mirror":  # period 2n-2: 0..n-1, n-2..1
        r = idx.remainder(2 * n - 2)
        return torch.where(r < n, r, 2 * n - 2 - r)
    raise ValueError(f"unknown border mode {mode!r}")


def pad(x: Tensor, ph: int, pw: int, mode: str) -> Tensor:
    """Pad the last two dimensions by (ph, pw) on each side following ``mode`` (any width)."""
    h, w = x.shape[-2:]
    if ph:
        ih = border_index(torch.arange(-ph, h + ph, device=x.device), h, mode)
        x = x.index_select(-2, ih)
    if pw:
        iw = border_index(torch.arange(-pw, w + pw, device=x.device), w, mode)
        x = x.index_select(-1, iw)
    return x


def gaussian_kernel1d(sigma: float, truncate: float = 4.0) -> Tensor:
    """scipy.ndimage's 1-D Gaussian: radius int(truncate * sigma + 0.5), normalized weights."""
    radius = int(truncate * float(sigma) + 0.5)
    if sigma <= 0 or radius == 0:
        return torch.ones(1, dtype=torch.float64)
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def _depthwise(y: Tensor, kernel: Tensor) -> Tensor:
    """Correlate each plane of ``y`` (1, P, H, W) with the same 2-D kernel: a grouped convolution,
    far faster on CPU than a 1-channel convolution over a batch of P."""
    p = y.shape[1]
    return F.conv2d(y, kernel.to(y).view(1, 1, *kernel.shape).expand(p, 1, *kernel.shape), groups=p)


def conv_separable(x: Tensor, kh: Tensor, kw: Tensor, mode: str) -> Tensor:
    """Correlate every channel of ``x`` with the separable kernel kh (rows) x kw (columns)."""
    n, c, h, w = x.shape
    y = x.reshape(1, n * c, h, w)
    rh, rw = (len(kh) - 1) // 2, (len(kw) - 1) // 2
    if len(kh) > 1:
        y = _depthwise(pad(y, rh, 0, mode), kh.view(-1, 1))
    if len(kw) > 1:
        y = _depthwise(pad(y, 0, rw, mode), kw.view(1, -1))
    return y.reshape(n, c, h, w)


def gaussian_filter(x: Tensor, sigma: float, mode: str = "nearest", truncate: float = 4.0) -> Tensor:
    """Per-channel spatial Gaussian filter, as ``skimage.filters.gaussian(..., multichannel=True)``
    (whose defaults are scipy mode "nearest", truncate 4)."""
    k = gaussian_kernel1d(sigma, truncate)
    return conv_separable(x, k, k, mode) if len(k) > 1 else x


def conv2d_same(x: Tensor, kernel: Tensor, mode: str = "mirror") -> Tensor:
    """Correlate every channel with a 2-D kernel (odd size), output the same size (cv2.filter2D)."""
    n, c, h, w = x.shape
    kh, kw = kernel.shape
    y = pad(x.reshape(1, n * c, h, w), kh // 2, kw // 2, mode)
    return _depthwise(y, kernel).reshape(n, c, h, w)


def bilinear_sample(x: Tensor, ys: Tensor, xs: Tensor, mode: str) -> Tensor:
    """Sample ``x`` (N,C,H,W) at fractional pixel coordinates ``ys``, ``xs`` (N,H',W') with
    bilinear interpolation; each of the four integer neighbours is mapped into the image by the
    border mode (what OpenCV's remap and scipy's map_coordinates(order=1) do)."""
    n, c, h, w = x.shape
    if mode in ("mirror", "reflect", "nearest") and ys.shape[0] == n:
        # F.grid_sample does the same in one fused kernel: reflecting the continuous coordinate
        # about the first / last pixel centre (mirror) or edge (reflect), or clamping it (nearest),
        # gives the same bilinear value as mapping the four integer neighbours.
        corners = mode != "reflect"
        if corners:
            gx, gy = 2 * xs / max(w - 1, 1) - 1, 2 * ys / max(h - 1, 1) - 1
        else:
            gx, gy = (2 * xs + 1) / w - 1, (2 * ys + 1) / h - 1
        grid = torch.stack([gx, gy], -1).to(x.dtype)
        pad_mode = "border" if mode == "nearest" else "reflection"
        return F.grid_sample(x, grid, mode="bilinear", padding_mode=pad_mode, align_corners=corners)
    y0f, x0f = ys.floor(), xs.floor()
    wy, wx = (ys - y0f).unsqueeze(1), (xs - x0f).unsqueeze(1)
    y0, x0 = y0f.long(), x0f.long()
    ya, yb = border_index(y0, h, mode), border_index(y0 + 1, h, mode)
    xa, xb = border_index(x0, w, mode), border_index(x0 + 1, w, mode)
    flat = x.reshape(n, c, h * w)

    def take(yi: Tensor, xi: Tensor) -> Tensor:
        idx = (yi * w + xi).reshape(n, 1, -1).expand(n, c, -1)
        return flat.gather(2, idx).reshape(n, c, *ys.shape[1:])

    top = take(ya, xa) * (1 - wx) + take(ya, xb) * wx
    bot = take(yb, xa) * (1 - wx) + take(yb, xb) * wx
    return top * (1 - wy) + bot * wy


def _zoom_taps(n: int, zoom: float) -> tuple[Tensor, Tensor, Tensor]:
    """For one axis of clipped_zoom: the two source indices and the weight of the second for each
    of the n kept output positions (crop ceil(n / z) centred, zoom to round(crop * z) with corners
    aligned as scipy.ndimage.zoom(order=1), trim the centre n)."""
    crop = int(math.ceil(n / zoom))
    top = (n - crop) // 2
    out = int(round(crop * zoom))
    trim = (out - n) // 2
    pos = torch.arange(trim, trim + n, dtype=torch.float64)
    src = pos * (crop - 1) / (out - 1) if out > 1 else torch.zeros(n, dtype=torch.float64)
    i0 = src.floor().clamp(0, crop - 1)
    frac = src - i0
    i1 = (i0 + 1).clamp(max=crop - 1)
    return (i0.long() + top), (i1.long() + top), frac


def clipped_zoom(x: Tensor, zoom: float) -> Tensor:
    """CIFAR-10-C's clipped_zoom: centre crop of ceil(H / z), zoom by z with scipy.ndimage.zoom
    (order 1, i.e. bilinear with corners aligned, output round(size * z)), centre trim back to H.
    Computed as M_h @ x @ M_w^T with (n x n) two-tap interpolation matrices of the kept rows and
    columns (small batched matmuls beat interpolating and trimming)."""
    h, w = x.shape[-2:]
    mh, mw = zoom_matrix(h, zoom).to(x), zoom_matrix(w, zoom).to(x)
    return mh @ x @ mw.T


@lru_cache(maxsize=256)
def zoom_matrix(n: int, zoom: float) -> Tensor:
    """The (n, n) matrix of one axis of :func:`clipped_zoom`."""
    i0, i1, frac = _zoom_taps(n, zoom)
    m = torch.zeros(n, n, dtype=torch.float64)
    rows = torch.arange(n)
    m.index_put_((rows, i0), 1 - frac, accumulate=True)
    m.index_put_((rows, i1), frac, accumulate=True)
    return m


def motion_blur(x: Tensor, radius: int, sigma: float, angle_deg: Tensor) -> Tensor:
    """The array motion blur of imagecorruptions (its stand-in for ImageMagick's ``-motion-blur``).

    A one-sided kernel of width 2r+1, k_i ~ exp(-i^2 / 2 sigma^2) (normalized), applied as
    ``sum_i k_i * shift(x, i pixels along the angle)`` with replicated edges; ``angle_deg`` holds
    one angle per image. Shifts are rounded as in the original (-ceil(i * sin / 1 - 0.5)) and a
    term whose shift reaches the image size ends the sum (not renormalized), as there.
    """
    n, c, h, w = x.shape
    width = 2 * int(radius) + 1
    i = torch.arange(width, dtype=torch.float64)
    k = torch.exp(-(i**2) / (2 * float(sigma) ** 2))
    k = (k / k.sum()).to(x.dtype).to(x.device)
    a = torch.deg2rad(angle_deg.to(torch.float64).cpu())
    # unit direction (sin, cos); the original divides (i * width * sin) by hypot = width
    dy = -torch.ceil(i[None, :] * torch.sin(a)[:, None] - 0.5).long()  # (N, width)
    dx = -torch.ceil(i[None, :] * torch.cos(a)[:, None] - 0.5).long()
    inside = (dy.abs() < h) & (dx.abs() < w)
    live = inside.long().cumprod(1).bool()  # the original `break`s at the first shift out of range
    weights = (k[None, :].cpu().to(torch.float64) * live).to(x.device, x.dtype)
    # shift by (dx, dy) with replicated edges: out[p] = x[clamp(p - d)]: grid_sample, nearest, at
    # exact integer positions; its "border" padding clamps the position (one fused pass over channels)
    sy, sx = 2 / max(h - 1, 1), 2 / max(w - 1, 1)
    yy, xx = torch.meshgrid(torch.arange(h, device=x.device, dtype=x.dtype) * sy - 1,
                            torch.arange(w, device=x.device, dtype=x.dtype) * sx - 1, indexing="ij")  # fmt: skip
    base = torch.stack([xx, yy], -1).unsqueeze(0)  # (1, H, W, 2) as (x, y)
    offsets = torch.stack([dx * sx, dy * sy], -1).to(x.device, x.dtype)  # (N, width, 2)
    out = torch.zeros_like(x)
    for j in range(width):
        if not live[:, j].any():
            break
        grid = base - offsets[:, j].view(n, 1, 1, 2)
        shifted = F.grid_sample(x, grid, mode="nearest", padding_mode="border", align_corners=True)
        out.addcmul_(shifted, weights[:, j].view(n, 1, 1, 1))
    return out


def rgb_to_gray(x: Tensor) -> Tensor:
    """Luma as OpenCV's RGB2GRAY (0.299 R + 0.587 G + 0.114 B); a 1-channel image is its own gray."""
    if x.shape[1] == 1:
        return x
    wts = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * wts).sum(1, keepdim=True)


def rgb_to_hsv(x: Tensor) -> Tensor:
    """skimage.color.rgb2hsv on (N,3,H,W): hue in [0,1), grey pixels get hue 0 and saturation 0;
    when channels tie for the maximum, blue wins over green over red (skimage's assignment order)."""
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    v = x.max(1).values
    delta = v - x.min(1).values
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    s = torch.where(delta > 0, delta / torch.where(v > 0, v, torch.ones_like(v)), torch.zeros_like(v))
    h = torch.where(b == v, 4.0 + (r - g) / safe, torch.where(g == v, 2.0 + (b - r) / safe, (g - b) / safe))
    h = torch.where(delta > 0, (h / 6.0).remainder(1.0), torch.zeros_like(h))
    return torch.stack([h, s, v], 1)


def hsv_to_rgb(hsv: Tensor) -> Tensor:
    """skimage.color.hsv2rgb on (N,3,H,W) (sector = floor(6 h) mod 6)."""
    h, s, v = hsv[:, 0], hsv[:, 1], hsv[:, 2]
    hi = torch.floor(h * 6)
    f = h * 6 - hi
    hi = hi.long().remainder(6)
    p = v * (1 - s)
    q = v * (1 - f * s)
    t = v * (1 - (1 - f) * s)
    # (r, g, b) per sector 0..5
    table = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    out = torch.zeros_like(hsv)
    for k, (rr, gg, bb) in enumerate(table):
        m = (hi == k).unsqueeze(1)
        out = torch.where(m, torch.stack([rr, gg, bb], 1), out)
    return out


# --- random draws -------------------------------------------------------------------------------
# Draws are made on the generator's device and moved to the image's device, so a CPU generator
# (what `corrupt` makes) gives the same corrupted images on CPU and CUDA, up to float rounding.


def rand(gen: torch.Generator, shape: tuple[int, ...] | torch.Size, like: Tensor) -> Tensor:
    """U[0, 1) of ``shape`` in the dtype and device of ``like``."""
    return torch.rand(tuple(shape), generator=gen, device=gen.device, dtype=torch.float32).to(like.device, like.dtype)


def randn(gen: torch.Generator, shape: tuple[int, ...] | torch.Size, like: Tensor) -> Tensor:
    """N(0, 1) of ``shape`` in the dtype and device of ``like``."""
    return torch.randn(tuple(shape), generator=gen, device=gen.device, dtype=torch.float32).to(like.device, like.dtype)


def uniform(gen: torch.Generator, n: int, low: float, high: float) -> Tensor:
    """``n`` float64 draws from U[low, high) on the CPU (angles, offsets: small, used for indexing)."""
    u = torch.rand(n, generator=gen, device=gen.device, dtype=torch.float64).cpu()
    return low + (high - low) * u
