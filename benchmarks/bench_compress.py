"""CPU latency of structured-pruned, physically compressed models (``prunebench.pruning.compress``).

For each model (ResNet-56, VGG-16-BN; CIFAR shape 3x32x32, 10 classes), method (FT, PFP) and
prune ratio (fraction of prunable weights removed): prune, compress, and report

  * the masked model's effective FLOP ratio (dense / FLOPs with masked multiply-adds skipped),
  * the compressed model's real FLOP ratio (dense / counted FLOPs of the smaller model),
  * measured CPU latency (median, fixed thread count, after warm-up) of the dense, the
    compressed, and a Torch-Pruning ``MagnitudePruner`` (L1 ``MagnitudeImportance``) model whose
    ``pruning_ratio`` is bisected to the same real FLOPs; the speedup over dense, the speedup as a
    fraction of the real FLOP ratio (target >= 0.9) and our latency over Torch-Pruning's
    (target within 5%).

All three are timed as deployed: ``prunebench.pruning.deploy.prepare_for_inference`` copies
(BatchNorm folded into the convolutions, channels_last weights); ``--as-is`` times the modules
unchanged (NCHW, BatchNorm as a separate pass) instead.

Weights are random (Kaiming init, no trained checkpoint) with BatchNorm statistics calibrated on a
few batches of random images; PFP's sensitivity batch S is drawn from a dataset of *random*
CIFAR-shaped uint8 images ("random-cifar-shaped"). Latency depends only on the shapes, so random
weights are fine for timing; the channel choices (and thus which layers shrink) would differ on a
trained model. Dense, ours and Torch-Pruning are timed interleaved, round by round, so machine
load drifts hit all three alike; ratios come from one run.

Run: ``python benchmarks/bench_compress.py [--threads 1 --batch 16 64 --rounds 11 --out results.json]``
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

from prunebench.data.base import DataInfo, Dataset, Split
from prunebench.models import create_model
from prunebench.pruning.base import PruneContext
from prunebench.pruning.compress import compress
from prunebench.pruning.deploy import prepare_for_inference
from prunebench.pruning.efficiency import flops
from prunebench.pruning.masks import PruningState
from prunebench.pruning.registry import METHODS


def random_cifar_shaped(seed: int = 0, n: int = 256) -> Dataset:
    """Uniform random uint8 images in CIFAR-10's shape (NOT CIFAR-10), random labels."""
    g = torch.Generator().manual_seed(seed)

    def split(k: int) -> Split:
        return Split(torch.randint(0, 256, (k, 3, 32, 32), generator=g, dtype=torch.uint8),
                     torch.randint(0, 10, (k,), generator=g))

    info = DataInfo(name="random-cifar-shaped", num_classes=10, in_channels=3, image_size=(32, 32),
                    mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616))
    return Dataset(info, split(n), split(n), split(64))


