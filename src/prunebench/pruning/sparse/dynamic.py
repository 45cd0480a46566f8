"""Dynamic sparse training: the mask moves during training, every layer's number of active weights does not.

Every ``update_every`` optimizer steps until ``end`` x the training steps, in each sparse layer l:

* drop the k_l active connections with the smallest |w|, k_l = f(t) x (active weights of l);
* grow k_l connections among those that were inactive before this update (a connection dropped now is
  not regrown now), chosen by the rule: ``set`` uniformly at random (Mocanu et al., "Scalable training of
  artificial neural networks with adaptive sparse connectivity inspired by network science", Nature
  Communications 2018), ``rigl`` by the largest |dL/dw| of the dense gradient of the current batch
  (Evci et al., "Rigging the Lottery: Making All Tickets Winners", ICML 2020, Sec. 3);
* grown weights start at 0 and their optimizer state (momentum, Adam moments) is reset to 0.

f(t) = (alpha / 2) (1 + cos(pi t / T_end)) (RigL's cosine decay; ``decay: constant`` keeps alpha, SET's
original zeta). The dense gradient is the one the trainer's backward pass just computed: gradients of
pruned weights are never masked (masks zero the weights after each step), so ``p.grad`` after the step
is dL/dw at every connection, active or not, at no extra cost.
"""
from __future__ import annotations

import math
from typing import Any, Literal

import torch
from pydantic import Field
from torch import Tensor

from prunebench.errors import UserError
from prunebench.pruning.allocation import _top_live
from prunebench.pruning.masks import PruningState
from prunebench.pruning.sparse.registry import UPDATES
from prunebench.registry import Options


class UpdateOptions(Options):
    """The schedule of mask updates (shared by every rule)."""

    update_every: int = Field(100, ge=1, description="Delta-T: optimizer steps between mask updates")
    fraction: float = Field(0.3, gt=0.0, le=1.0, description="alpha: fraction of a layer's active weights "
                                                             "rewired at the first update")
    end: float = Field(0.75, gt=0.0, le=1.0, description="T_end as a fraction of the training steps "
                                                         "(no update after it)")
    decay: Literal["cosine", "constant"] = Field("cosine", description="update fraction over time")


@UPDATES.register("set", options=UpdateOptions, grows_by="random", label="SET")
def set_grow(weight: Tensor, grad: Tensor | None, generator: torch.Generator) -> Tensor:
    """SET: drop the smallest |w|, regrow uniformly at random (Mocanu et al. 2018)."""
    return torch.rand(weight.numel(), generator=generator).to(weight.device)


@UPDATES.register("rigl", options=UpdateOptions, grows_by="gradient magnitude", label="RigL")
def rigl_grow(weight: Tensor, grad: Tensor | None, generator: torch.Generator) -> Tensor:
    """RigL: drop the smallest |w|, regrow the largest |dL/dw| (Evci et al. 2020)."""
    if grad is None:
        raise RuntimeError("RigL needs the dense gradient after the optimizer step, but the weight has no .grad; "
                           "do not clear gradients before the callbacks run")
    return grad.detach().abs().reshape(-1).float()


class DynamicSparsity:
    """Trainer callback: re-applies the masks after every step and rewires them on schedule.

    ``state``: the masks to evolve (their per-layer counts stay fixed). ``rule``: a registered update
    rule (``set``, ``rigl``). Needs the trainer's ``on_start(optimizer, total_steps)`` hook.
    """

    def __init__(self, state: PruningState, rule: str = "rigl", *, seed: int = 0,
                 options: Options | dict[str, Any] | None = None) -> None:
        spec = UPDATES.spec(rule)
        self.state, self.rule, self.grow = state, rule, spec.obj
        self.opts = options if isinstance(options, UpdateOptions) else UpdateOptions(**dict(options or {}))
        self.generator = torch.Generator().manual_seed(int(seed))
        self.optimizer: torch.optim.Optimizer | None = None
        self.total_steps = 0
        self.history: list[dict[str, float]] = []  # one entry per update: step, fraction, connections moved

    def on_start(self, optimizer: torch.optim.Optimizer, total_steps: int) -> None:
        self.optimizer, self.total_steps = optimizer, int(total_steps)

    def fraction(self, step: int) -> float:
        """f(t): the fraction of active weights rewired at ``step`` (0 after T_end)."""
        t_end = self.opts.end * self.total_steps
        if step >= t_end:
            return 0.0
        if self.opts.decay == "constant":
            return self.opts.fraction
        return self.opts.fraction / 2 * (1 + math.cos(math.pi * step / t_end))

    def on_step(self, step: int) -> None:
        if self.total_steps and step % self.opts.update_every == 0 and step < self.opts.end * self.total_steps:
            self.update(step)
        self.state.apply()

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:  # noqa: D102 (callback protocol)
        return None

    @torch.no_grad()
    def update(self, step: int) -> int:
        """Drop and regrow in every sparse layer; returns the number of connections moved."""
        if self.total_steps == 0:
            raise UserError("DynamicSparsity needs the trainer's on_start(optimizer, total_steps) call; "
                            "pass it in train(..., callbacks=[...])")
        f = self.fraction(step)
        params = self.state.weights()
        new: dict[str, Tensor] = {}
        grown: dict[str, Tensor] = {}
        moved = 0
        for key, mask in self.state.masks.items():
            flat = mask.reshape(-1)
            n_active = int(flat.sum())
            k = min(int(f * n_active), flat.numel() - n_active)
            if k <= 0:
                continue
            w = params[key]
            drop = _top_live(-w.detach().abs().reshape(-1).float(), flat, k, n_active)
            scores = self.grow(w, w.grad, self.generator)
            grow = _top_live(scores, ~flat, k, flat.numel() - n_active)
            new[key] = ((flat & ~drop) | grow).view(mask.shape)
            grown[key] = grow.view(mask.shape)
            moved += k
        if new:
            self.state.rewire(new)
            for key, g in grown.items():
                params[key].masked_fill_(g, 0.0)  # grown connections start at zero
                self._reset_optimizer_state(params[key], g)
        self.history.append({"step": float(step), "fraction": f, "moved": float(moved)})
        return moved

    def _reset_optimizer_state(self, param: Tensor, where: Tensor) -> None:
        state = self.optimizer.state.get(param, {}) if self.optimizer is not None else {}
        for buf in state.values():
            if isinstance(buf, Tensor) and buf.shape == param.shape:
                buf.masked_fill_(where, 0.0)
