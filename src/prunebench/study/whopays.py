"""Python access to "who pays for pruning" of a run directory: per-class tables, classes that pay, PIEs.

``who_pays(run_dir)`` -> :class:`WhoPays` with lists of dicts (``.frames()`` gives pandas DataFrames when
pandas is installed). Needs the predicted classes and labels the nominal evaluator records
(:func:`prunebench.study.results.load_predictions`); a run evaluated before they were recorded gets empty
tables and ``missing`` says to rerun into a new ``--out``. Computation: :mod:`prunebench.analysis.whopays`.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prunebench.analysis.paired import CONFIDENCE, N_BOOT
from prunebench.analysis.rows import DEFAULT_DELTA

MISSING = ("this run's evaluations recorded no predicted classes (evaluated before prunebench stored them); "
           "rerun the study into a new --out directory (`prunebench run CONFIG --out NEW`) to get per-class Delta and PIEs")


@dataclass
class WhoPays:
    """Per-class rows, "classes that pay" rows, PIE rows (with indices into the test split) and PIE overlaps."""

    per_class: list[dict[str, Any]] = field(default_factory=list)
    classes_that_pay: list[dict[str, Any]] = field(default_factory=list)
    pies: list[dict[str, Any]] = field(default_factory=list)
    pie_overlap: list[dict[str, Any]] = field(default_factory=list)
    classes: tuple[str, ...] = ()
    missing: str | None = None  # why the tables are empty, if they are
    data: dict[str, Any] | None = None  # the study's dataset spec (plan cells' ``run.data``): where the PIE images are

    def frames(self) -> dict[str, Any]:
        """The four tables as pandas DataFrames (ImportError with the fix when pandas is not installed)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("pandas is not installed; pip install pandas, or use the lists of dicts") from None
        return {k: pd.DataFrame(getattr(self, k)) for k in ("per_class", "classes_that_pay", "pies", "pie_overlap")}


def data_spec_of(run: Path) -> dict[str, Any] | None:
    """The dataset spec the run's cells load (``run.data`` of ``plan.json``: name, root, limits), or None."""
    from prunebench.study.rundir import read_plan_cells

    cells = read_plan_cells(run) or []
    try:
        spec = cells[0]["run"]["data"] if cells else None
    except (KeyError, TypeError):
        return None
    return dict(spec) if isinstance(spec, dict) and "name" in spec else None


def class_names_of(run: Path) -> tuple[str, ...]:
    """The dataset's class names (``DataInfo.classes``) for the run's plan, or () when the data cannot be read:
    from the run's ``data.json`` when it has one, else by loading the dataset (runs written before it existed)."""
    from prunebench.errors import UserError
    from prunebench.study.cells import get_dataset
    from prunebench.study.rundir import read_data_summary

    summary = read_data_summary(run)
    if summary is not None and isinstance(summary.get("classes"), list):
        return tuple(str(c) for c in summary["classes"])
    spec = data_spec_of(run)
    try:
        return tuple(get_dataset(spec).info.classes) if spec else ()
    except (UserError, OSError, KeyError, ValueError):
        return ()


def who_pays(run_dir: str | Path, *, class_delta: float = DEFAULT_DELTA, confidence: float = CONFIDENCE,
             n_boot: int = N_BOOT, seed: int = 0, classes: tuple[str, ...] | None = None,
             study: tuple[Sequence[Mapping[str, Any]], Mapping[str, Any], Mapping[str, Any]] | None = None) -> WhoPays:
    """Per-class Delta (paired intervals, verdicts against ``class_delta``) and PIEs of every method x ratio.

    ``study``: the run's (rows, outcomes, predictions) when the caller already read them
    (:func:`prunebench.study.results.load_study_predictions`, as the report does); else they are read here,
    in one pass. Only the plan is read then (number of classes, class names, dataset spec).
    """
    from prunebench.analysis.whopays import class_tables, pie_tables, study_labels
    from prunebench.study.results import load_study_predictions
    from prunebench.study.rundir import num_classes

    run = Path(run_dir)
    rows, outcomes, preds = study if study is not None else load_study_predictions(run)
    labels = study_labels(preds)
    nc = num_classes(run)
    if labels is None or nc is None:
        return WhoPays(missing=MISSING)
    names = tuple(classes) if classes is not None else class_names_of(run)
    per_class, pay = class_tables(rows, outcomes, labels, nc, classes=names, class_delta=class_delta, level=confidence,
                                  n_boot=n_boot, seed=seed)
    pies, over = pie_tables(rows, preds, nc)
    return WhoPays(per_class, pay, pies, over, names, data=data_spec_of(run))


__all__ = ["MISSING", "WhoPays", "class_names_of", "data_spec_of", "who_pays"]
