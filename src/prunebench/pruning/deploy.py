"""An inference-ready copy of a (compressed) model: BatchNorm folded into the preceding
convolution and weights in channels_last memory format.

This is what a deployment does before it measures or ships a model, and it matters for judging
structured pruning: BatchNorm is a memory-bound pass per activation whose cost shrinks only with
the number of channels, not with the FLOPs, so it dilutes the speedup a compressed model gets;
channels_last is the layout oneDNN's fastest CPU convolutions use. Folding is exact up to float
rounding (tested): for a convolution ``y = W x + b`` followed by BatchNorm in eval mode,

    W' = W * s,   b' = (b - mu) * s + beta,   s = gamma / sqrt(var + eps)   (per output channel)

(Ioffe & Szegedy 2015, eq. for the inference transform; the usual conv-BN fusion).
"""
from __future__ import annotations

import copy
import warnings

import torch
from torch import fx, nn


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Return a copy of ``model`` (eval mode) with every Conv2d -> BatchNorm2d pair folded.

    Pairs are found on the ``torch.fx`` graph: a BatchNorm whose only input is a convolution that
    nothing else reads, both modules used once. A model FX cannot trace is returned unfolded (a copy,
    eval mode) with a warning.
    """
    model = copy.deepcopy(model).eval()
    try:
        gm = fx.symbolic_trace(model)
    except Exception as exc:  # noqa: BLE001  (any tracing failure means "cannot fold", not an error)
        warnings.warn(f"BatchNorm not folded: torch.fx cannot trace {type(model).__name__} ({exc})", stacklevel=2)
        return model
    modules = dict(gm.named_modules())
    # A module called from several places (or whose parameters are read directly) is shared:
    # folding it would change its other uses, so only single-use conv -> BN pairs are folded.
    uses: dict[str, int] = {}
    for node in gm.graph.nodes:
        if node.op in ("call_module", "get_attr"):
            target = node.target if node.op == "call_module" else node.target.rpartition(".")[0]
            uses[target] = uses.get(target, 0) + 1
    folded = 0
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or not isinstance(modules.get(node.target), nn.BatchNorm2d):
            continue
        src = node.args[0] if len(node.args) == 1 and not node.kwargs else None
        if not (isinstance(src, fx.Node) and src.op == "call_module" and isinstance(src.target, str) and len(src.users) == 1
                and type(modules.get(src.target)) is nn.Conv2d
                and uses.get(src.target) == 1 and uses.get(node.target) == 1):
            continue
        bn: nn.BatchNorm2d = modules[node.target]
        if bn.running_mean is None or bn.running_var is None:
            continue  # batch statistics even in eval mode: nothing fixed to fold
        _fold_into(modules[src.target], bn)
        node.replace_all_uses_with(src)
        gm.graph.erase_node(node)
        folded += 1
    if folded:
        gm.graph.lint()
        gm.delete_all_unused_submodules()
        gm.recompile()
    return gm.eval()


@torch.no_grad()
def _fold_into(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    mean, var = bn.running_mean, bn.running_var
    assert mean is not None and var is not None  # fold_batchnorm skips a BatchNorm without running statistics
    scale = (bn.weight if bn.affine else torch.ones_like(var)) / torch.sqrt(var + bn.eps)
    shift = bn.bias if bn.affine else torch.zeros_like(mean)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(mean)
    conv.weight.mul_(scale.reshape(-1, 1, 1, 1).to(conv.weight.dtype))
    new_bias = (bias - mean) * scale + shift
    if conv.bias is None:
        conv.bias = nn.Parameter(new_bias.to(conv.weight.dtype))
    else:
        conv.bias.copy_(new_bias)


def prepare_for_inference(model: nn.Module, *, fold_bn: bool = True, channels_last: bool = True) -> nn.Module:
    """An eval-mode copy ready to time or ship: BatchNorm folded, channels_last weights.

    Convolutions given NCHW inputs with channels_last weights compute in channels_last, so
    callers need not convert their inputs. The original model is left untouched.
    """
    out = fold_batchnorm(model) if fold_bn else copy.deepcopy(model).eval()
    if channels_last:
        out = out.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # Module.to takes it; the stubs omit it
    return out
