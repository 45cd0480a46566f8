"""Trainer throughput against (a) a conventional DataLoader loop with per-sample transforms and
(b) a compute-only loop on one pre-made batch: same model, batch size, optimizer, in one run.

    .venv/bin/python benchmarks/bench_trainer.py --model lenet5 --images 20000 --rounds 5

Reports the median images/s of each over interleaved rounds and the ratios
ours / dataloader (target >= 1.8) and ours / compute-only (target >= 0.95).
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset as TorchDataset

from prunebench.data import load_dataset
from prunebench.models import create_model
from prunebench.training import TrainConfig, make_optimizer, train


class PerSampleDataset(TorchDataset):
    """How most pruning code bases feed data: one image at a time through a transform pipeline."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, mean: float, std: float, crop: int, flip: bool) -> None:
        self.x, self.y, self.mean, self.std, self.crop, self.flip = x, y, mean, std, crop, flip

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        img = self.x[i].float() / 255.0  # ToTensor
        if self.crop:  # RandomCrop(padding)
            img = F.pad(img, (self.crop,) * 4)
            dy, dx = torch.randint(0, 2 * self.crop + 1, (2,)).tolist()
            img = img[:, dy : dy + self.x.shape[2], dx : dx + self.x.shape[3]]
        if self.flip and torch.rand(()) < 0.5:  # RandomHorizontalFlip
            img = img.flip(2)
        return (img - self.mean) / self.std, int(self.y[i])  # Normalize


def step_loop(model, batches, cfg: TrainConfig) -> float:
    """Images/s of the plain SGD step over an iterable of batches."""
    opt = make_optimizer(model, cfg)
    model.train()
    n, t0 = 0, time.perf_counter()
    for x, y in batches:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        n += len(y)
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="lenet5")
    ap.add_argument("--images", type=int, default=20000)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="DataLoader num_workers to try")
    args = ap.parse_args()
    data = load_dataset("fashion-mnist", train_limit=args.images)
    info = data.info
    kw = {"in_channels": info.in_channels, "num_classes": info.num_classes, "image_size": info.image_size[0]}
    cfg = TrainConfig(epochs=1, batch_size=args.batch_size, select_best=False)
    steps = len(data.train) // args.batch_size
    results: dict[str, list[float]] = {"ours": [], "compute-only": []}
    results.update({f"dataloader(workers={w})": [] for w in args.workers})
    for r in range(args.rounds):
        torch.manual_seed(r)
        res = train(create_model(args.model, **kw), data, cfg, progress=False)
        results["ours"].append(res.history[0]["images_per_s"])
        for w in args.workers:
            ds = PerSampleDataset(data.train.x, data.train.y, info.mean[0], info.std[0], info.crop_padding, info.hflip)
            loader = DataLoader(ds, batch_size=args.batch_size, shuffle=True, drop_last=True, num_workers=w,
                                persistent_workers=False)
            results[f"dataloader(workers={w})"].append(step_loop(create_model(args.model, **kw), loader, cfg))
        x, y = next(iter(DataLoader(PerSampleDataset(data.train.x, data.train.y, info.mean[0], info.std[0], 0, False),
                                    batch_size=args.batch_size)))
        results["compute-only"].append(step_loop(create_model(args.model, **kw), [(x, y)] * steps, cfg))
    med = {k: statistics.median(v) for k, v in results.items()}
    best_dl = max(v for k, v in med.items() if k.startswith("dataloader"))
    print(f"model {args.model}, batch {args.batch_size}, {len(data.train)} images, {args.rounds} rounds, "
          f"torch threads {torch.get_num_threads()}")
    print(f"{'loop':28s} {'median img/s':>14s}  all rounds")
    for k, v in results.items():
        print(f"{k:28s} {med[k]:14.0f}  {' '.join(f'{x:.0f}' for x in v)}")
    # Ratios within each round (the loops run back to back) resist drift in machine load better.
    dl_keys = [k for k in results if k.startswith("dataloader")]
    per_dl = [results["ours"][r] / max(results[k][r] for k in dl_keys) for r in range(args.rounds)]
    per_co = [results["ours"][r] / results["compute-only"][r] for r in range(args.rounds)]
    print(f"ours / best dataloader = {med['ours'] / best_dl:.2f}x of medians, {statistics.median(per_dl):.2f}x median "
          f"per-round ratio (target >= 1.8)")
    print(f"ours / compute-only    = {med['ours'] / med['compute-only']:.1%} of medians, "
          f"{statistics.median(per_co):.1%} median per-round ratio (target >= 95%)")


if __name__ == "__main__":
    main()
