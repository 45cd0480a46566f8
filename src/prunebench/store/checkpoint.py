"""Checkpoints as ``NAME.safetensors`` (tensors) + ``NAME.json`` (what the tensors are).

No pickle anywhere: the model is rebuilt from the zoo by name and keyword arguments, then its
state is loaded from safetensors. Pruning masks travel in the same file under ``mask/<param>``.
Physically compressed models (channels removed) are rebuilt by resizing the zoo model's layers
to the stored shapes. Both files are written to temporary names and renamed, the JSON last, so a
crash never leaves a checkpoint that looks complete but is not.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from prunebench.atomic import atomic_path
from prunebench.errors import UserError

FORMAT = "prunebench-checkpoint"
VERSION = 1
MASK_PREFIX = "mask/"


@dataclass
class Checkpoint:
    """A loaded checkpoint: the rebuilt model, its metadata and its pruning masks (if any)."""

    model: nn.Module
    meta: dict[str, Any]
    masks: dict[str, torch.Tensor] = field(default_factory=dict)

    def pruning_state(self):
        """The masks as a ``PruningState`` bound to (and applied on) the model; None for a dense checkpoint."""
        if not self.masks:
            return None
        from prunebench.pruning import PruningState

        state = PruningState(self.model, self.masks)
        state.verify(self.model)  # weights and masks must agree: nothing regrew before saving
        return state


def paths(path: str | Path) -> tuple[Path, Path]:
    """The (.safetensors, .json) pair for a checkpoint path given with or without a suffix."""
    p = Path(path)
    stem = p.with_suffix("") if p.suffix in (".safetensors", ".json") else p
    return stem.with_name(stem.name + ".safetensors"), stem.with_name(stem.name + ".json")


def save_checkpoint(path: str | Path, model: nn.Module, meta: dict[str, Any],
                    masks: dict[str, torch.Tensor] | None = None) -> Path:
    """Write a checkpoint atomically. ``meta`` must hold ``model`` (zoo name) and ``model_kwargs``."""
    if "model" not in meta:
        raise ValueError("checkpoint metadata needs the zoo name under 'model'")
    tensor_path, json_path = paths(path)
    tensor_path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    for name, mask in (masks or {}).items():
        tensors[MASK_PREFIX + name] = mask.detach().to("cpu", torch.uint8).contiguous()
    shapes = {k: list(v.shape) for k, v in tensors.items() if not k.startswith(MASK_PREFIX)}
    full_meta = {"format": FORMAT, "version": VERSION, **meta, "has_masks": bool(masks), "shapes": shapes}
    with atomic_path(json_path) as tmp_j, atomic_path(tensor_path) as tmp_t:  # tensors land first, then the JSON
        save_file(tensors, str(tmp_t))
        tmp_j.write_text(json.dumps(full_meta, indent=1, default=float))
    return tensor_path


def read_meta(path: str | Path) -> dict[str, Any]:
    """The JSON half of a checkpoint, validated."""
    tensor_path, json_path = paths(path)
    if not json_path.is_file() or not tensor_path.is_file():
        raise UserError(f"checkpoint not found: {tensor_path} (+ .json); check the path (a checkpoint is a .safetensors/.json pair)")
    try:
        meta = json.loads(json_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"checkpoint metadata {json_path} is unreadable ({e}); re-create the checkpoint") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise UserError(f"{json_path} is not a prunebench checkpoint; pass a file written by prunebench")
    if meta.get("version", 0) > VERSION:
        raise UserError(f"{json_path} was written by a newer prunebench (format {meta['version']}); upgrade prunebench")
    return meta


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> Checkpoint:
    """Rebuild the model from the zoo and load its tensors; masks are returned separately."""
    from prunebench.models import create_model

    meta = read_meta(path)
    tensor_path, _ = paths(path)
    try:
        tensors = load_file(str(tensor_path), device=str(device))
    except (SafetensorError, OSError, ValueError) as e:
        raise UserError(f"checkpoint {tensor_path} is unreadable ({e}); it is corrupt or truncated, re-create it") from None
    masks = {k[len(MASK_PREFIX):]: v.bool() for k, v in tensors.items() if k.startswith(MASK_PREFIX)}
    state = {k: v for k, v in tensors.items() if not k.startswith(MASK_PREFIX)}
    model = create_model(meta["model"], **meta.get("model_kwargs", {}))
    resize_to(model, state)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise UserError(f"checkpoint {tensor_path} does not fit model {meta['model']!r}: {str(e).splitlines()[0]}") from None
    return Checkpoint(model.to(device), meta, masks)


def resize_to(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Resize Conv2d / Linear / BatchNorm2d layers in place to the shapes in ``state``.

    Structured compression removes channels; the zoo constructor builds the dense shapes. Changing
    a layer's tensors and its size attributes makes the dense skeleton match the compressed one.
    """
    for name, module in model.named_modules():
        key = f"{name}.weight" if name else "weight"
        if key not in state or not isinstance(module, (nn.Conv2d, nn.Linear, nn.BatchNorm2d)):
            continue
        shape = tuple(state[key].shape)
        if tuple(module.weight.shape) == shape:
            continue
        for pname, p in list(module.named_parameters(recurse=False)) + list(module.named_buffers(recurse=False)):
            full = f"{name}.{pname}" if name else pname
            if full in state and p is not None and p.shape != state[full].shape:
                new = torch.empty_like(state[full])
                if isinstance(p, nn.Parameter):
                    setattr(module, pname, nn.Parameter(new, requires_grad=p.requires_grad))
                else:
                    setattr(module, pname, new)
        if isinstance(module, nn.Conv2d):
            module.out_channels, module.in_channels = shape[0], shape[1] * module.groups
        elif isinstance(module, nn.Linear):
            module.out_features, module.in_features = shape
        else:
            module.num_features = shape[0]
