"""The study's narrow interface to pruning: option checks, the method facts the rows carry, the prune call,
parameter / FLOP counts."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from prunebench.errors import UserError

RESERVED = frozenset({"data", "state", "selection", "seed", "device", "ratio", "method", "model"})  # set by the study


def check_method_options(name: str, options: Mapping[str, Any]) -> str | None:
    """A one-line problem with ``options`` for method ``name``, or None.

    Checked against the method's options model (:mod:`prunebench.pruning.registry`); an option that
    only structured methods take, given to an unstructured one, gets its own message.
    """
    from prunebench.pruning.registry import METHODS, structured_only_options

    reserved = sorted(set(options) & RESERVED)
    if reserved:
        return f"option(s) {reserved} are set by the study itself; remove them (use the top-level selection / seeds keys)"
    spec = METHODS.spec(name)
    if not spec.structured:
        only = structured_only_options()
        bad = sorted(k for k in options if k in only and k not in spec.options.model_fields)
        if bad:
            takers = sorted({m for k in bad for m in only[k]})
            return (f"option(s) {bad} apply to structured (filter) methods only and {name!r} is unstructured; "
                    f"remove them or use a structured method ({', '.join(takers)})")
    try:
        spec.parse_options(options)
    except UserError as e:
        return str(e)
    return None


def non_default_options(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """The method's options that differ from their defaults (what a prune cell's key holds)."""
    from prunebench.pruning.registry import METHODS

    return METHODS.spec(name).non_default(options)


def method_kind(name: str) -> dict[str, bool]:
    """``structured`` / ``baseline`` of method ``name`` (written into each pruned model's labels and
    result row, so that the analysis knows them without importing the registry)."""
    from prunebench.pruning.registry import METHODS

    spec = METHODS.spec(name)
    return {"structured": spec.structured, "baseline": spec.baseline}


def prune_model(model: nn.Module, method: str, ratio: float, *, data: Any, masks: Mapping[str, torch.Tensor] | None,
                selection: Mapping[str, Any], seed: int, device: torch.device, options: Mapping[str, Any]):
    """Prune ``model`` in place to ``ratio`` (cascade: starting from ``masks``); returns the PruningState."""
    from prunebench.pruning import PruningState, Selection, prune

    sel = Selection.from_dict(dict(selection)) if selection else Selection()
    state = PruningState(model, masks, sel) if masks else None
    return prune(model, method, ratio, data=data, state=state, selection=sel, seed=seed, device=device, **dict(options))


def efficiency(model: nn.Module, state: Any, info: Any, device: torch.device) -> dict[str, float]:
    """``params_total``, ``params_nonzero``, ``flops_dense``, ``flops_effective`` (per image) of a (pruned) model."""
    from prunebench.pruning import count_params, flops

    params = count_params(model, state)
    fl = flops(model, (int(info.in_channels), *map(int, info.image_size)), state)
    return {"params_total": int(params.total), "params_nonzero": int(params.nonzero),
            "flops_dense": float(fl.dense), "flops_effective": float(fl.effective)}
