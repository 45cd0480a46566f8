"""Pruning masks: one boolean mask per prunable weight, enforced by zeroing after every step.

Why explicit masks (not "weight == 0"): a weight that happens to be zero is not pruned, and a
pruned weight must stay pruned however the optimizer moves it. Why no forward hooks: a hook
(torch.nn.utils.prune style) recomputes ``weight_orig * mask`` on every forward and makes
autograd carry both tensors; instead prunebench zeroes the masked weights in place once after
each optimizer step (the trainer's ``on_step`` callback), with a single fused
``torch._foreach_mul_`` over all layers. Gradients of pruned weights are not masked; momentum
of a pruned weight is harmless because it is re-zeroed after every step (as in the reference
code of SiPP/PFP and of the random-pruning study).

Masks are keyed by *parameter* name (``"layer1.0.conv1.weight"``), live on the parameter's
device, and are never revived: :meth:`PruningState.update` ANDs new masks into the old ones.
"""
from __future__ import annotations

from typing import Mapping

import torch
from torch import Tensor, nn

from prunebench.errors import UserError
from prunebench.pruning.selection import Selection, module_name

MASK_PREFIX = "mask/"


class MaskViolation(RuntimeError):
    """A weight that the masks say is pruned is nonzero (masks were not enforced after a step)."""


