"""Studies: a YAML config -> independent cells (train / prune / eval) -> results store -> rows -> analysis.

``run_study(config, run_dir)`` runs (or resumes) a study; ``load_results(run_dir)`` returns its rows
(docs/STUDY.md). Submodules: ``config`` (schema) + ``loader`` (YAML, bundled configs, messages, registry checks), ``plan``
(cells and keys), ``cells`` (what a cell does), ``executors`` (where cells run), ``runner`` (scheduling,
run directory), ``results`` (rows, outcomes, export). The analysis of the rows is its own torch-free
package, :mod:`prunebench.analysis`. Names below are imported lazily, so ``import prunebench.study``
stays cheap. (``plan`` is the submodule here; the function is ``prunebench.study.plan.plan``.)
"""
from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "StudyConfig": "config", "load_config": "loader", "Cell": "plan",
    "export_results": "results", "load_outcomes": "results", "load_results": "results", "load_study": "results",
    "RunSummary": "runner", "run_study": "runner", "load_predictions": "results", "WhoPays": "whopays",
    "who_pays": "whopays",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f"prunebench.study.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'prunebench.study' has no attribute {name!r}")


__all__ = sorted(_LAZY)
