"""Efficiency of a (pruned) model: parameter counts, dense / effective FLOPs, CPU latency.

Effective FLOPs count what an ideal sparse kernel would do: each Conv2d / Linear layer's FLOPs
scaled by that layer's weight density (Blalock et al. 2020, "What is the state of neural network
pruning?", report FLOPs this way). Everything else (BN, pooling, additions) is counted dense, as
``torch.utils.flop_counter.FlopCounterMode`` sees it (it counts 2 FLOPs per multiply-add and
only matmul / conv-like ops). Latency is measured on the model as it is: masked weights are
still dense tensors, so unstructured pruning does not change it; structured compression does.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from prunebench.pruning.masks import PruningState
from prunebench.pruning.selection import PRUNABLE_TYPES, Selection, module_name


class ParamCount(NamedTuple):
    total: int  # every parameter of the model
    prunable: int  # weights of the selected Conv2d / Linear layers
    nonzero: int  # parameters pruning has not removed (total minus masked-out weights)


class FlopCount(NamedTuple):
    dense: float  # FLOPs per image of the model as it runs (2 per multiply-add)
    effective: float  # the same with each Conv2d / Linear layer scaled by its weight density


def count_params(model: nn.Module, state: PruningState | None = None) -> ParamCount:
    """Total / prunable / not-pruned parameter counts (prunable per the state's selection)."""
    total = sum(p.numel() for p in model.parameters())
    if state is None:
        prunable = sum(p.numel() for p in Selection().weights(model).values())
        return ParamCount(total, prunable, total)
    return ParamCount(total, state.total, total - (state.total - state.kept))


def _example(model: nn.Module, input_shape: Sequence[int]) -> torch.Tensor:
    shape = tuple(int(s) for s in input_shape)
    if len(shape) == 3:
        shape = (1, *shape)
    p = next(model.parameters(), None)
    device = p.device if p is not None else torch.device("cpu")
    dtype = p.dtype if p is not None and p.is_floating_point() else torch.float32
    return torch.zeros(shape, device=device, dtype=dtype)


def flops(model: nn.Module, input_shape: Sequence[int], state: PruningState | None = None) -> FlopCount:
    """Dense and effective FLOPs per image for inputs of ``input_shape`` ((C, H, W) or (N, C, H, W))."""
    x = _example(model, input_shape)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)
    counts = counter.get_flop_counts()
    dense = float(sum(counts.get("Global", {}).values()))
    densities = {module_name(k): d for k, d in state.layer_densities().items()} if state is not None else {}
    root = type(model).__name__
    saved = 0.0
    for name, module in model.named_modules():
        if not isinstance(module, PRUNABLE_TYPES) or name not in densities:
            continue
        layer_flops = float(sum(counts.get(f"{root}.{name}" if name else root, {}).values()))
        saved += layer_flops * (1.0 - densities[name])
    n = x.shape[0]
    return FlopCount(dense / n, (dense - saved) / n)


def measure_latency(model: nn.Module, input_shape: Sequence[int], threads: int = 1, warmup: int = 5,
                    repeats: int = 30) -> float:
    """Median wall-clock seconds of one inference forward pass (eval mode, no grad, fixed threads).

    ``torch.set_num_threads(threads)`` holds during the measurement and is restored afterwards.
    """
    x = _example(model, input_shape)
    old_threads = torch.get_num_threads()
    was_training = model.training
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    times: list[float] = []
    try:
        torch.set_num_threads(int(threads))
        model.eval()
        with torch.inference_mode():
            for _ in range(int(warmup)):
                model(x)
            sync()
            for _ in range(int(repeats)):
                t0 = time.perf_counter()
                model(x)
                sync()
                times.append(time.perf_counter() - t0)
    finally:
        torch.set_num_threads(old_threads)
        model.train(was_training)
    return statistics.median(times)
