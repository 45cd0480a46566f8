"""Mask machinery cost, in one run, against torch.nn.utils.prune and against training itself.

    .venv/bin/python benchmarks/bench_masks.py --model resnet56 --rounds 7 --threads 1 --step-rounds 8

(a) ``wt`` masks: ``prune(model, "wt", r)`` (dense state + one global linear-time selection +
    one fused multiply) vs ``torch.nn.utils.prune.global_unstructured(L1Unstructured)`` on the
    same weights; median over interleaved rounds, each on a fresh copy. Target: ratio <= 1.
(b) SiPP masks (|S| from the formula, ``sipp`` defaults) vs one training epoch of 45,000
    32x32x3 images: the epoch is *estimated* by timing ``--epoch-steps`` SGD steps of batch 128
    on random-but-fixed images and extrapolating to ceil(45000 / 128) steps. Target: ratio < 1.
(c) one training step (forward + backward + SGD step) of a model pruned to ``--ratio``:
    ours = plain forward, then ``state.apply()`` (one ``torch._foreach_mul_``) after the step;
    torch = the same model with ``torch.nn.utils.prune`` forward pre-hooks (``weight_orig *
    weight_mask`` every forward). Median per step over interleaved rounds (batch ``--step-batch``,
    default ``--batch``). Target: ratio < 1. The hooks' extra work (one weight-sized multiply
    per layer forward and backward) is small next to a conv net's step, so expect a few percent.
Use ``--threads 1`` on a shared machine: with OpenMP threads competing for cores, per-op
scheduling delays dominate small ops and make (a) mostly noise.
"""
from __future__ import annotations

import argparse
import copy
import math
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import prune as tprune

from prunebench.data.base import DataInfo, Dataset, Split
from prunebench.models import create_model
from prunebench.pruning import PruningState, Selection, prune
from prunebench.pruning.sensitivity import sample_size


def fake_cifar(n_train: int, n_val: int, seed: int = 0) -> Dataset:
    """Random-but-fixed uint8 32x32x3 images with CIFAR-10's normalization."""
    g = torch.Generator().manual_seed(seed)
    info = DataInfo("fake-cifar", 10, 3, (32, 32), (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))

    def split(n: int) -> Split:
        return Split(torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8),
                     torch.randint(0, 10, (n,), generator=g))

    return Dataset(info, split(n_train), split(n_val), split(16))


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench_wt(base: nn.Module, ratio: float, rounds: int) -> tuple[float, float]:
    ours, theirs = [], []
    for _ in range(rounds):
        m1, m2 = copy.deepcopy(base), copy.deepcopy(base)
        ours.append(timed(lambda: prune(m1, "wt", ratio)))
        params = [(mod, "weight") for mod in m2.modules() if isinstance(mod, (nn.Conv2d, nn.Linear))]
        theirs.append(timed(lambda: tprune.global_unstructured(params, pruning_method=tprune.L1Unstructured, amount=ratio)))
    return statistics.median(ours), statistics.median(theirs)


def make_sgd(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.05, momentum=0.9, weight_decay=5e-4)


