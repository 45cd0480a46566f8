"""Common corruptions (CIFAR-10-C, Hendrycks & Dietterich 2019) on batched tensors, cached
corrupted test sets, readers for the published CIFAR-10-C / CIFAR-10.1 files, and a picture grid.

:data:`CORRUPTIONS` holds all 19 corruptions (15 benchmark, 4 held-out: speckle_noise,
gaussian_blur, spatter, saturate), with the CIFAR-10-C (32 px) constants; it loads the modules of
this package itself on first lookup.

Where and why we differ from the CIFAR-10-C script (``make_cifar_c.py``):

- Random numbers come from a ``torch.Generator``, not numpy's global stream: same distributions,
  not the same draws, so our sets are statistically, not bit-for-bit, those of the published files.
- Other sizes: scale = min(H, W) / 32. Gaussian / glass / spatter sigmas and motion-blur radius
  (rounded) and sigma are multiplied by it; glass blur's max_delta is round(1 * scale) (so 1 below
  48 px); defocus resamples the 32 px disk kernel to the new grid (a discrete disk's radius cannot
  be scaled: r = 1 -> 0.875 would lose its arms); elastic constants are already fractions of the
  size; zoom factors, pixelate's factor, the fog map (next power of two, cropped) are relative.
- glass_blur: the sequential pixel swaps are reproduced exactly, one image row at a time batched
  over images (:func:`.blur.glass_shuffle_rows`; tested equal to the loop); above max_delta 1 a
  per-pixel loop batched over images is used.
- motion_blur and snow's streaks: the array motion blur of imagecorruptions instead of ImageMagick.
- frost: procedural frost plates (:func:`.weather.frost_texture`) instead of the 6 photographs.
- jpeg_compression: Pillow's encoder, one call per image (the original also uses Pillow).
- One-channel images: brightness adds to the value (the pixel), saturate is a no-op, snow's grey
  is the pixel, spatter's colours become their luma.
- pixelate stays in float between the two Pillow BOX passes (Pillow rounds to 8 bits after each).
- elastic_transform resamples in float (cv2.warpAffine quantizes positions to 1/32 px).
- spatter: OpenCV's Canny, chamfer distance transform, equalizeHist, filter2D and blur are
  re-implemented (8-bit rounding kept); the liquid layer is clamped before its uint8 cast (the
  original would wrap around above 1), and an image without liquid gets no water (not 0 / 0).
- uint8 conversion (:func:`to_uint8`) truncates like ``np.uint8`` in the script.

Severity is not monotone in pixel distance for every corruption, because of the constants:
glass_blur 1-3 and 4-5 differ only by a small sigma; motion_blur 3 -> 4 adds taps of weight
~1e-9; frost's a falls faster than b grows (3 -> 4 -> 5); spatter switches from water to mud at 4;
saturate's factors are .3, .1, 1.5, 2, 2.5; elastic's affine jitter shrinks from .08 s to .03 s.
"""
from prunebench.evaluation.corruptions.cache import corrupted_split, to_uint8
from prunebench.evaluation.corruptions.readers import load_cifar10_1, load_corrupted_npy
from prunebench.evaluation.corruptions.registry import (
    CORRUPTIONS,
    ORDER,
    SEVERITIES,
    benchmark_names,
    corrupt,
    heldout_names,
    ordered_names,
)  # fmt: skip

__all__ = [
    "CORRUPTIONS", "ORDER", "SEVERITIES", "benchmark_names", "corrupt", "corrupted_split",
    "corruption_grid", "heldout_names", "load_cifar10_1", "load_corrupted_npy", "ordered_names", "to_uint8",
]  # fmt: skip


def __getattr__(name: str):  # matplotlib is imported only when a grid is drawn
    if name == "corruption_grid":
        from prunebench.evaluation.corruptions.grid import corruption_grid

        return corruption_grid
    raise AttributeError(name)
