"""CPU latency of exported models: onnxruntime vs PyTorch, dense vs FT-50% compressed (issue 14).

For ResNet-56 and VGG-16-BN (CIFAR shape 3x32x32, 10 classes): prune FT at ratio 0.5, write the
compressed, BatchNorm-folded ONNX file with ``prunebench.export.export`` (verified in onnxruntime on
the images, max abs logit difference printed) and the unpruned-shaped one with ``dense_onnx``; then
time, interleaved round by round so that load drifts hit all four alike, one forward of

  * PyTorch dense and PyTorch compressed, as deployed (``prepare_for_inference``: BN folded,
    channels_last), ``torch.set_num_threads(threads)``;
  * onnxruntime dense and onnxruntime compressed (CPU provider, ``threads`` intra-op, 1 inter-op,
    sequential execution).

Medians over ``--rounds`` rounds. Weights are random (BN calibrated on random images, as in
bench_compress.py): latency depends on the shapes only.

Run: ``python benchmarks/bench_export.py [--threads 1 --batch 1 16 --rounds 31 --round-to 1 8]``
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_compress import calibrate_bn, random_cifar_shaped  # noqa: E402

from prunebench.export import Source, dense_onnx, export  # noqa: E402
from prunebench.export.formats.onnx import INPUT, runtime  # noqa: E402
from prunebench.models import create_model  # noqa: E402
from prunebench.pruning import prune  # noqa: E402
from prunebench.pruning.compress import compress  # noqa: E402
from prunebench.pruning.deploy import prepare_for_inference  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=["resnet56", "vgg16_bn"])
    ap.add_argument("--ratio", type=float, default=0.5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--rounds", type=int, default=31)
    ap.add_argument("--round-to", type=int, nargs="+", default=[1, 8],
                    help="FT's round_to: kept channels a multiple of this (1 = exact ratio)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    data = random_cifar_shaped()
    images = data.normalize(data.test.float_images())
    session = runtime()
    print(f"# torch {torch.__version__}, capability {torch.backends.cpu.get_cpu_capability()}, {args.threads} "
          f"thread(s), {args.rounds} rounds, FT {args.ratio}, random weights", flush=True)
    print(f"{'model':10s}{'batch':>6s}{'pt dense':>10s}{'pt ft':>9s}{'ort dense':>11s}{'ort ft':>9s}"
          f"{'pt speedup':>12s}{'ort speedup':>13s}{'ort/pt dense':>14s}{'ort/pt ft':>11s}  (ms, medians)")
    with tempfile.TemporaryDirectory() as folder:
        for name, round_to in [(m, r) for m in args.models for r in args.round_to]:
            dense = calibrate_bn(create_model(name), data)
            pruned = calibrate_bn(create_model(name), data)
            pruned.load_state_dict(dense.state_dict())
            state = prune(pruned, "ft", args.ratio, seed=0, round_to=round_to)
            src = Source(pruned.eval(), state, {}, images)
            rep = export(src, "onnx", Path(folder) / f"{name}-ft.onnx")
            dpath = dense_onnx(Source(dense, None, {}, images), Path(folder) / f"{name}-dense.onnx")
            pt = {"dense": prepare_for_inference(dense), "ft": prepare_for_inference(compress(pruned, state, images[:1]))}
            ort = {"dense": session(dpath, threads=args.threads), "ft": session(rep.path, threads=args.threads)}
            for batch in args.batch:
                x = images.repeat((batch + len(images) - 1) // len(images), 1, 1, 1)[:batch].contiguous()
                xn = x.numpy()
                calls = {("pt", k): (lambda m=m: m(x)) for k, m in pt.items()}
                calls.update({("ort", k): (lambda s=s: s.run(None, {INPUT: xn})) for k, s in ort.items()})
                times: dict = {k: [] for k in calls}
                with torch.inference_mode():
                    for _ in range(3):
                        for f in calls.values():
                            f()
                    for _ in range(args.rounds):
                        for k, f in calls.items():
                            t0 = time.perf_counter()
                            f()
                            times[k].append(time.perf_counter() - t0)
                ms = {k: 1e3 * statistics.median(v) for k, v in times.items()}
                print(f"{name + ('' if round_to == 1 else f'/r{round_to}'):10s}{batch:6d}{ms['pt', 'dense']:10.2f}{ms['pt', 'ft']:9.2f}{ms['ort', 'dense']:11.2f}"
                      f"{ms['ort', 'ft']:9.2f}{ms['pt', 'dense'] / ms['pt', 'ft']:11.2f}x"
                      f"{ms['ort', 'dense'] / ms['ort', 'ft']:12.2f}x{ms['ort', 'dense'] / ms['pt', 'dense']:14.2f}"
                      f"{ms['ort', 'ft'] / ms['pt', 'ft']:11.2f}", flush=True)
            print(f"# {name} round_to {round_to}: FT {args.ratio} params {rep.params_before:,} -> {rep.params_after:,}, ONNX "
                  f"{rep.bytes / 1e6:.2f} MB, max abs logit diff (onnxruntime vs PyTorch) {rep.max_abs_diff:.1e}",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
