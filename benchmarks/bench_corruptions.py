"""Time to build every corrupted copy (corruption x severity) of the Fashion-MNIST test set (10k).

Ours: ``corrupted_split`` (uint8 in, batched torch corruption, uint8 out; no cache) on all 10,000
images, for every corruption x severity, ``--repeats`` times (different seeds); per-cell medians
summed. Two inputs: the native 1 x 28 x 28 images, and the same 3 x 32 x 32 RGB images the
baseline gets (the fair comparison).

Baseline: the ``imagecorruptions`` package (v1.1.2, ImageNet-C constants) called once per image,
the way it is used, in its own virtual environment (it needs an old scikit-image with the
``multichannel`` argument; see ``--ic-python``) through ``benchmarks/_ic_runner.py``. It refuses
images under 32 px, so the 28 x 28 grey images are zero-padded by 2 px to 32 x 32 and stacked to
RGB. It is timed per image on ``--sample`` images per corruption x severity; the median per-image
time x 10,000 is its estimate for the full set (the mean-based estimate is reported too).
Corruptions are interleaved (ours, then the baseline, per corruption) so load drift hits both.
Both cover the same 19 corruptions (15 benchmark + 4 held-out).

Set up the baseline venv once:
    python3 -m venv .venv-bench-ic
    .venv-bench-ic/bin/pip install imagecorruptions==1.1.2 scikit-image==0.19.3 "numpy<1.25" \
        "scipy<1.12" "opencv-python-headless<4.9"
Run:
    python benchmarks/bench_corruptions.py [--sample 200 --repeats 3 --threads 1 --out bench.json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from prunebench.data.idx import read_idx
from prunebench.evaluation.corruptions import SEVERITIES, corrupted_split, ordered_names

REPO = Path(__file__).resolve().parents[1]
FMNIST = Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")


def ours_seconds(x8: torch.Tensor, name: str, severity: int, repeats: int) -> list[float]:
    times = []
    for rep in range(repeats):
        t0 = time.perf_counter()
        corrupted_split(x8, name, severity, seed=rep, cache_dir=None)
        times.append(time.perf_counter() - t0)
    return times


def baseline_seconds(python: str, sample: Path, name: str, workdir: Path) -> dict[str, list[float]]:
    out = workdir / f"ic-{name}.json"
    cmd = [python, str(REPO / "benchmarks" / "_ic_runner.py"), str(sample), str(out), "--names", name]
    subprocess.run(cmd, check=True)
    return json.loads(out.read_text())["times"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ic-python", default=str(REPO / ".venv-bench-ic" / "bin" / "python"))
    ap.add_argument("--sample", type=int, default=200, help="images per corruption x severity for the baseline")
    ap.add_argument("--repeats", type=int, default=3, help="full builds per corruption x severity for ours")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads for ours (default 1: like the single-process baseline; 0 = torch's default)")
    ap.add_argument("--names", nargs="*", default=None)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    grey = torch.from_numpy(read_idx(FMNIST).copy()).unsqueeze(1)  # (10000, 1, 28, 28) uint8
    rgb32 = torch.nn.functional.pad(grey, (2, 2, 2, 2)).repeat(1, 3, 1, 1)  # what the baseline gets
    n_full = len(grey)
    names = args.names or ordered_names()
    res: dict = {"n_images": n_full, "sample": args.sample, "repeats": args.repeats,
                 "threads": torch.get_num_threads(), "torch": torch.__version__, "cells": {}}  # fmt: skip
    corrupted_split(grey[:100], "gaussian_noise", 1)  # warm-up
    with tempfile.TemporaryDirectory() as tmp:
        sample = Path(tmp) / "sample.npy"
        np.save(sample, rgb32[: args.sample].permute(0, 2, 3, 1).contiguous().numpy())
        for name in names:
            cell = {}
            for s in SEVERITIES:
                cell[s] = {"ours_grey28": ours_seconds(grey, name, s, args.repeats),
                           "ours_rgb32": ours_seconds(rgb32, name, s, args.repeats)}  # fmt: skip
            ic = baseline_seconds(args.ic_python, sample, name, Path(tmp))
            for s in SEVERITIES:
                per = ic[f"{name}-{s}"]
                cell[s]["ic_median_per_image"] = statistics.median(per)
                cell[s]["ic_mean_per_image"] = statistics.fmean(per)
            res["cells"][name] = cell
            ours = sum(statistics.median(cell[s]["ours_rgb32"]) for s in SEVERITIES)
            ic_est = sum(cell[s]["ic_median_per_image"] for s in SEVERITIES) * n_full
            print(f"{name:18s} ours(rgb32) {ours:7.2f} s   imagecorruptions {ic_est:8.1f} s   x{ic_est / ours:6.1f}", flush=True)
    cells = res["cells"]
    tot = {
        "ours_grey28": sum(statistics.median(c[s]["ours_grey28"]) for c in cells.values() for s in SEVERITIES),
        "ours_rgb32": sum(statistics.median(c[s]["ours_rgb32"]) for c in cells.values() for s in SEVERITIES),
        "ic_median_est": sum(c[s]["ic_median_per_image"] for c in cells.values() for s in SEVERITIES) * n_full,
        "ic_mean_est": sum(c[s]["ic_mean_per_image"] for c in cells.values() for s in SEVERITIES) * n_full,
    }
    tot["ratio_rgb32"] = tot["ic_median_est"] / tot["ours_rgb32"]
    tot["ratio_grey28"] = tot["ic_median_est"] / tot["ours_grey28"]
    tot["ratio_rgb32_mean_based"] = tot["ic_mean_est"] / tot["ours_rgb32"]
    res["total"] = tot
    print(f"\nall {len(cells)} corruptions x 5 severities on {n_full} images "
          f"(torch threads {res['threads']}; baseline single process, {args.sample} images per cell):")  # fmt: skip
    print(f"  ours, 3x32x32 RGB (baseline's input): {tot['ours_rgb32']:8.1f} s")
    print(f"  ours, 1x28x28 grey (native):          {tot['ours_grey28']:8.1f} s")
    print(f"  imagecorruptions, per image (est.):   {tot['ic_median_est']:8.1f} s  (mean-based {tot['ic_mean_est']:.1f} s)")
    print(f"  speed-up: x{tot['ratio_rgb32']:.1f} on the same RGB input, x{tot['ratio_grey28']:.1f} native")
    if args.out:
        args.out.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    sys.exit(main())