def train_steps(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, batch: int,
                after_step=None, opt: torch.optim.Optimizer | None = None, offset: int = 0) -> list[float]:
    opt = opt or make_sgd(model)
    model.train()
    times = []
    for s in range(offset, offset + steps):
        xb, yb = x[(s * batch) % len(x):][:batch], y[(s * batch) % len(y):][:batch]
        t0 = time.perf_counter()
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if after_step is not None:
            after_step()
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="resnet56")
    ap.add_argument("--ratio", type=float, default=0.9)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--epoch-steps", type=int, default=4, help="SGD steps timed for the epoch estimate")
    ap.add_argument("--step-rounds", type=int, default=30, help="interleaved steps of each model for (c)")
    ap.add_argument("--step-batch", type=int, default=0, help="batch size for (c) (0 = --batch)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = leave as is)")
    ap.add_argument("--only", choices=["a", "b", "c"], nargs="+", default=["a", "b", "c"], help="parts to run")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    base = create_model(args.model)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, model {args.model}, "
          f"{sum(p.numel() for p in base.parameters()):,} params, ratio {args.ratio}")

    if "a" in args.only:
        ours, theirs = bench_wt(base, args.ratio, args.rounds)
        print(f"(a) wt masks: ours {ours * 1e3:.1f} ms, torch global_unstructured {theirs * 1e3:.1f} ms, "
              f"ratio {ours / theirs:.2f} (median of {args.rounds})")

    data = fake_cifar(n_train=args.batch * (args.epoch_steps + 1), n_val=5000)
    x = data.normalize(data.train.float_images())
    y = data.train.y
    if "b" in args.only:
        bench_sipp(base, data, x, y, args)
    if "c" in args.only:
        bench_step(base, x, y, args)


def bench_sipp(base: nn.Module, data: Dataset, x: torch.Tensor, y: torch.Tensor, args: argparse.Namespace) -> None:
    model = copy.deepcopy(base)
    train_steps(model, x, y, 1, args.batch)  # warm-up (also for the epoch estimate below)
    step = statistics.median(train_steps(model, x, y, args.epoch_steps, args.batch))
    epoch = step * math.ceil(45000 / args.batch)
    model = copy.deepcopy(base)
    t_sipp = timed(lambda: prune(model, "sipp", args.ratio, data=data))
    n_s = sample_size(model, Selection().layers(model), x[:1])
    print(f"(b) sipp masks (|S| = {n_s}): {t_sipp:.1f} s; one epoch of 45,000 images estimated at {epoch:.1f} s "
          f"({args.epoch_steps} timed SGD steps of batch {args.batch}, median {step:.3f} s/step, extrapolated "
          f"to {math.ceil(45000 / args.batch)} steps); ratio {t_sipp / epoch:.3f}")


def bench_step(base: nn.Module, x: torch.Tensor, y: torch.Tensor, args: argparse.Namespace) -> None:
    ours_m = copy.deepcopy(base)
    st = prune(ours_m, "wt", args.ratio)
    torch_m = copy.deepcopy(base)
    PruningState.dense(torch_m).update(st.masks).to_torch_prune(torch_m)
    dense_m = copy.deepcopy(base)  # unmasked: the zero-overhead reference
    sb = args.step_batch or args.batch
    runs = {"dense": (dense_m, None), "ours": (ours_m, st.apply), "torch": (torch_m, None)}
    opts = {k: make_sgd(m) for k, (m, _) in runs.items()}
    times: dict[str, list[float]] = {k: [] for k in runs}
    for r in range(args.step_rounds + 1):  # round 0 warms up; one step of each per round, interleaved
        for k, (m, after) in runs.items():
            dt = train_steps(m, x, y, 1, sb, after, opt=opts[k], offset=r)[0]
            if r:
                times[k].append(dt)
    st.verify()
    med = {k: statistics.median(v) for k, v in times.items()}
    # Per-round differences to the dense step (adjacent in time) resist load drift better than medians.
    over = {k: statistics.median([t - d for t, d in zip(times[k], times["dense"])]) for k in ("ours", "torch")}
    t_apply = statistics.median([timed(st.apply) for _ in range(50)])
    print(f"(c) train step (batch {sb}), median of {args.step_rounds} interleaved steps: dense {med['dense'] * 1e3:.2f} ms, "
          f"ours {med['ours'] * 1e3:.2f} ms (incl. apply {t_apply * 1e3:.3f} ms), torch.nn.utils.prune hooks "
          f"{med['torch'] * 1e3:.2f} ms; step ratio ours / hooks {med['ours'] / med['torch']:.3f}; overhead over dense "
          f"(median per-round difference): ours {over['ours'] * 1e3:.3f} ms, hooks {over['torch'] * 1e3:.3f} ms")


if __name__ == "__main__":
    main()