class PruningState:
    """The masks of one model plus the bookkeeping every consumer needs.

    Attributes:
        masks: ordered ``parameter name -> bool Tensor`` (same shape/device as the weight);
            True = kept. Change it only through :meth:`update` (which never revives).
        selection: the layer-selection policy the masks were created for.
    """

    def __init__(self, model: nn.Module, masks: Mapping[str, Tensor], selection: Selection | None = None) -> None:
        self.selection = selection if selection is not None else Selection()
        self.masks: dict[str, Tensor] = {k: v.detach().bool() for k, v in masks.items()}
        self._params: dict[str, Tensor] = {}
        self._all_params: list[Tensor] = []
        self._active: list[str] = []  # keys of masks that prune at least one weight
        self._apply_params: list[Tensor] = []
        self._apply_masks: list[Tensor] = []  # masks pre-cast to each parameter's dtype
        self.bind(model)

    # ------------------------------------------------------------------ construction
    @classmethod
    def dense(cls, model: nn.Module, selection: Selection | None = None) -> "PruningState":
        """All-ones masks for the layers ``selection`` picks (UserError if there are none)."""
        selection = selection if selection is not None else Selection()
        weights = selection.weights(model)
        if not weights:
            raise UserError(
                f"{type(model).__name__} has no prunable layers (Conv2d/Linear weights) under the selection "
                f"{selection.to_dict()}; relax exclude_names/exclude_types or prune a model with Conv2d/Linear layers"
            )
        masks = {k: torch.ones(p.shape, dtype=torch.bool, device=p.device) for k, p in weights.items()}
        return cls(model, masks, selection)

    def bind(self, model: nn.Module) -> "PruningState":
        """Attach to ``model``'s parameters (after a deepcopy, a device move or a weight swap)."""
        params = dict(model.named_parameters(remove_duplicate=False))
        self._all_params = list(model.parameters())
        for key, mask in self.masks.items():
            p = params.get(key)
            if p is None:
                raise UserError(f"the masks name weight {key!r} but the model has no such parameter; "
                                "load the masks into the same architecture they were made for")
            if tuple(p.shape) != tuple(mask.shape):
                raise UserError(f"mask for {key!r} has shape {tuple(mask.shape)} but the weight has {tuple(p.shape)}; "
                                "the masks belong to a different architecture or width")
            self._params[key] = p
        self._rebuild()
        return self

    def _rebuild(self) -> None:
        for key, mask in self.masks.items():
            dev = self._params[key].device
            if mask.device != dev:
                self.masks[key] = mask.to(dev)
        self._active = [k for k, m in self.masks.items() if not bool(m.all())]
        self._apply_params = [self._params[k] for k in self._active]
        self._apply_masks = [self.masks[k].to(self._params[k].dtype) for k in self._active]

    def _stale(self) -> bool:
        return any(p.device != m.device or p.dtype != m.dtype for p, m in zip(self._apply_params, self._apply_masks))

    # ------------------------------------------------------------------ enforcement
    @torch.no_grad()
    def apply(self) -> None:
        """Zero every masked weight in place: one fused multiply over all pruned tensors."""
        if not self._apply_params:
            return
        if self._stale():  # the model moved device / dtype since the masks were cast
            self._rebuild()
        torch._foreach_mul_(self._apply_params, self._apply_masks)

    def on_step(self, step: int) -> None:
        """Trainer callback: re-apply the masks after each optimizer step (pruned weights never regrow)."""
        self.apply()

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:  # noqa: D102 (callback protocol)
        return None

    def update(self, new_masks: Mapping[str, Tensor]) -> "PruningState":
        """AND ``new_masks`` into the current masks (a pruned weight is never revived); returns self.

        Keys missing from ``new_masks`` keep their current mask. Call :meth:`apply` afterwards.
        """
        for key, new in new_masks.items():
            if key not in self.masks:
                raise KeyError(f"new mask for {key!r}, which is not a prunable weight of this state")
            if tuple(new.shape) != tuple(self.masks[key].shape):
                raise ValueError(f"new mask for {key!r} has shape {tuple(new.shape)}, expected {tuple(self.masks[key].shape)}")
            cur = self.masks[key]
            self.masks[key] = cur & new.detach().to(device=cur.device).bool()
        self._rebuild()
        return self

    @torch.no_grad()
    def verify(self, model: nn.Module | None = None) -> None:
        """Raise :class:`MaskViolation` if any masked weight is nonzero (checked before saving)."""
        params = self._params if model is None else dict(model.named_parameters())
        bad: list[str] = []
        for key in self._active:
            p = params.get(key)
            if p is None:
                raise UserError(f"cannot verify masks: the model has no parameter {key!r}")
            n = int(p.detach().masked_select(~self.masks[key].to(p.device)).count_nonzero())
            if n:
                bad.append(f"{key} ({n} weights)")
        if bad:
            raise MaskViolation("pruned weights are nonzero in " + ", ".join(bad) +
                                "; call state.apply() after each optimizer step (the trainer does it via on_step)")

    def clone(self, model: nn.Module | None = None) -> "PruningState":
        """An independent copy of the masks, bound to ``model`` (default: the same parameters)."""
        new = PruningState.__new__(PruningState)
        new.selection = self.selection
        new.masks = {k: m.clone() for k, m in self.masks.items()}
        new._params = dict(self._params)
        new._all_params = list(self._all_params)
        new._active, new._apply_params, new._apply_masks = [], [], []
        if model is not None:
            new.bind(model)
        else:
            new._rebuild()
        return new

    # ------------------------------------------------------------------ reporting
    @property
    def total(self) -> int:
        """Number of prunable weights."""
        return sum(m.numel() for m in self.masks.values())

    @property
    def kept(self) -> int:
        """Number of prunable weights the masks keep."""
        return int(sum(int(m.sum()) for m in self.masks.values()))

    def density(self) -> float:
        """Fraction of prunable weights kept."""
        total = self.total
        return self.kept / total if total else 1.0

    def prune_ratio(self) -> float:
        """Fraction of prunable weights removed (prunebench's one meaning of "prune ratio")."""
        return 1.0 - self.density()

    def layer_densities(self) -> dict[str, float]:
        """Per-weight density, keyed by parameter name, in layer order."""
        return {k: float(m.sum()) / m.numel() for k, m in self.masks.items()}

    @property
    def nonzero_params(self) -> int:
        """Parameters of the whole model that pruning has not removed (all params minus masked weights)."""
        total = sum(p.numel() for p in self._all_params)
        return total - (self.total - self.kept)

    def __repr__(self) -> str:
        return f"PruningState({len(self.masks)} layers, prune_ratio={self.prune_ratio():.4f})"

    # ------------------------------------------------------------------ serialisation
    def state_dict(self) -> dict[str, Tensor]:
        """``{"mask/<param name>": uint8 tensor}`` on CPU, ready for a safetensors file."""
        return {MASK_PREFIX + k: m.to(device="cpu", dtype=torch.uint8).contiguous() for k, m in self.masks.items()}

    @classmethod
    def from_state_dict(cls, model: nn.Module, tensors: Mapping[str, Tensor],
                        selection: Selection | None = None) -> "PruningState":
        """Rebuild from :meth:`state_dict` output (other keys are ignored) and apply to ``model``."""
        masks: dict[str, Tensor] = {}
        for key, t in tensors.items():
            if not key.startswith(MASK_PREFIX):
                continue
            if t.dtype not in (torch.uint8, torch.bool) or (t.dtype == torch.uint8 and bool((t > 1).any())):
                raise UserError(f"checkpoint entry {key!r} is not a 0/1 uint8 mask; the file is corrupt or not a prunebench checkpoint")
            masks[key[len(MASK_PREFIX):]] = t.bool()
        if not masks:
            raise UserError("the checkpoint holds no 'mask/...' entries; it was not saved from a pruned prunebench model")
        if selection is not None:
            expected = set(selection.weights(model))
            if expected != set(masks):
                raise UserError(f"checkpoint masks cover {sorted(set(masks) ^ expected)} differently from the selection; "
                                "load with the selection the model was pruned with")
        state = cls(model, masks, selection)
        state.apply()
        return state

    def to_torch_prune(self, model: nn.Module) -> None:
        """Export to ``torch.nn.utils.prune`` (``custom_from_mask``): ``weight_orig`` + ``weight_mask``.

        After this the model's ``weight`` is recomputed by a forward pre-hook; this state keeps
        pointing at the original Parameter (now ``weight_orig``).
        """
        from torch.nn.utils import prune as tprune

        for key, mask in self.masks.items():
            module = model.get_submodule(module_name(key))
            tprune.custom_from_mask(module, "weight", mask.to(module.weight.device))

    @classmethod
    def from_torch_prune(cls, model: nn.Module, selection: Selection | None = None) -> "PruningState":
        """Import ``torch.nn.utils.prune`` masks, removing the reparametrization (``prune.remove``).

        Layers without a torch mask start dense. Note: ``prune.remove`` registers a *new*
        ``weight`` Parameter, so build optimizers after importing.
        """
        from torch.nn.utils import prune as tprune

        imported: dict[str, Tensor] = {}
        for name, module in model.named_modules():
            if hasattr(module, "weight_orig") and hasattr(module, "weight_mask"):
                mask = module.weight_mask.detach().bool().clone()
                tprune.remove(module, "weight")
                imported[f"{name}.weight" if name else "weight"] = mask
        state = cls.dense(model, selection)
        outside = sorted(set(imported) - set(state.masks))
        if outside:
            raise UserError(f"torch.nn.utils.prune masks on {outside} fall outside the selection; "
                            "widen the selection (exclude_names / exclude_types) to import them")
        state.update(imported)
        state.apply()
        return state
