"""Pruning: masks, layer selection, importance, allocation, methods and the ``prune`` entry point.

    from prunebench.pruning import prune, Selection
    state = prune(model, "wt", 0.9, selection=Selection(keep_last_dense=True))
"""
from prunebench.pruning.api import prune
from prunebench.pruning.base import PruneContext, check_ratio
from prunebench.pruning.deploy import fold_batchnorm, prepare_for_inference
from prunebench.pruning.efficiency import FlopCount, ParamCount, count_params, flops, measure_latency
from prunebench.pruning.masks import MaskViolation, PruningState
from prunebench.pruning.registry import METHODS, MethodSpec
from prunebench.pruning.selection import Selection, prunable_layers

__all__ = [
    "METHODS", "MethodSpec", "PruneContext", "check_ratio", "MaskViolation", "PruningState", "Selection", "prunable_layers",
    "prune", "FlopCount", "ParamCount", "count_params", "flops", "measure_latency", "fold_batchnorm",
    "prepare_for_inference",
]
