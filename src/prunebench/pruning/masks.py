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

import itertools
from collections.abc import Iterable, Mapping

import torch
from torch import Tensor, nn

from prunebench.errors import UserError
from prunebench.pruning.selection import Selection, module_name

MASK_PREFIX = "mask/"


def _base_of(first: Tensor, numel: int) -> Tensor:
    """The flat 1-D buffer of ``numel`` elements that starts at ``first`` (views made by ``_set``)."""
    return first.as_strided((numel,), (1,), first.storage_offset())


def _is_flat_view_chain(tensors: list[Tensor], device: torch.device) -> bool:
    """True if the tensors are contiguous bool views laid out back to back in one storage."""
    if not tensors or any(t.dtype != torch.bool or t.device != device or not t.is_contiguous() for t in tensors):
        return False
    storage = tensors[0].untyped_storage().data_ptr()
    pos = tensors[0].storage_offset()
    for t in tensors:
        if t.untyped_storage().data_ptr() != storage or t.storage_offset() != pos:
            return False
        pos += t.numel()
    return pos <= tensors[0].untyped_storage().nbytes()


class MaskViolation(RuntimeError):
    """A weight that the masks say is pruned is nonzero (masks were not enforced after a step)."""


class PruningState:
    """The masks of one model plus the bookkeeping every consumer needs.

    Attributes:
        masks: ordered ``parameter name -> bool Tensor`` (same shape/device as the weight);
            True = kept. Read-only views: change masks only through :meth:`update` (which never
            revives and never mutates tensors handed out earlier).
        selection: the layer-selection policy the masks were created for.

    Internally all masks of one device are views of one flat bool buffer, so bookkeeping
    (counts, casts, ANDs) costs a handful of kernels, not a few per layer.
    """

    def __init__(self, model: nn.Module, masks: Mapping[str, Tensor], selection: Selection | None = None) -> None:
        self.selection = selection if selection is not None else Selection()
        self.masks: dict[str, Tensor] = dict(masks)
        self._fresh = True  # masks came from outside: copy them once into our own buffers
        self._params: dict[str, Tensor] = {}
        self._all_params: list[Tensor] = []
        self._kept: dict[str, int] = {}  # per-layer kept counts (python ints: reporting needs no kernels)
        self._active: list[str] = []  # keys of masks that prune at least one weight
        self._apply_params: list[Tensor] = []
        self._apply_masks: list[Tensor] = []  # masks pre-cast to each parameter's dtype
        self.bind(model)

    # ------------------------------------------------------------------ construction
    @classmethod
    def dense(cls, model: nn.Module, selection: Selection | None = None) -> PruningState:
        """All-ones masks for the layers ``selection`` picks (UserError if there are none)."""
        selection = selection if selection is not None else Selection()
        weights = selection.weights(model)
        if not weights:
            raise UserError(
                f"{type(model).__name__} has no prunable layers (Conv2d/Linear weights) under the selection "
                f"{selection.to_dict()}; relax exclude_names/exclude_types or prune a model with Conv2d/Linear layers"
            )
        devices = dict.fromkeys(p.device for p in weights.values())  # in first-use order
        flats = {dev: torch.ones(sum(p.numel() for p in weights.values() if p.device == dev), dtype=torch.bool, device=dev)
                 for dev in devices}
        masks, offset = {}, dict.fromkeys(flats, 0)
        for k, p in weights.items():
            o = offset[p.device]
            masks[k] = flats[p.device][o:o + p.numel()].view(p.shape)
            offset[p.device] = o + p.numel()
        return cls(model, masks, selection)

    def bind(self, model: nn.Module) -> PruningState:
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
        order = {k: i for i, k in enumerate(params)}  # canonical order = the model's (files may sort keys)
        self._set(dict(sorted(self.masks.items(), key=lambda kv: order[kv[0]])), reuse=not self._fresh)
        self._fresh = False
        return self

    def _groups(self, keys: Iterable[str] | None = None) -> dict[torch.device, list[str]]:
        groups: dict[torch.device, list[str]] = {}
        for k in self.masks if keys is None else keys:
            groups.setdefault(self._params[k].device, []).append(k)
        return groups

    def _set(self, masks: Mapping[str, Tensor], reuse: bool) -> None:
        """Store ``masks`` (all keys, in order) as views of one flat bool buffer per device.

        ``reuse``: masks that already are back-to-back views of one buffer (made by this class)
        are kept as they are; otherwise (e.g. user tensors) they are copied, so outside in-place
        edits cannot change the state behind its counts.
        """
        self.masks = dict.fromkeys(masks)  # type: ignore[assignment]  # every key gets its view below, in key order
        for dev, keys in self._groups(masks).items():
            parts = [masks[k] for k in keys]
            numel = sum(t.numel() for t in parts)
            if reuse and _is_flat_view_chain(parts, dev):
                flat = _base_of(parts[0], numel)
            else:
                flat = torch.cat([t.detach().reshape(-1).to(device=dev, dtype=torch.bool) for t in parts])
            o = 0
            for k, t in zip(keys, parts, strict=True):
                self.masks[k] = flat[o:o + t.numel()].view(t.shape)
                o += t.numel()
        self._rebuild()

    def _rebuild(self) -> None:
        """Per-layer counts (one cumsum per device) and the dtype-cast masks used by :meth:`apply`."""
        self._kept = {}
        self._apply_params, self._apply_masks = [], []
        for dev, keys in self._groups().items():
            sizes = [self.masks[k].numel() for k in keys]
            starts = [0, *itertools.accumulate(sizes)]
            flat = _base_of(self.masks[keys[0]], starts[-1])
            csum = flat.cumsum(0, dtype=torch.int32 if starts[-1] < 2**31 else torch.int64)
            at_end = csum[torch.tensor([max(e - 1, 0) for e in starts[1:]], device=dev)].tolist()
            prev = 0
            for k, e, v in zip(keys, starts[1:], at_end, strict=True):
                v = v if e > 0 else 0
                self._kept[k], prev = v - prev, v
            by_dtype: dict[torch.dtype, Tensor] = {}
            for k, o, n in zip(keys, starts[:-1], sizes, strict=True):
                if self._kept[k] == n:
                    continue  # nothing pruned in this layer: no work in apply()
                dt = self._params[k].dtype
                if dt not in by_dtype:
                    by_dtype[dt] = flat.to(dt)
                self._apply_params.append(self._params[k])
                self._apply_masks.append(by_dtype[dt][o:o + n].view(self.masks[k].shape))
        self._active = [k for k in self.masks if self._kept[k] < self.masks[k].numel()]

    def _stale(self) -> bool:
        return any(p.device != m.device or p.dtype != m.dtype for p, m in zip(self._apply_params, self._apply_masks, strict=True))

    # ------------------------------------------------------------------ enforcement
    @torch.no_grad()
    def apply(self) -> None:
        """Zero every masked weight in place: one fused multiply over all pruned tensors."""
        if not self._apply_params:
            return
        if self._stale():  # the model moved device / dtype since the masks were cast
            self._set(self.masks, reuse=True)
        torch._foreach_mul_(self._apply_params, self._apply_masks)

    def on_step(self, step: int) -> None:
        """Trainer callback: re-apply the masks after each optimizer step (pruned weights never regrow)."""
        self.apply()

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:  # noqa: D102 (callback protocol)
        return None

    def update(self, new_masks: Mapping[str, Tensor]) -> PruningState:
        """AND ``new_masks`` into the current masks (a pruned weight is never revived); returns self.

        Keys missing from ``new_masks`` keep their current mask. Mask tensors handed out before
        are not modified (new buffers are built). Call :meth:`apply` afterwards.
        """
        for key, new in new_masks.items():
            if key not in self.masks:
                raise KeyError(f"new mask for {key!r}, which is not a prunable weight of this state")
            if tuple(new.shape) != tuple(self.masks[key].shape):
                raise ValueError(f"new mask for {key!r} has shape {tuple(new.shape)}, expected {tuple(self.masks[key].shape)}")
        merged: dict[str, Tensor] = {}
        for dev, keys in self._groups().items():
            cur = _base_of(self.masks[keys[0]], sum(self.masks[k].numel() for k in keys))
            parts = [(new_masks[k] if k in new_masks else self.masks[k]).detach().reshape(-1).to(device=dev, dtype=torch.bool)
                     for k in keys]
            flat = cur & torch.cat(parts)
            o = 0
            for k in keys:
                n = self.masks[k].numel()
                merged[k] = flat[o:o + n].view(self.masks[k].shape)
                o += n
        self._set({k: merged[k] for k in self.masks}, reuse=True)
        return self

    def rewire(self, new_masks: Mapping[str, Tensor]) -> PruningState:
        """Replace masks outright (dynamic sparse training moves connections: a pruned weight may come
        back here, and only here). Keys missing from ``new_masks`` keep their mask; returns self.
        Call :meth:`apply` afterwards."""
        for key, new in new_masks.items():
            if key not in self.masks:
                raise KeyError(f"new mask for {key!r}, which is not a prunable weight of this state")
            if tuple(new.shape) != tuple(self.masks[key].shape):
                raise ValueError(f"new mask for {key!r} has shape {tuple(new.shape)}, expected {tuple(self.masks[key].shape)}")
        self._set({k: new_masks.get(k, self.masks[k]) for k in self.masks}, reuse=False)
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

    def clone(self, model: nn.Module | None = None) -> PruningState:
        """An independent copy of the masks, bound to ``model`` (default: the same parameters)."""
        new = PruningState.__new__(PruningState)
        new.__dict__.update(self.__dict__)
        new._fresh = True  # copy the buffers
        new._params = dict(self._params)
        if model is not None:
            return new.bind(model)
        new._set(self.masks, reuse=False)
        new._fresh = False
        return new

    def weights(self) -> dict[str, Tensor]:
        """The bound prunable weights (parameter name -> Parameter), in mask order."""
        return {k: self._params[k] for k in self.masks}

    # ------------------------------------------------------------------ reporting
    @property
    def total(self) -> int:
        """Number of prunable weights."""
        return sum(m.numel() for m in self.masks.values())

    @property
    def kept(self) -> int:
        """Number of prunable weights the masks keep."""
        return sum(self._kept.values())

    def density(self) -> float:
        """Fraction of prunable weights kept."""
        total = self.total
        return self.kept / total if total else 1.0

    def prune_ratio(self) -> float:
        """Fraction of prunable weights removed (prunebench's one meaning of "prune ratio")."""
        return 1.0 - self.density()

    def layer_densities(self) -> dict[str, float]:
        """Per-weight density, keyed by parameter name, in layer order."""
        return {k: self._kept[k] / m.numel() for k, m in self.masks.items()}

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
                        selection: Selection | None = None) -> PruningState:
        """Rebuild from :meth:`state_dict` output (other keys are ignored) and apply to ``model``."""
        masks: dict[str, Tensor] = {}
        for key, t in tensors.items():
            if not key.startswith(MASK_PREFIX):
                continue
            if t.dtype not in (torch.uint8, torch.bool) or (t.dtype == torch.uint8 and bool((t > 1).any())):
                raise UserError(f"checkpoint entry {key!r} is not a 0/1 uint8 mask; "
                                "the file is corrupt or not a prunebench checkpoint")
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
            tprune.custom_from_mask(module, "weight", mask.to(module.weight.device))  # type: ignore[arg-type]  # torch types Module attributes as Tensor | Module; a prunable layer's weight is a Tensor

    @classmethod
    def from_torch_prune(cls, model: nn.Module, selection: Selection | None = None) -> PruningState:
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
