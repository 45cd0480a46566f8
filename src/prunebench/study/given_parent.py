"""A given parent (``parent: path/to/weights.safetensors``): prune a model you trained yourself.

The file is a prunebench checkpoint or a plain ``state_dict`` saved with
``safetensors.torch.save_file``. It replaces parent training: each repetition's train cell loads it
into the configured (zoo or factory) model, checked tensor by tensor (names, shapes, dtypes: the
first misfit is named on one line), and saves it unchanged as that repetition's parent checkpoint,
which is evaluated as the reference and pruned from.

Identity: the file's SHA-256 takes the place of the training recipe in the train cell's key (the
key keeps the model, the data and the repetition's seed), so a changed file re-runs everything
built on it and a moved one does not.

Repetitions: every repetition starts from the same given parent, so repetitions differ only in the
pruning / retraining seed. They are not independently trained parents: the plan gives evaluators
no "independently trained baseline" (``evaluation.baseline`` does nothing here) and the report says
so. The intervals then describe this parent's prune-and-retrain variability, not a population of
parents.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prunebench.errors import UserError

_SHA: dict[tuple[str, int, int], str] = {}  # (path, mtime, size) -> sha256: one read per plan


def check_parent_file(path: Path, where: str) -> None:
    """The file exists and is a readable safetensors file (its header parses)."""
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        raise UserError(f"{where}: file not found: {path}; pass a .safetensors file (relative paths are relative to "
                        "the config file's folder)")
    try:
        with safe_open(str(path), framework="pt") as f:
            f.keys()
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise UserError(f"{where}: {path} is not a safetensors file ({' '.join(str(e).split())[:100]}); save the "
                        "weights with safetensors.torch.save_file(model.state_dict(), path)") from None


def parent_sha256(path: str) -> str:
    """SHA-256 of the given parent file (cached per path, modification time and size)."""
    p = Path(path)
    check_parent_file(p, "parent")
    st = p.stat()
    key = (str(p), st.st_mtime_ns, st.st_size)
    if key not in _SHA:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            while block := f.read(1 << 20):
                h.update(block)
        _SHA[key] = h.hexdigest()
    return _SHA[key]


def train_cell(conf: dict[str, Any], path: str, seed: int, run: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A train cell's (config, run) turned into "load the given parent": the recipe replaced by the
    file's SHA-256 (the seed stays: one cell per repetition), the path handed to the cell."""
    conf = {k: v for k, v in conf.items() if k != "train"}
    conf["parent"] = {"sha256": parent_sha256(path)}
    conf["seed"] = seed
    return conf, {**run, "given_parent": path}


def load_parent_state(path: str, model: nn.Module) -> dict[str, torch.Tensor]:
    """The given parent's tensors, checked against ``model.state_dict()``: same names, shapes and
    dtypes (a one-line UserError naming the first misfit and both shapes). Masks are refused."""
    from safetensors.torch import load_file

    from prunebench.store.checkpoint import MASK_PREFIX

    check_parent_file(Path(path), "parent")
    tensors = load_file(path)
    if any(k.startswith(MASK_PREFIX) for k in tensors):
        raise UserError(f"parent {path} is a pruned checkpoint (it holds pruning masks); give the dense model's weights")
    want = model.state_dict()
    missing = [k for k in want if k not in tensors]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise UserError(f"parent {path} lacks tensor {missing[0]!r} (model shape {list(want[missing[0]].shape)}){more}; "
                        "save the weights of this very model (model.state_dict())")
    extra = [k for k in tensors if k not in want]
    if extra:
        raise UserError(f"parent {path} has tensor {extra[0]!r} (shape {list(tensors[extra[0]].shape)}) that the model "
                        "does not have; check model.factory / model.kwargs or save this model's state_dict")
    for k, v in want.items():
        got = tensors[k]
        if tuple(got.shape) != tuple(v.shape):
            raise UserError(f"parent {path}: tensor {k!r} has shape {list(got.shape)} but the model's is "
                            f"{list(v.shape)}; check model.kwargs (e.g. num_classes) or the parent file")
        if got.dtype != v.dtype:
            raise UserError(f"parent {path}: tensor {k!r} is {got.dtype} but the model's is {v.dtype}; save the "
                            "weights in the model's dtype (e.g. model.float().state_dict())")
    return tensors


def load_given_parent(path: str, model: nn.Module) -> nn.Module:
    """``model`` holding the given parent's tensors, unchanged (copied bit for bit)."""
    model.load_state_dict(load_parent_state(path, model))
    return model
