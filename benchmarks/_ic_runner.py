"""Timing runner for the `imagecorruptions` package (run by bench_corruptions.py in its own venv).

Usage: python _ic_runner.py IMAGES.npy OUT.json [--names a,b,...]
IMAGES.npy: uint8 (N, H, W, 3) images, H, W >= 32 (imagecorruptions refuses smaller ones).
Calls ``imagecorruptions.corrupt`` once per image, the way it is meant to be used, and writes the
per-image wall times (seconds) for every corruption x severity to OUT.json.
"""
from __future__ import annotations

import json
import sys
import time
import warnings

import numpy as np


def main() -> None:
    warnings.simplefilter("ignore")  # skimage / numpy deprecation chatter from the pinned versions
    from imagecorruptions import corrupt, get_corruption_names

    images = np.load(sys.argv[1], allow_pickle=False)
    names = get_corruption_names("all")
    if "--names" in sys.argv:
        wanted = sys.argv[sys.argv.index("--names") + 1].split(",")
        names = [n for n in names if n in wanted]
    np.random.seed(0)
    corrupt(images[0], corruption_name="gaussian_noise", severity=1)  # warm imports
    times: dict[str, list[float]] = {}
    for name in names:
        for severity in range(1, 6):
            per = []
            for img in images:
                t0 = time.perf_counter()
                out = corrupt(img, corruption_name=name, severity=severity)
                per.append(time.perf_counter() - t0)
                assert out.shape == img.shape and out.dtype == np.uint8, (name, out.shape, out.dtype)
            times[f"{name}-{severity}"] = per
    with open(sys.argv[2], "w") as f:
        json.dump({"names": names, "n_images": len(images), "shape": list(images.shape[1:]), "times": times}, f)


if __name__ == "__main__":
    main()
