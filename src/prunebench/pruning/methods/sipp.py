"""SiPP, sensitivity-informed provable pruning, deterministic variant (Baykal et al., arXiv 1910.05422).

Sensitivity of weight (i, j): s_ij = max over x in S of the mean over patches of
g_{ij,p}(x) = W_ij a_{j,p}(x) / z^{sign W_ij}_{i,p}(x) (positive / negative parts of W separately,
relu(a) / relu(-a) copies for negative activations, g = 0 where |z| <= float32 eps);
see :mod:`prunebench.pruning.sensitivity`. Deterministic SiPP keeps the global top-(d * total)
sensitivities with no reweighting (torchprune ``SiPPNet``). The randomized / hybrid variants
(sampling per output unit with reweighting) are not implemented.

S: |S| = ceil(3 ln(8 eta* / delta)), delta = 1e-16 / eta (see ``sensitivity.sample_size``),
capped at half the validation split; drawn from ``data.val`` (never the test split).
"""
from __future__ import annotations

from torch import Tensor, nn

from prunebench.pruning.allocation import global_topk
from prunebench.pruning.base import PruneContext
from prunebench.pruning.masks import PruningState
from prunebench.pruning.registry import METHODS
from prunebench.pruning.selection import module_name
from prunebench.pruning.sensitivity import SampleOptions, sample_size, sensitivity_inputs, weight_sensitivity


@METHODS.register("sipp", options=SampleOptions, structured=False, data_informed=True, color="#17becf", label="SiPP")
def sipp(model: nn.Module, state: PruningState, ratio: float, ctx: PruneContext) -> dict[str, Tensor]:
    """Keep the globally most sensitive weights (mean over patches, max over S)."""
    opts = ctx.opts(SampleOptions)
    data = ctx.require_data("sipp")
    dev = next(iter(state.weights().values())).device
    layers = {module_name(k): model.get_submodule(module_name(k)) for k in state.masks}
    n = opts.num_samples
    if n is None:
        example = sensitivity_inputs(data, 1, generator=ctx.generator("cpu"), device=dev)
        n = sample_size(model, layers, example)
    x = sensitivity_inputs(data, int(n), generator=ctx.generator("cpu"), device=dev)
    sens = weight_sensitivity(model, layers, x, patch_reduce="mean", batch_size=opts.batch_size)
    scores = {k: sens[module_name(k)] for k in state.masks}
    return global_topk(scores, state.masks, ratio)
