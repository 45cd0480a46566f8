"""Turn masks into real savings: physically smaller dense models, and CSR files for sparse ones.

:func:`compress` removes every channel whose whole dependency group member slices are masked
(see ``prunebench.pruning.structured``) with Torch-Pruning's ``DependencyGraph``: the producer
filters, their BatchNorm entries and the consumers' input channels go together. Only such
channels are removed, so the compressed model computes what the masked model computes (eval mode,
up to float rounding): a removed channel's consumers read it through zero columns, whatever
constant (e.g. a BN shift) the channel carried. Channels that are pruned in some members only
(e.g. per-layer unstructured masks) stay, with their zeros.

:func:`compression_gap` states how much of the masked model's effective FLOP saving the
compressed model realises; for prunebench's structured methods the gap is 0 by construction.

:func:`export_csr` stores the weights of sparse layers (density below a threshold) in CSR form
(``crow_indices`` / ``col_indices`` / ``values``) in a safetensors file; :func:`load_csr` reads it
back into a dense ``state_dict``.
"""
from __future__ import annotations

import copy
import json
import math
import tempfile
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from prunebench.atomic import atomic_path
from prunebench.errors import UserError
from prunebench.pruning.selection import module_name
from prunebench.pruning.structured import analyse, build_dependency_graph

CSR_FORMAT = "prunebench-csr-v1"


@torch.no_grad()
def masked_model(model: nn.Module, state) -> nn.Module:
    """A deep copy with the masks multiplied into the weights (the model the masks describe)."""
    out = copy.deepcopy(model)
    params = dict(out.named_parameters())
    for key, m in state.masks.items():
        params[key].mul_(m.to(params[key].device, params[key].dtype))
    return out


def removable_channels(model: nn.Module, state, example_input: Tensor) -> dict[str, list[int]]:
    """Root module name -> output-channel indices of its group that can be removed as a whole.

    A channel is removable iff every Conv2d/Linear member slice of its group (producer rows and
    consumer columns) is fully masked. At least one channel of every group stays.
    """
    names = [module_name(k) for k in state.masks]
    struct = analyse(model, names, example_input)
    alive = struct.alive(state.masks)
    out: dict[str, list[int]] = {}
    for g in struct.prunable_groups:
        dead = (~alive[g.offset : g.offset + g.size]).nonzero().flatten().tolist()
        if len(dead) == g.size:
            dead = dead[1:]  # a layer needs one channel; its zero columns keep the output unchanged
        if dead:
            out[g.root] = dead
    return out


def compress(model: nn.Module, state, example_input: Tensor) -> nn.Module:
    """A dense, smaller deep copy of ``model`` with every fully pruned channel group removed.

    ``example_input`` is a batch the model accepts (for tracing). The masks are multiplied into
    the copy first, so unstructured zeros inside kept channels are preserved. The copy keeps the
    train/eval mode of ``model``; ``model`` itself is not modified.
    """
    if not isinstance(example_input, Tensor):
        raise UserError(f"compress needs an example input tensor, got {type(example_input).__name__}; "
                        "pass a batch such as torch.zeros(1, 3, 32, 32)")
    plan = removable_channels(model, state, example_input)
    out = masked_model(model, state)
    was_training = out.training
    out.eval()
    if plan:
        dev = next(out.parameters()).device
        dg = build_dependency_graph(out, example_input.to(dev))
        for root, idxs in plan.items():
            layer = out.get_submodule(root)
            pruner = dg.get_pruner_of_module(layer)
            dg.get_pruning_group(layer, pruner.prune_out_channels, idxs).prune()
    out.train(was_training)
    for p in out.parameters():
        p.grad = None
    return out


def compression_gap(model: nn.Module, state, compressed: nn.Module, example_input: Tensor) -> dict[str, float]:
    """Dense vs masked (effective) vs compressed (real) FLOPs per image and parameters, and the gap.

    FLOPs as ``prunebench.pruning.efficiency.flops`` counts them (effective = each pruned layer's
    FLOPs times its density). ``flop_gap`` = real / effective - 1: the fraction of the masked
    model's FLOPs that the compressed model spends on top (0 when every pruned weight is gone).
    """
    from prunebench.pruning.efficiency import count_params, flops

    shape = tuple(example_input.shape[1:])
    masked = flops(model, shape, state)
    real = flops(compressed, shape).dense
    params = count_params(model, state)
    return {
        "dense_flops": masked.dense, "effective_flops": masked.effective, "real_flops": real,
        "effective_flop_ratio": masked.dense / max(masked.effective, 1.0), "real_flop_ratio": masked.dense / max(real, 1.0),
        "flop_gap": real / max(masked.effective, 1.0) - 1.0,
        "dense_params": params.total, "masked_params": params.nonzero,
        "compressed_params": count_params(compressed).total,
    }


