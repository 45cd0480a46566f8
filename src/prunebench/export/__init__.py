"""Ship a pruned model: ``export_checkpoint(ckpt, "onnx", "model.onnx")`` writes the model a deployment
runs (compressed, BatchNorm folded: :mod:`prunebench.export.base`) in a registered format
(:data:`FORMATS`: onnx, torchscript, safetensors, csr) and verifies the *written file* against the
PyTorch checkpoint on real test images before moving it into place: a file that disagrees by more
than the tolerance, or an export that fails, leaves nothing behind. :func:`onnx_latency` times an
ONNX file in onnxruntime. ``onnx``/``onnxruntime`` are the optional ``[export]`` extra, imported
only by the formats that need them.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from prunebench.errors import UserError
from prunebench.export.base import Source, reference_logits, shipped_model
from prunebench.export.latency import onnx_latency
from prunebench.export.registry import FORMATS, FormatSpec

ATOL = 1e-4  # max abs logit difference accepted, relative to max(1, max |logit|)


@dataclass(frozen=True)
class ExportReport:
    """What an export wrote and how well the file reproduces the checkpoint."""

    path: Path
    format: str
    bytes: int
    params_before: int  # parameters of the checkpoint's (masked, full-size) model
    params_after: int  # parameters of the shipped model
    max_abs_diff: float  # over ``images`` logits, file vs PyTorch checkpoint
    images: int
    compressed: bool  # channels were physically removed (fewer convolution / linear weights)


def load_source(checkpoint: str | Path, *, images: int = 64, data=None) -> Source:
    """The checkpoint (CPU, eval) and the first ``images`` test images of its dataset, normalized."""
    from prunebench.data.fits import data_for
    from prunebench.store import load_checkpoint

    ckpt = load_checkpoint(checkpoint, "cpu")
    data = data if data is not None else data_for(ckpt.meta)
    x = data.normalize(data.test.subset(slice(0, images)).float_images())
    return Source(ckpt.model.eval(), ckpt.pruning_state(), ckpt.meta, x)


def export(source: Source, fmt: str, out: str | Path, *, atol: float = ATOL) -> ExportReport:
    """Write ``source`` as ``fmt`` to ``out``, verified (see the module docstring)."""
    from prunebench.pruning import count_params

    spec: FormatSpec = FORMATS.spec(fmt)
    out = Path(out)
    model = shipped_model(source, compressed=spec.compressed, folded=spec.folded)
    expected = reference_logits(source)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as folder:
        tmp = Path(folder) / out.name  # the real name: writers that append a suffix find it already there
        run = spec.obj(model, source, tmp)
        got = run(source.images).float()
        if got.shape != expected.shape:
            raise UserError(f"the {fmt} file gives outputs of shape {tuple(got.shape)}, the checkpoint "
                            f"{tuple(expected.shape)}; nothing written")
        diff = float((got - expected).abs().max())
        scale = max(1.0, float(expected.abs().max()))
        if not diff <= atol * scale:
            raise UserError(f"the {fmt} file disagrees with the PyTorch model by {diff:.3g} (max abs logit "
                            f"difference, tolerance {atol * scale:.3g}); nothing written, report it with --debug")
        size = tmp.stat().st_size
        os.replace(tmp, out)
    return ExportReport(out, fmt, size, count_params(source.model, source.state).total, count_params(model).total,
                        diff, len(source.images), _layer_weights(model) < _layer_weights(source.model))


def _layer_weights(model: torch.nn.Module) -> int:
    """Weights of the convolutions and linear layers (BatchNorm folding leaves them, compression removes some)."""
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)))


def export_checkpoint(checkpoint: str | Path, fmt: str, out: str | Path, *, images: int = 64, data=None,
                      atol: float = ATOL) -> ExportReport:
    """Load ``checkpoint`` and :func:`export` it (``data``: a Dataset instead of the checkpoint's own)."""
    return export(load_source(checkpoint, images=images, data=data), fmt, out, atol=atol)


def dense_onnx(source: Source, out: str | Path) -> Path:
    """The same network unpruned-shaped (masked weights, no channel removed, BatchNorm folded) as ONNX:
    the dense parent's cost, for :func:`onnx_latency` side by side with the pruned export."""
    from prunebench.export.formats.onnx import write_onnx

    model = shipped_model(Source(source.model, None, source.meta, source.images), compressed=False, folded=True)
    with torch.no_grad():
        write_onnx(model, source, Path(out))
    return Path(out)


__all__ = ["ATOL", "FORMATS", "ExportReport", "FormatSpec", "Source", "dense_onnx", "export", "export_checkpoint",
           "load_source", "onnx_latency", "shipped_model"]
