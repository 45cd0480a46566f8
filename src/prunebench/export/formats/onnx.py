"""ONNX: the compressed, BatchNorm-folded model as an ONNX graph (opset 17, dynamic batch axis),
verified in onnxruntime. Written with PyTorch's TorchScript-based exporter, which needs no package
beyond torch for a feed-forward CNN; onnxruntime (``pip install 'prunebench[export]'``) runs the check."""
from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from prunebench.errors import UserError
from prunebench.export.base import Source
from prunebench.export.registry import FORMATS

OPSET = 17
INPUT, OUTPUT = "input", "logits"


@FORMATS.register("onnx", suffix=".onnx", compressed=True, folded=True, needs=("onnxruntime",))
def write_onnx(model: nn.Module, source: Source, path: Path) -> Callable[[Tensor], Tensor]:
    """ONNX graph of the compressed, BatchNorm-folded model, checked in onnxruntime."""
    session_for = runtime()  # before the export: a missing onnxruntime costs no work
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript-based exporter is deprecated, not gone
            warnings.simplefilter("ignore", torch.jit.TracerWarning)  # constant shapes: the check below catches a bad trace
            torch.onnx.export(model, (source.images[:1].cpu(),), str(path), dynamo=False, opset_version=OPSET,
                              input_names=[INPUT], output_names=[OUTPUT],
                              dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}})
    except Exception as e:  # noqa: BLE001  (any exporter failure is "this model cannot be exported")
        first = " ".join(str(e).split())[:200]
        raise UserError(f"onnx cannot export {type(source.model).__name__} ({type(e).__name__}: {first}); make its "
                        "forward traceable (tensor ops only, no Python-side autograd Functions or .item()) "
                        "or export --format safetensors") from None
    session = session_for(path, threads=1)
    return lambda x: torch.from_numpy(session.run(None, {INPUT: x.detach().cpu().numpy()})[0])


def runtime() -> Callable[..., Any]:
    """``session(path, threads)``: an onnxruntime CPU session with fixed thread counts; a one-line error
    naming the extra when onnxruntime is not installed."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise UserError("ONNX export needs onnxruntime to verify the file: pip install 'prunebench[export]' "
                        "(or pip install onnx onnxruntime)") from None

    def session(path: Path, threads: int = 1):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.log_severity_level = 3
        return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])

    return session