# ---------------------------------------------------------------------- CSR export
def export_csr(model: nn.Module, state, path: str | Path, density_threshold: float = 0.3) -> dict[str, float]:
    """Save ``model`` (masks applied) to a safetensors file, weights of density below
    ``density_threshold`` as CSR over (out, in*kh*kw): ``<name>.crow_indices``,
    ``<name>.col_indices`` (int32 when they fit) and ``<name>.values``; the rest dense.

    Returns sizes in bytes: ``{"csr_bytes", "dense_bytes", "ratio", "csr_layers"}`` where
    ``dense_bytes`` is the same model saved densely (measured by writing it to a temp file).
    """
    if not 0.0 <= float(density_threshold) <= 1.0:
        raise UserError(f"density_threshold must be in [0, 1], got {density_threshold}; e.g. 0.3 stores layers "
                        "with at most 30% nonzero weights as CSR")
    path = Path(path)
    if not path.parent.exists():
        raise UserError(f"cannot write {path}: directory {path.parent} does not exist; create it first")
    params = masked_model(model, state).state_dict()
    tensors: dict[str, Tensor] = {}
    shapes: dict[str, list[int]] = {}
    for key, t in params.items():
        t = t.detach().cpu().contiguous()
        mask = state.masks.get(key)
        if mask is not None and t.dim() >= 2 and float(mask.count_nonzero()) / mask.numel() < density_threshold:
            # CSR of the kept positions (the mask, not "value != 0": a kept weight may be 0)
            m2 = mask.detach().cpu().reshape(t.shape[0], -1)
            idx_dtype = torch.int32 if t.numel() < 2**31 else torch.int64
            crow = torch.zeros(t.shape[0] + 1, dtype=torch.int64)
            crow[1:] = m2.sum(1).cumsum(0)
            tensors[f"{key}.crow_indices"] = crow.to(idx_dtype)
            tensors[f"{key}.col_indices"] = m2.nonzero()[:, 1].to(idx_dtype).contiguous()
            tensors[f"{key}.values"] = t.reshape(t.shape[0], -1)[m2].contiguous()
            shapes[key] = list(t.shape)
        else:
            tensors[key] = t
    meta = {"format": CSR_FORMAT, "csr_shapes": json.dumps(shapes)}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    with tempfile.TemporaryDirectory(dir=path.parent) as folder:  # the dense size, measured the same way
        dense = Path(folder) / "dense.safetensors"
        save_file({k: v.detach().cpu().contiguous() for k, v in params.items()}, str(dense))
        dense_bytes = dense.stat().st_size
    csr_bytes = path.stat().st_size
    return {"csr_bytes": float(csr_bytes), "dense_bytes": float(dense_bytes),
            "ratio": csr_bytes / dense_bytes, "csr_layers": float(len(shapes))}


def load_csr(path: str | Path) -> dict[str, Tensor]:
    """Read an :func:`export_csr` file back into a dense ``state_dict``."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise UserError(f"CSR file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(path))
    except Exception as e:  # corrupt / foreign file
        raise UserError(f"cannot read {path} as safetensors ({e}); export it again with export_csr") from None
    if meta.get("format") != CSR_FORMAT:
        raise UserError(f"{path} is not a prunebench CSR export (format {meta.get('format')!r}); use load_file for plain files")
    shapes: Mapping[str, list[int]] = json.loads(meta["csr_shapes"])
    out: dict[str, Tensor] = {}
    for key, t in tensors.items():
        base = key.rsplit(".", 1)[0]
        if base in shapes:
            continue
        out[key] = t
    for key, shape in shapes.items():
        try:
            crow, col, val = (tensors[f"{key}.{s}"].long() if s != "values" else tensors[f"{key}.{s}"]
                              for s in ("crow_indices", "col_indices", "values"))
        except KeyError as e:
            raise UserError(f"{path} lacks the CSR part {e} of {key!r}; the file is truncated, export it again") from None
        rows, cols = shape[0], math.prod(shape[1:])
        counts = crow.diff()
        if (len(crow) != rows + 1 or int(crow[-1]) != len(col) or len(col) != len(val) or bool((counts < 0).any())
                or (len(col) and (int(col.min()) < 0 or int(col.max()) >= cols))):
            raise UserError(f"{path}: inconsistent CSR arrays for {key!r}; the file is corrupt, export it again")
        dense = torch.zeros(rows, cols, dtype=val.dtype)
        dense[torch.repeat_interleave(torch.arange(rows), counts), col] = val
        out[key] = dense.reshape(shape)
    return out
