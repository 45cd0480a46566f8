"""Digital corruptions (CIFAR-10-C constants, Hendrycks & Dietterich 2019).

HSV ones follow skimage's rgb2hsv / hsv2rgb. On 1-channel images the value is the pixel itself,
so brightness adds c to it and saturate (which only scales saturation) returns the image unchanged.
"""
from __future__ import annotations

import io
from functools import lru_cache

import numpy as np
import torch
from PIL import Image

from prunebench.evaluation.corruptions._ops import bilinear_sample, gaussian_filter, hsv_to_rgb, rand, rgb_to_hsv
from prunebench.evaluation.corruptions.registry import register

Tensor = torch.Tensor


@register("brightness", "digital", benchmark=True)
def brightness(x: Tensor, severity: int, gen: torch.Generator) -> Tensor:
    """HSV value + c (clipped to 1); hue and saturation unchanged."""
    c = (0.05, 0.10, 0.15, 0.20, 0.30)[severity - 1]
    if x.shape[1] == 1:
        return (x + c).clamp_(0, 1)
    hsv = rgb_to_hsv(x)
    hsv[:, 2] = (hsv[:, 2] + c).clamp_(0, 1)
    return hsv_to_rgb(hsv).clamp_(0, 1)


@register("contrast", "digital", benchmark=True)
def contrast(x: Tensor, severity: int, gen: torch.Generator) -> Tensor:
    """(x - mean) * c + mean, with the per-image, per-channel spatial mean."""
    c = (0.75, 0.5, 0.4, 0.3, 0.15)[severity - 1]
    mean = x.mean((2, 3), keepdim=True)
    return ((x - mean) * c + mean).clamp_(0, 1)


@register("saturate", "digital", benchmark=False)
def saturate(x: Tensor, severity: int, gen: torch.Generator) -> Tensor:
    """HSV saturation * m + a (clipped); a no-op on 1-channel images (no saturation to change).
    The constants are not monotone in strength: m = 0.3, 0.1 desaturate, 1.5, 2, 2.5 oversaturate."""
    m, a = ((0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2))[severity - 1]
    if x.shape[1] == 1:
        return x.clone()
    hsv = rgb_to_hsv(x)
    hsv[:, 1] = (hsv[:, 1] * m + a).clamp_(0, 1)
    return hsv_to_rgb(hsv).clamp_(0, 1)


def _affine_from_points(src: Tensor, dst: Tensor) -> Tensor:
    """cv2.getAffineTransform batched: the (N, 2, 3) map taking each src triangle (N, 3, 2) to dst."""
    ones = torch.ones(*src.shape[:-1], 1, dtype=src.dtype)
    return torch.linalg.solve(torch.cat([src, ones], -1), dst).transpose(1, 2)


