"""Checkpoints: ONE file, ``NAME.safetensors``, holding the tensors and, in the safetensors header
(``__metadata__["prunebench"]``, JSON), what the tensors are.

No pickle anywhere: the model is rebuilt from the zoo by name and keyword arguments (or, for a user
model, by calling the factory recorded under ``model_factory``: :mod:`prunebench.models.factory`),
then its state is loaded from safetensors. Pruning masks travel in the same file under ``mask/<param>``.
Physically compressed models (channels removed) are rebuilt by resizing the zoo model's layers
to the stored shapes. The file is written to a temporary name and renamed: a checkpoint is
replaced by one rename, so a crash leaves either the old checkpoint or the new one, never new
tensors under old metadata. The metadata is cross-checked against the tensors on loading
(``shapes``, ``num_classes``, ``in_channels``, the model's layer names).

Older checkpoints (prunebench <= 0.x: tensors + a ``NAME.json`` sidecar) still load; when a file
has embedded metadata a sidecar beside it is ignored (and removed when the checkpoint is rewritten).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from prunebench.atomic import atomic_path
from prunebench.errors import UserError

FORMAT = "prunebench-checkpoint"
VERSION = 1
MASK_PREFIX = "mask/"
META_KEY = "prunebench"  # the safetensors __metadata__ entry holding the JSON metadata


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
    """The (.safetensors, .json) paths for a checkpoint path given with or without a suffix (the
    .json is the legacy sidecar; new checkpoints are the .safetensors alone)."""
    p = Path(path)
    stem = p.with_suffix("") if p.suffix in (".safetensors", ".json") else p
    return stem.with_name(stem.name + ".safetensors"), stem.with_name(stem.name + ".json")


def save_checkpoint(path: str | Path, model: nn.Module, meta: dict[str, Any],
                    masks: dict[str, torch.Tensor] | None = None) -> Path:
    """Write a checkpoint atomically. ``meta`` must hold ``model`` (zoo name) and ``model_kwargs``;
    a user model adds ``model_factory`` (its factory spec; ``model`` is then a display name)."""
    if "model" not in meta:
        raise ValueError("checkpoint metadata needs the zoo name under 'model'")
    tensor_path, json_path = paths(path)
    tensor_path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    for name, mask in (masks or {}).items():
        tensors[MASK_PREFIX + name] = mask.detach().to("cpu", torch.uint8).contiguous()
    shapes = {k: list(v.shape) for k, v in tensors.items() if not k.startswith(MASK_PREFIX)}
    full_meta = {"format": FORMAT, "version": VERSION, **meta, "has_masks": bool(masks), "shapes": shapes}
    text = json.dumps(_stable(full_meta), default=_json_default, allow_nan=True)
    with atomic_path(tensor_path) as tmp:  # one file, one rename: tensors and metadata change together
        save_file(tensors, str(tmp), metadata={META_KEY: text})
    json_path.unlink(missing_ok=True)  # a legacy sidecar would only confuse a reader of the files
    return tensor_path


WALL_CLOCK = ("seconds", "images_per_s", "train_seconds")  # timings: not part of what a checkpoint is


def _stable(meta: dict[str, Any]) -> dict[str, Any]:
    """``meta`` without wall-clock timings (in ``history`` rows and ``metrics``), so that a checkpoint's
    bytes (and SHA-256) are a function of what it holds: a cell re-run on the same device reproduces them."""
    out = dict(meta)
    if isinstance(out.get("history"), list):
        out["history"] = [{k: v for k, v in h.items() if k not in WALL_CLOCK} if isinstance(h, dict) else h
                          for h in out["history"]]
    if isinstance(out.get("metrics"), dict):
        out["metrics"] = {k: v for k, v in out["metrics"].items() if k not in WALL_CLOCK}
    return out


def _json_default(v: Any) -> Any:
    if hasattr(v, "item"):
        return v.item()
    if isinstance(v, (tuple, set)):
        return list(v)
    return float(v)


def _embedded_meta(tensor_path: Path) -> str | None:
    """The JSON metadata in the safetensors header, None if the file has none (legacy layout)."""
    try:
        with safe_open(str(tensor_path), framework="pt") as f:
            header = f.metadata() or {}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise UserError(f"checkpoint {tensor_path} is unreadable ({' '.join(str(e).split())}); it is corrupt or "
                        "truncated (or not a safetensors file), re-create it") from None
    return header.get(META_KEY)


def read_meta(path: str | Path) -> dict[str, Any]:
    """The metadata of a checkpoint (embedded, else the legacy .json sidecar), validated."""
    tensor_path, json_path = paths(path)
    if not tensor_path.is_file():
        raise UserError(f"checkpoint not found: {tensor_path}; check the path (a checkpoint is a .safetensors file "
                        "written by prunebench)")
    if tensor_path.stat().st_size == 0:
        raise UserError(f"checkpoint {tensor_path} is empty; it is truncated, re-create it")
    text, where = _embedded_meta(tensor_path), tensor_path
    if text is None:
        if not json_path.is_file():
            raise UserError(f"{tensor_path} holds no prunebench metadata (and no {json_path.name} beside it); "
                            "pass a checkpoint written by prunebench")
        where = json_path
        try:
            text = json_path.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise UserError(f"checkpoint metadata {json_path} is unreadable ({e}); re-create the checkpoint") from None
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"checkpoint metadata {where} is unreadable ({e}); re-create the checkpoint") from None
    json_path = where
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise UserError(f"{json_path} is not a prunebench checkpoint; pass a file written by prunebench")
    if not isinstance(meta.get("version", 0), int) or meta.get("version", 0) > VERSION:
        raise UserError(f"{json_path} was written by a newer prunebench (format {meta['version']}); upgrade prunebench")
    return meta


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> Checkpoint:
    """Rebuild the model from the zoo and load its tensors; masks are returned separately."""
    from prunebench.models import create_model
    from prunebench.models.factory import build_user_model

    meta = read_meta(path)
    tensor_path, _ = paths(path)
    try:
        tensors = load_file(str(tensor_path), device=str(device))
    except (SafetensorError, OSError, ValueError) as e:
        raise UserError(f"checkpoint {tensor_path} is unreadable ({e}); it is corrupt or truncated, re-create it") from None
    masks = {k[len(MASK_PREFIX):]: v.bool() for k, v in tensors.items() if k.startswith(MASK_PREFIX)}
    state = {k: v for k, v in tensors.items() if not k.startswith(MASK_PREFIX)}
    _check_shapes(meta, state, tensor_path)
    kwargs = meta.get("model_kwargs", {})
    if not isinstance(kwargs, dict) or not isinstance(meta.get("model"), str):
        raise UserError(f"checkpoint {tensor_path}: metadata 'model' / 'model_kwargs' are malformed; re-create it")
    factory = meta.get("model_factory")
    if factory is not None and not isinstance(factory, str):
        raise UserError(f"checkpoint {tensor_path}: metadata 'model_factory' is malformed; re-create it")
    try:
        model = build_user_model(factory, kwargs) if factory else create_model(meta["model"], **kwargs)
        resize_to(model, state)
        model.load_state_dict(state)
    except UserError:
        raise
    except (RuntimeError, TypeError, ValueError, KeyError, AttributeError, IndexError) as e:
        raise UserError(f"checkpoint {tensor_path} does not fit model {meta['model']!r} with {kwargs}: "
                        f"{(str(e).splitlines() or [type(e).__name__])[0]}; its metadata does not describe its "
                        "tensors, re-create it") from None
    _check_io(model, kwargs, tensor_path)
    for name, mask in masks.items():
        if name not in state or tuple(mask.shape) != tuple(state[name].shape):
            raise UserError(f"checkpoint {tensor_path}: mask {name!r} matches no parameter of that shape; re-create it")
    return Checkpoint(model.to(device), meta, masks)


def _check_shapes(meta: dict[str, Any], state: dict[str, torch.Tensor], where: Path) -> None:
    """The metadata's ``shapes`` must list exactly the stored tensors with their shapes."""
    shapes = meta.get("shapes")
    if shapes is None:
        return
    actual = {k: list(v.shape) for k, v in state.items()}
    if shapes != actual:
        bad = sorted(set(shapes) ^ set(actual)) or sorted(k for k in actual if shapes.get(k) != actual[k])
        raise UserError(f"checkpoint {where}: metadata 'shapes' disagree with the stored tensors (first: {bad[0]!r}); "
                        "the file was edited or damaged, re-create it")


def _check_io(model: nn.Module, kwargs: dict[str, Any], where: Path) -> None:
    """``num_classes`` / ``in_channels`` in the metadata must be what the rebuilt model computes with
    (resizing to the stored shapes would otherwise hide an edited value)."""
    convs = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    if not convs:
        return
    first, last = convs[0], [m for m in model.modules() if isinstance(m, nn.Linear)]
    n_in = first.in_channels if isinstance(first, nn.Conv2d) else None
    checks = [("num_classes", kwargs.get("num_classes"), last[-1].out_features if last else None),
              ("in_channels", kwargs.get("in_channels"), n_in)]
    for key, said, real in checks:
        if isinstance(said, (int, float)) and real is not None and (not math.isfinite(said) or int(said) != real):
            raise UserError(f"checkpoint {where}: metadata says {key}={said} but the tensors hold {real}; "
                            "the file was edited or damaged, re-create it")


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
