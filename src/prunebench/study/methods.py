"""The study's narrow interface to pruning: option checks, the prune call, parameter / FLOP counts."""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

# Options that only make sense for structured (channel / filter) methods; on an unstructured method they
# are a configuration mistake, reported before anything runs.
STRUCTURED_ONLY = frozenset({"norm", "compress", "input_shape"})  # norm: FT's filter norm


def load_methods() -> None:
    """Import the pruning package so every method is registered."""
    import prunebench.pruning  # noqa: F401


def check_method_options(name: str, options: Mapping[str, Any]) -> str | None:
    """A one-line problem with ``options`` for method ``name``, or None.

    Methods declare their option names at registration (``options=(...)``); an option that only
    structured methods take, given to an unstructured one, gets its own message.
    """
    from prunebench.pruning.base import METHODS

    load_methods()
    reserved = sorted(set(options) & {"data", "state", "selection", "seed", "device", "ratio", "method", "model"})
    if reserved:
        return f"option(s) {reserved} are set by the study itself; remove them (use the top-level selection / seeds keys)"
    meta = METHODS.meta(name)
    structured = bool(meta.get("structured"))
    declared = meta.get("options")
    unknown = sorted(set(options) - set(declared)) if declared is not None else []
    if not structured:
        struct_opts = set(STRUCTURED_ONLY)
        for other in METHODS.names():
            if METHODS.meta(other).get("structured"):
                struct_opts |= set(METHODS.meta(other).get("options") or ())
        bad = sorted((set(unknown) if declared is not None else set(options)) & struct_opts)
        if bad:
            structured_names = ", ".join(n for n in METHODS.names() if METHODS.meta(n).get("structured"))
            return (f"option(s) {bad} apply to structured (filter) methods only and {name!r} is unstructured; "
                    f"remove them or use a structured method ({structured_names})")
    if unknown:
        return f"unknown option(s) {unknown} for pruning method {name!r}; it accepts: {', '.join(declared) or 'none'}"
    return None


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