@register("elastic_transform", "digital", benchmark=True)
def elastic_transform(x: Tensor, severity: int, gen: torch.Generator) -> Tensor:
    """A random affine warp (three points at distance size//3 around the centre moved by
    U(-beta, beta), bilinear, border reflect-101 as cv2.warpAffine), then a smooth displacement
    field alpha * GaussianFilter(U(-1, 1), sigma) (scipy border "reflect", truncate 3), resampled
    bilinearly (border "reflect", as map_coordinates). Constants are fractions of the size s."""
    n, c, h, w = x.shape
    s = min(h, w)
    alpha, sigma, beta = ((0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05), (0.1, 0.03, 0.03))[severity - 1]
    alpha, sigma, beta = alpha * s, sigma * s, beta * s
    cx, cy, sq = float(w // 2), float(h // 2), float(s // 3)
    pts1 = torch.tensor([[cx + sq, cy + sq], [cx + sq, cy - sq], [cx - sq, cy - sq]], dtype=torch.float64)
    pts1 = pts1.expand(n, 3, 2)
    jitter = (torch.rand((n, 3, 2), generator=gen, device=gen.device, dtype=torch.float64).cpu() * 2 - 1) * beta
    pts2 = pts1 + jitter
    inv = _affine_from_points(pts2, pts1).to(x.device, torch.float32)  # output pixel -> source pixel
    yy, xx = torch.meshgrid(torch.arange(h, device=x.device, dtype=torch.float32),
                            torch.arange(w, device=x.device, dtype=torch.float32), indexing="ij")  # fmt: skip
    grid = torch.stack([xx, yy, torch.ones_like(xx)], 0).view(1, 3, h * w)
    src = inv @ grid  # (N, 2, H*W): x then y
    out = bilinear_sample(x, src[:, 1].view(n, h, w), src[:, 0].view(n, h, w), mode="mirror")
    if alpha > 0:
        field = rand(gen, (n, 2, h, w), x) * 2 - 1
        field = gaussian_filter(field, sigma, mode="reflect", truncate=3.0) * alpha
        out = bilinear_sample(out, yy + field[:, 1], xx + field[:, 0], mode="reflect")
    return out.clamp_(0, 1)


@lru_cache(maxsize=64)
def _pil_box_matrix(in_size: int, out_size: int) -> Tensor:
    """Pillow's BOX resampling as an (out, in) matrix (Resample.c precompute_coeffs: support
    0.5 * max(scale, 1), box(t) = 1 for -0.5 < t <= 0.5, weights at input pixel centres)."""
    scale = in_size / out_size
    fscale = max(scale, 1.0)
    support = 0.5 * fscale
    mat = np.zeros((out_size, in_size))
    for o in range(out_size):
        center = (o + 0.5) * scale
        lo, hi = max(int(center - support + 0.5), 0), min(int(center + support + 0.5), in_size)
        t = (np.arange(lo, hi) - center + 0.5) / fscale
        wts = ((t > -0.5) & (t <= 0.5)).astype(np.float64)
        if wts.sum() > 0:
            mat[o, lo:hi] = wts / wts.sum()
    return torch.from_numpy(mat)


@register("pixelate", "digital", benchmark=True)
def pixelate(x: Tensor, severity: int, gen: torch.Generator) -> Tensor:
    """Pillow BOX resize down to int(size * c), then BOX resize back up (kept in float; Pillow
    would round to 8 bits after each pass)."""
    c = (0.95, 0.9, 0.85, 0.75, 0.65)[severity - 1]
    h, w = x.shape[-2:]
    sh, sw = int(h * c), int(w * c)
    dh, dw = _pil_box_matrix(h, sh).to(x), _pil_box_matrix(w, sw).to(x)
    uh, uw = _pil_box_matrix(sh, h).to(x), _pil_box_matrix(sw, w).to(x)
    small = torch.einsum("ph,nchw,qw->ncpq", dh, x, dw)
    return torch.einsum("hp,ncpq,wq->nchw", uh, small, uw).clamp_(0, 1)


@register("jpeg_compression", "digital", benchmark=True)
def jpeg_compression(x: Tensor, severity: int, gen: torch.Generator) -> Tensor:
    """Encode with Pillow's JPEG encoder at quality 80, 65, 58, 50, 40 (default 4:2:0 chroma
    subsampling for RGB, one plane for grey) and decode; one Pillow call per image, cheap at this size."""
    quality = (80, 65, 58, 50, 40)[severity - 1]
    u8 = (x.detach() * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    mode = "L" if x.shape[1] == 1 else "RGB"
    out = np.empty_like(u8)
    for i, img in enumerate(u8):
        buf = io.BytesIO()
        Image.fromarray(img[..., 0] if mode == "L" else img).save(buf, format="JPEG", quality=quality)
        dec = Image.open(buf)
        dec.load()
        out[i] = np.asarray(dec).reshape(out.shape[1:])
    return torch.from_numpy(out).permute(0, 3, 1, 2).to(x.device, x.dtype) / 255