@torch.no_grad()
def calibrate_bn(model: nn.Module, data: Dataset, batches: int = 4, batch: int = 64) -> nn.Module:
    """Running BN statistics from a few random batches (cumulative average), then eval mode."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None
    model.train()
    for i in range(batches):
        model(data.normalize(data.train.subset(slice(i * batch, (i + 1) * batch)).float_images()))
    return model.eval()


def real_flops(model: nn.Module, example: torch.Tensor) -> float:
    """FLOPs per image of the model as it runs (``prunebench.pruning.efficiency.flops``)."""
    return flops(model, tuple(example.shape[1:])).dense


def tp_magnitude(dense: nn.Module, example: torch.Tensor, pruning_ratio: float, round_to: int = 1) -> nn.Module:
    import torch_pruning as tp

    model = copy.deepcopy(dense).eval()
    last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    with torch.enable_grad():
        pruner = tp.pruner.MagnitudePruner(model, example_inputs=example,
                                           importance=tp.importance.MagnitudeImportance(p=1),
                                           pruning_ratio=pruning_ratio, ignored_layers=[last],
                                           round_to=round_to if round_to > 1 else None)
        pruner.step()
    return model.eval()


def tp_matching(dense: nn.Module, example: torch.Tensor, flops: float, rel_tol: float = 0.005,
                iters: int = 14, round_to: int = 1) -> list[tuple[nn.Module, float, float]]:
    """Bisect Torch-Pruning's channel ``pruning_ratio`` towards real FLOPs ``flops``.

    Returns one (model, pruning_ratio, flops) within ``rel_tol``, or else the two closest models
    bracketing ``flops`` (its uniform channel ratio makes FLOPs a step function of the ratio):
    their latencies are then interpolated linearly in FLOPs.
    """
    lo, hi = 0.0, 0.95
    above: tuple[nn.Module, float, float] | None = None  # fewest FLOPs >= target
    below: tuple[nn.Module, float, float] | None = None  # most FLOPs < target
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        model = tp_magnitude(dense, example, mid, round_to)
        f = real_flops(model, example)
        if abs(f - flops) <= rel_tol * flops:
            return [(model, mid, f)]
        if f > flops:
            lo = mid
            if above is None or f < above[2]:
                above = (model, mid, f)
        else:
            hi = mid
            if below is None or f > below[2]:
                below = (model, mid, f)
    return [m for m in (above, below) if m is not None]


def tp_mark(row: dict) -> str:
    """'*' interpolated, '~' unmatched (coarse round_to steps), '' matched within 0.5%."""
    if row["tp_interpolated"]:
        return "*"
    return "~" if abs(row["tp_flop_ratio"] / row["real_flop_ratio"] - 1) > 0.005 else ""


def tp_at(models: list[tuple[nn.Module, float, float]], lats: list[float], flops: float) -> tuple[float, str, float]:
    """Torch-Pruning latency at ``flops``: the matched model's, or the linear interpolation
    between the two bracketing models. Also returns the ratio(s) and the FLOPs it stands for."""
    if len(models) == 1:  # matched within tolerance, or (coarse round_to) only one side was found
        return lats[0], f"{models[0][1]:.4f}", models[0][2]
    (_, r_a, f_a), (_, r_b, f_b) = models
    t = (flops - f_a) / (f_b - f_a)
    return lats[0] + t * (lats[1] - lats[0]), f"{r_a:.4f}|{r_b:.4f}", flops


@torch.no_grad()
def interleaved_latency(models: dict[str, nn.Module], x: torch.Tensor, rounds: int, warmup: int = 3) -> dict[str, float]:
    """Median seconds per forward of each model, timed round-robin (one call each per round)."""
    for m in models.values():
        m.eval()
        for _ in range(warmup):
            m(x)
    times: dict[str, list[float]] = {k: [] for k in models}
    for _ in range(rounds):
        for k, m in models.items():
            t0 = time.perf_counter()
            m(x)
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=["resnet56", "vgg16_bn"])
    ap.add_argument("--methods", nargs="+", default=["ft", "pfp"])
    ap.add_argument("--ratios", nargs="+", type=float, default=[0.3, 0.5, 0.7])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, nargs="+", default=[16, 64])
    ap.add_argument("--as-is", action="store_true",
                    help="time the models as they are (NCHW, BatchNorm kept) instead of prepare_for_inference copies")
    ap.add_argument("--rounds", type=int, default=11)
    ap.add_argument("--tp-iters", type=int, default=8, help="bisection steps for Torch-Pruning's matching ratio")
    ap.add_argument("--round-to", type=int, nargs="+", default=[1, 16],
                    help="channel blocks (option round_to of ft/pfp, and Torch-Pruning's round_to); 1 = exact ratio")
    ap.add_argument("--num-samples", type=int, default=16, help="PFP's |S| (the formula gives ~180; random data)")
    ap.add_argument("--out", type=Path, default=None, help="write the rows as JSON here")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    data = random_cifar_shaped()
    x_all = data.normalize(data.test.float_images())
    example = x_all[:1]
    rows = []
    print(f"# torch {torch.__version__}, {args.threads} thread(s), batches {args.batch}, {args.rounds} rounds, "
          f"{'models as they are (NCHW, BN)' if args.as_is else 'prepare_for_inference (BN folded, channels_last)'}, "
          f"random-init weights, BN calibrated on random images; PFP S = {args.num_samples} random images", flush=True)
    for name in args.models:
        dense = calibrate_bn(create_model(name), data)
        dense_flops = real_flops(dense, example)
        for method, round_to in [(m, r) for m in args.methods for r in args.round_to]:
            for ratio in args.ratios:
                t0 = time.perf_counter()
                state = PruningState.dense(dense)
                opts = {"num_samples": args.num_samples} if method == "pfp" else {}
                ctx = PruneContext(data=data, seed=0, options={**opts, "round_to": round_to})
                state.update(METHODS.get(method)(dense, state, ratio, ctx))
                prune_s = time.perf_counter() - t0
                small = compress(dense, state, example).eval()
                eff = flops(dense, tuple(example.shape[1:]), state).effective
                real = real_flops(small, example)
                tp_models = tp_matching(dense, example, real, iters=args.tp_iters, round_to=round_to)
                for batch in args.batch:
                    x = x_all.repeat((batch + len(x_all) - 1) // len(x_all), 1, 1, 1)[:batch]
                    timed = {"dense": dense, "ours": small, **{f"tp{i}": m for i, (m, _, _) in enumerate(tp_models)}}
                    if not args.as_is:  # the same deployment preparation for all three
                        timed = {k: prepare_for_inference(m) for k, m in timed.items()}
                    lat = interleaved_latency(timed, x, args.rounds)
                    tp_ms, tp_ratio, tp_flops = tp_at(tp_models, [lat[f"tp{i}"] for i in range(len(tp_models))], real)
                    row = {
                        "model": name, "method": method, "round_to": round_to, "target_ratio": ratio, "achieved_ratio": state.prune_ratio(),
                        "batch": batch, "effective_flop_ratio": dense_flops / eff, "real_flop_ratio": dense_flops / real,
                        "dense_ms": 1e3 * lat["dense"], "ours_ms": 1e3 * lat["ours"],
                        "speedup": lat["dense"] / lat["ours"],
                        "tp_pruning_ratio": tp_ratio, "tp_flop_ratio": dense_flops / tp_flops, "tp_ms": 1e3 * tp_ms,
                        "tp_interpolated": len(tp_models) > 1,
                        "prune_seconds": prune_s,
                    }
                    row["speedup_over_flop_ratio"] = row["speedup"] / row["real_flop_ratio"]
                    row["ours_over_tp_latency"] = lat["ours"] / tp_ms
                    rows.append(row)
                    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
    print()
    print("| model | method | round_to | ratio (achieved) | batch | eff. FLOP ratio (masked) | real FLOP ratio (compressed) | dense ms | "
          "compressed ms | speedup | speedup / real FLOP ratio | TP FLOP ratio | TP ms | ours / TP latency |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['method']} | {r['round_to']} | {r['target_ratio']:.2f} ({r['achieved_ratio']:.4f}) | {r['batch']} | "
              f"{r['effective_flop_ratio']:.3f} | {r['real_flop_ratio']:.3f} | {r['dense_ms']:.1f} | {r['ours_ms']:.1f} | "
              f"{r['speedup']:.3f} | {r['speedup_over_flop_ratio']:.3f} | {r['tp_flop_ratio']:.3f}{tp_mark(r)} | "
              f"{r['tp_ms']:.1f} | "
              f"{r['ours_over_tp_latency']:.3f} |")
    print("\n(*) no Torch-Pruning ratio gives these FLOPs within 0.5%: its latency is interpolated linearly in FLOPs "
          "between the two bracketing models; (~) its nearest model, FLOPs more than 0.5% apart (see the TP FLOP ratio)")
    if args.out is not None:
        args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
