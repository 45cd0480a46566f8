"""Run a list of evaluators on one model and namespace their metrics as ``"<evaluator>/<key>"``."""
from __future__ import annotations

from typing import Any, Sequence

from torch import nn

from prunebench.evaluation.base import EVALUATORS, EvalContext


def run_suite(model: nn.Module, ctx: EvalContext, names: Sequence[str],
              options: dict[str, dict[str, Any]] | None = None) -> dict[str, float]:
    """Evaluate ``model`` with each named evaluator (options per evaluator name); flat merged metrics."""
    import prunebench.evaluation  # noqa: F401  (registers every evaluator)

    fns = {name: EVALUATORS.get(name) for name in names}  # fail on a bad name before any work
    for name in names:
        if EVALUATORS.meta(name).get("needs_parent"):
            ctx.require_parent(name)
    model.eval()
    metrics: dict[str, float] = {}
    for name, fn in fns.items():
        for key, value in fn(model, ctx, **(options or {}).get(name, {})).items():
            metrics[f"{name}/{key}"] = float(value)
    return metrics
