"""The training loop: closed, deterministic under a seed, extended only through callbacks.

Data stays on the device (``DeviceLoader``); the step loop never synchronizes except for an
occasional progress-bar refresh. Callbacks get ``on_start(optimizer, total_steps)`` once, then
``on_step`` after every optimizer step (pruning masks are re-applied there). The epoch with the best
*validation* accuracy is restored at the end; the test split is never looked at here.
"""
from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from prunebench.data.base import Dataset
from prunebench.data.loader import DeviceLoader
from prunebench.errors import UserError
from prunebench.training.config import TrainConfig
from prunebench.training.evaluate import evaluate_split


class TrainingDiverged(UserError):
    """The loss became NaN or infinite; the recipe (usually the learning rate) must change."""


@dataclass
class TrainResult:
    """What a training run did: per-epoch history and the restored (best-validation) epoch."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_val_acc: float = float("nan")
    seconds: float = 0.0
    steps: int = 0  # optimizer steps taken
    images: int = 0  # training images seen (augmented views counted once each)

    @property
    def images_per_s(self) -> float:
        rates = [h["images_per_s"] for h in self.history]
        return sorted(rates)[len(rates) // 2] if rates else float("nan")


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD (Nesterov by default) or AdamW; weight decay on every parameter, as the reference recipes do.

    Uses the fused (single-kernel) implementation where this torch build has one for the parameters'
    device: the same update rule in one kernel instead of a Python loop over the parameters.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        kwargs: dict[str, Any] = dict(lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0,
                                      weight_decay=cfg.weight_decay)
        cls: Callable[..., torch.optim.Optimizer] = torch.optim.SGD
    else:
        kwargs, cls = dict(lr=cfg.lr, weight_decay=cfg.weight_decay), torch.optim.AdamW
    try:
        return cls(params, fused=True, **kwargs)
    except (RuntimeError, TypeError, ValueError):  # no fused kernel for this device / torch version
        return cls(params, **kwargs)


def _call(callbacks: Sequence[Any], hook: str, *args: Any) -> None:
    for cb in callbacks:
        fn = getattr(cb, hook, None)
        if fn is not None:
            fn(*args)


def train(model: nn.Module, data: Dataset, cfg: TrainConfig, *, device: torch.device | str = "cpu",
          callbacks: Sequence[Any] = (), progress: bool = True, desc: str = "train") -> TrainResult:
    """Train ``model`` in place on ``data.train``, validating on ``data.val`` after each epoch."""
    device = torch.device(device)
    torch.manual_seed(cfg.seed)
    model.to(device)
    fwd = torch.compile(model) if cfg.compile else model
    loader = DeviceLoader(data.train, data.info, cfg.batch_size, train=True, device=device, seed=cfg.seed,
                          augment=cfg.augment)
    steps = len(loader)
    if cfg.epochs and steps == 0:
        raise UserError(f"batch size {cfg.batch_size} exceeds the {len(data.train)} training images; lower batch_size")
    opt = make_optimizer(model, cfg)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: cfg.lr_factor(s / max(steps, 1)))
    _call(callbacks, "on_start", opt, cfg.epochs * steps)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cfg.amp and device.type == "cuda" else nullcontext()
    result, best_state, start = TrainResult(), None, time.perf_counter()
    bar = tqdm(total=cfg.epochs * steps, desc=desc, disable=not progress, leave=False, dynamic_ncols=True)
    step = 0
    for epoch in range(cfg.epochs):
        model.train()
        t0, last_refresh = time.perf_counter(), time.perf_counter()
        losses: list[torch.Tensor] = []  # batch means (drop_last: all batches the same size)
        preds: list[torch.Tensor] = []
        labels: list[torch.Tensor] = []
        for x, y in loader:
            with autocast:
                out = fwd(x)
                loss = F.cross_entropy(out.float(), y, label_smoothing=cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            sched.step()
            step += 1
            _call(callbacks, "on_step", step)
            losses.append(loss.detach())
            preds.append(out.detach().argmax(1))
            labels.append(y)
            bar.update(1)
            if progress and time.perf_counter() - last_refresh > 2.0:  # one sync per refresh, not per step
                last_refresh = time.perf_counter()
                loss_mean, acc = _epoch_metrics(losses, preds, labels, epoch, step)
                bar.set_postfix(loss=f"{loss_mean:.3f}", acc=f"{acc:.3f}",
                                img_s=f"{len(losses) * len(y) / (last_refresh - t0):.0f}")
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - t0
        seen = sum(len(t) for t in labels)
        result.steps, result.images = step, result.images + seen
        train_loss, train_acc = _epoch_metrics(losses, preds, labels, epoch, step)
        val = evaluate_split(model, data.val, data.info, device)
        row = {"epoch": epoch + 1, "train_loss": train_loss, "train_acc": train_acc,
               "val_acc": val["acc"], "val_loss": val["loss"], "lr": opt.param_groups[0]["lr"],
               "seconds": seconds, "images_per_s": seen / seconds}
        result.history.append(row)
        if cfg.select_best and not val["acc"] <= result.best_val_acc:  # NaN-safe: first epoch always counts
            result.best_epoch, result.best_val_acc = epoch + 1, val["acc"]
            best_state = copy.deepcopy(model.state_dict())
        _call(callbacks, "on_epoch_end", epoch + 1, row)
        bar.set_postfix(loss=f"{row['train_loss']:.3f}", val_acc=f"{val['acc']:.3f}", img_s=f"{row['images_per_s']:.0f}")
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    elif result.history:
        result.best_epoch, result.best_val_acc = cfg.epochs, result.history[-1]["val_acc"]
    result.seconds = time.perf_counter() - start
    return result


def _epoch_metrics(losses: list[torch.Tensor], preds: list[torch.Tensor], labels: list[torch.Tensor],
                   epoch: int, step: int) -> tuple[float, float]:
    """Mean training loss and accuracy so far (one device sync); raise if the loss is not finite."""
    if not losses:
        return float("nan"), float("nan")
    value = torch.stack(losses).mean().item()
    if not math.isfinite(value):
        raise TrainingDiverged(
            f"training loss became {value} in epoch {epoch + 1} (step {step}); lower the learning rate or set grad_clip"
        )
    return value, (torch.cat(preds) == torch.cat(labels)).float().mean().item()
