"""Trainer throughput against (a) a conventional DataLoader loop with per-sample transforms and
(b) a compute-only loop on one pre-made batch: same model, batch size, optimizer, in one run.
Each loop is timed on its second pass over the data (steady state, workers already started).

    .venv/bin/python benchmarks/bench_trainer.py --model lenet5 --images 20000 --rounds 5 --pairs 12

(a) rounds of ours and every DataLoader variant: median images/s and ratios (target >= 1.8x);
(b) rounds of ours, compute-only on one repeated batch (the issue's baseline) and compute-only on
    distinct pre-made batches, back to back: median per-round ratios (target >= 95%).
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset as TorchDataset

from prunebench.data import load_dataset
from prunebench.models import create_model
from prunebench.training import TrainConfig, make_optimizer, train


class PerSampleDataset(TorchDataset):
    """How most pruning code bases feed data: one image at a time through a transform pipeline.

    ``pil=True`` replays what torchvision's ``FashionMNIST``/``CIFAR10`` datasets do with the usual
    ``RandomCrop(padding) -> RandomHorizontalFlip -> ToTensor -> Normalize`` transforms (torchvision
    itself does not import with the CPU torch build): a PIL image per sample, PIL crop and flip, a
    NumPy round trip to a float tensor, then normalization. ``pil=False`` is the leanest per-sample
    pipeline possible (tensor ops only), a lower bound on what a DataLoader costs.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, mean: float, std: float, crop: int, flip: bool,
                 pil: bool) -> None:
        self.x, self.y, self.mean, self.std, self.crop, self.flip, self.pil = x, y, mean, std, crop, flip, pil
        self.np = x.permute(0, 2, 3, 1).squeeze(3).numpy() if x.shape[1] == 1 else x.permute(0, 2, 3, 1).numpy()

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return (self._pil(i) if self.pil else self._tensor(i)), int(self.y[i])

    def _tensor(self, i: int) -> torch.Tensor:
        img = self.x[i].float() / 255.0  # ToTensor
        if self.crop:  # RandomCrop(padding)
            img = F.pad(img, (self.crop,) * 4)
            dy, dx = torch.randint(0, 2 * self.crop + 1, (2,)).tolist()
            img = img[:, dy : dy + self.x.shape[2], dx : dx + self.x.shape[3]]
        if self.flip and torch.rand(()) < 0.5:  # RandomHorizontalFlip
            img = img.flip(2)
        return (img - self.mean) / self.std  # Normalize

    def _pil(self, i: int) -> torch.Tensor:
        img = Image.fromarray(self.np[i])  # torchvision datasets hand PIL images to the transforms
        w, h = img.size
        if self.crop:  # RandomCrop(size, padding): pad, then crop at a random corner
            padded = Image.new(img.mode, (w + 2 * self.crop, h + 2 * self.crop))
            padded.paste(img, (self.crop, self.crop))
            dy, dx = torch.randint(0, 2 * self.crop + 1, (2,)).tolist()
            img = padded.crop((dx, dy, dx + w, dy + h))
        if self.flip and torch.rand(1) < 0.5:  # RandomHorizontalFlip
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        arr = torch.from_numpy(np.array(img, np.uint8, copy=True))  # ToTensor
        t = arr.view(h, w, -1).permute(2, 0, 1).contiguous().to(torch.float32).div(255)
        mean = torch.as_tensor([self.mean], dtype=t.dtype)  # Normalize
        std = torch.as_tensor([self.std], dtype=t.dtype)
        return t.sub_(mean[:, None, None]).div_(std[:, None, None])


