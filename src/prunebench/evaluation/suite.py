"""Run a list of evaluators on one model and namespace their metrics as ``"<evaluator>/<key>"``.

Evaluators return floats, and per-example outcomes as boolean tensors: ``"correct/<distribution>"``
for every accuracy-type distribution, ``"agree/<distribution>"`` / ``"baseline_agree/<distribution>"``
where an evaluator compares predictions with the parent (see :mod:`prunebench.analysis.outcomes`).
:func:`evaluate_suite` separates the two, :func:`run_suite` keeps the metrics only.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from prunebench.evaluation.base import EvalContext
from prunebench.evaluation.registry import EVALUATORS


@dataclass
class SuiteResult:
    """Flat metrics ``"<evaluator>/<key>" -> float`` and per-example outcomes ``"correct/<dist>" -> bool array``."""

    metrics: dict[str, float] = field(default_factory=dict)
    outcomes: dict[str, np.ndarray] = field(default_factory=dict)
    labels: dict[str, np.ndarray] = field(default_factory=dict)  # "pred/<dist>", "label/<dist>" -> uint8 (n,)


def run_suite(model: nn.Module, ctx: EvalContext, names: Sequence[str],
              options: dict[str, dict[str, Any]] | None = None) -> dict[str, float]:
    """Evaluate ``model`` with each named evaluator (options per evaluator name); flat merged metrics."""
    return evaluate_suite(model, ctx, names, options).metrics


def evaluate_suite(model: nn.Module, ctx: EvalContext, names: Sequence[str],
                   options: dict[str, dict[str, Any]] | None = None) -> SuiteResult:
    """Like :func:`run_suite`, also returning the per-example outcomes of every accuracy-type distribution.

    Every name and every evaluator's options are checked before any work."""
    specs = {name: EVALUATORS.spec(name) for name in names}
    parsed = {name: spec.parse_options((options or {}).get(name)) for name, spec in specs.items()}
    for name, spec in specs.items():
        if spec.needs_parent:
            ctx.require_parent(name)
    model.eval()
    res = SuiteResult()
    for name, spec in specs.items():
        for key, value in spec.obj(model, ctx, parsed[name]).items():
            if isinstance(value, torch.Tensor) and value.dtype == torch.bool:
                res.outcomes[key] = value.detach().cpu().numpy()
            elif isinstance(value, torch.Tensor) and value.dtype == torch.uint8:
                res.labels[key] = value.detach().cpu().numpy()
            else:
                res.metrics[f"{name}/{key}"] = float(value)
    return res