def timed_pass(model: torch.nn.Module, batches, cfg: TrainConfig) -> float:
    """Images/s of the second of two passes of the plain SGD step over ``batches`` (the first warms up)."""
    opt = make_optimizer(model, cfg)
    model.train()
    rate = 0.0
    for _ in range(2):
        n, t0 = 0, time.perf_counter()
        for x, y in batches:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            n += len(y)
        rate = n / (time.perf_counter() - t0)
    return rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="lenet5")
    ap.add_argument("--images", type=int, default=20000)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=5, help="rounds of (a): ours and every DataLoader loop")
    ap.add_argument("--pairs", type=int, default=12, help="rounds of (b): ours and both compute-only loops")
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="DataLoader num_workers to try")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_dataset("fashion-mnist", train_limit=args.images)
    info = data.info
    kw = {"in_channels": info.in_channels, "num_classes": info.num_classes, "image_size": info.image_size[0]}
    cfg = TrainConfig(epochs=2, batch_size=args.batch_size, select_best=False)
    steps = len(data.train) // args.batch_size

    def ours() -> float:  # second epoch of prunebench.training.train: steady state
        return train(create_model(args.model, **kw), data, cfg, progress=False).history[-1]["images_per_s"]

    def compute_only() -> float:  # the baseline: one pre-made batch, repeated
        plain = PerSampleDataset(data.train.x, data.train.y, info.mean[0], info.std[0], 0, False, False)
        x, y = next(iter(DataLoader(plain, batch_size=args.batch_size)))
        return timed_pass(create_model(args.model, **kw), [(x, y)] * steps, cfg)

    # Every batch of an epoch made beforehand (normalized float, distinct images): all data work is
    # removed, but each step reads fresh inputs, as any real training loop must.
    plain = PerSampleDataset(data.train.x, data.train.y, info.mean[0], info.std[0], 0, False, False)
    premade = [(x.clone(), y.clone()) for x, y in DataLoader(plain, batch_size=args.batch_size, drop_last=True)]

    def compute_only_distinct() -> float:
        return timed_pass(create_model(args.model, **kw), premade, cfg)

    loaders = {f"dataloader-{kind}(workers={w})": (kind == "torchvision", w)
               for kind in ("torchvision", "tensor") for w in args.workers}
    results: dict[str, list[float]] = {"ours": [], **{k: [] for k in loaders}}
    for r in range(args.rounds):  # (a)
        torch.manual_seed(r)
        results["ours"].append(ours())
        for key, (pil, w) in loaders.items():
            ds = PerSampleDataset(data.train.x, data.train.y, info.mean[0], info.std[0], info.crop_padding,
                                  info.hflip, pil)
            loader = DataLoader(ds, batch_size=args.batch_size, shuffle=True, drop_last=True, num_workers=w,
                                persistent_workers=w > 0)
            results[key].append(timed_pass(create_model(args.model, **kw), loader, cfg))
            del loader  # stop persistent workers before the next loop is timed
    # (b) The machine's speed drifts by up to 2x within seconds (shared cores), so ours and the two
    # compute-only loops run back to back, the order reversed every other round (ABC CBA).
    trio = {"ours": ours, "compute-only": compute_only, "compute-only-distinct": compute_only_distinct}
    adjacent: dict[str, list[float]] = {k: [] for k in trio}
    for p in range(args.pairs):
        torch.manual_seed(p)
        for k in (list(trio) if p % 2 == 0 else list(trio)[::-1]):
            adjacent[k].append(trio[k]())
    med = {k: statistics.median(v) for k, v in results.items() if v}
    print(f"model {args.model}, batch {args.batch_size}, {len(data.train)} images, torch threads "
          f"{torch.get_num_threads()}; images/s of the second pass")
    if args.rounds:
        print(f"(a) {args.rounds} rounds\n{'loop':36s} {'median img/s':>13s}  all rounds")
        for k, v in results.items():
            print(f"{k:36s} {med[k]:13.0f}  {' '.join(f'{x:.0f}' for x in v)}")
        for kind in ("torchvision", "tensor"):
            keys = [k for k in loaders if k.startswith(f"dataloader-{kind}")]
            best = max(med[k] for k in keys)
            per = [results["ours"][r] / max(results[k][r] for k in keys) for r in range(args.rounds)]
            print(f"ours / best dataloader-{kind:12s} = {med['ours'] / best:.2f}x of medians, "
                  f"{statistics.median(per):.2f}x median per-round ratio (target >= 1.8)")
    if args.pairs >= 2:
        print(f"(b) {args.pairs} rounds of the three loops back to back (ABC CBA)")
        for k, v in adjacent.items():
            print(f"{k:36s} {statistics.median(v):13.0f}  " + " ".join(f"{x:.0f}" for x in v))
        for base in ("compute-only", "compute-only-distinct"):
            ratios = [a / b for a, b in zip(adjacent["ours"], adjacent[base])]
            q1, _, q3 = statistics.quantiles(ratios, n=4)
            print(f"ours / {base:22s} = {statistics.median(ratios):.1%} median per-round ratio "
                  f"(quartiles {q1:.1%}-{q3:.1%}; target >= 95%)")


if __name__ == "__main__":
    main()
