"""Study reports: ``write_report(run_dir)`` -> a self-contained ``report.html`` and a ``summary.md``
(plus ``prune_potential.txt``, the terminal table).

The report is computed from the result rows (``prunebench.study.results.load_results``) and the
run's ``config.yaml``; see docs/STUDY.md for the data flow.
"""
from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from prunebench.analysis import CONFIDENCE, DEFAULT_DELTA, N_BOOT, Roles, analyze
from prunebench.atomic import write_atomic
from prunebench.errors import UserError

HTML_NAME, MD_NAME, TABLE_NAME = "report.html", "summary.md", "prune_potential.txt"


def _write(path: Path, text: str) -> None:
    write_atomic(path, text)


def distribution_roles() -> Roles:
    """The reference distribution and the default shifted set, from the evaluators' specs
    (``EvaluatorSpec.reference`` / ``default_shift``): what :func:`prunebench.analysis.analyze` needs."""
    from prunebench.evaluation.registry import EVALUATORS

    specs = EVALUATORS.specs()
    ref = next((s.reference for s in specs if s.reference), None)
    return Roles(ref, {s.name: s.default_shift for s in specs if s.default_shift})


def _config_of(run: Path) -> Mapping[str, Any] | None:
    from prunebench.study.rundir import read_config_text

    try:
        config = yaml.safe_load(read_config_text(run) or "")
    except yaml.YAMLError:
        return None
    return config if isinstance(config, Mapping) else None


def _delta_from(config: Mapping[str, Any] | None) -> float:
    """``delta`` from the config (top level or under ``analysis``/``report``), else ``DEFAULT_DELTA``."""
    for scope in (config or {}, (config or {}).get("analysis") or {}, (config or {}).get("report") or {}):
        if isinstance(scope, Mapping) and isinstance(scope.get("delta"), (int, float)):
            return float(scope["delta"])
    return DEFAULT_DELTA


def render_report(rows: Sequence[Mapping[str, Any]], out_dir: str | Path, *, config_text: str | None = None,
                  delta: float | None = None, n_boot: int = N_BOOT, seed: int = 0, title: str | None = None,
                  outcomes: Mapping[str, Any] | None = None, num_classes: int | None = None,
                  confidence: float = CONFIDENCE, failures: Sequence[Any] = (), pending: int = 0,
                  who: Any = None) -> tuple[Path, Path]:
    """Analyse ``rows`` and write ``report.html`` + ``summary.md`` into ``out_dir``; returns both paths.

    Also writes ``prune_potential.txt``, the plain-text prune-potential table (``prunebench report`` prints it).
    ``failures`` (:func:`prunebench.study.rundir.cell_failures`) and ``pending`` (``pending_cells``) put an
    "Incomplete study" section first: what failed, why, what to do. ``who``
    (:func:`prunebench.study.whopays.who_pays`) adds the "Who pays for pruning" section.
    """
    from prunebench.report.html import render_html
    from prunebench.report.sections import build_document
    from prunebench.report.summary import render_markdown

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    try:
        config = yaml.safe_load(config_text) if config_text else None
    except yaml.YAMLError:
        config = None
    config = config if isinstance(config, Mapping) else None
    delta = _delta_from(config) if delta is None else float(delta)
    an = analyze(list(rows), outcomes, delta, level=confidence, n_boot=n_boot, seed=seed, num_classes=num_classes,
                 roles=distribution_roles())
    doc = build_document(list(rows), an, title or str(out), config, config_text, failures, pending, who)
    subtitle = (f"generated {time.strftime('%Y-%m-%d %H:%M')} | delta = {100 * delta:g}% | confidence "
                f"{100 * an.level:g}% | {len(rows)} model rows")
    html_path, md_path = out / HTML_NAME, out / MD_NAME
    _write(html_path, render_html(doc, subtitle))
    _write(md_path, render_markdown(doc, subtitle))
    _write(out / TABLE_NAME, _terminal_table(list(rows), an) + "\n")
    return html_path, md_path


def write_report(run_dir: str | Path, *, delta: float | None = None, n_boot: int = N_BOOT, seed: int = 0,
                 confidence: float = CONFIDENCE) -> tuple[Path, Path]:
    """Write ``<run_dir>/report.html`` (self-contained) and ``<run_dir>/summary.md`` from the run's results."""
    from prunebench.study.results import load_study_predictions
    from prunebench.study.rundir import RESULTS_FILE, cell_failures, num_classes, pending_cells, read_config_text
    from prunebench.study.whopays import who_pays

    run = Path(run_dir)
    if not run.is_dir() or not (run / RESULTS_FILE).is_file():
        raise UserError(f"{run} is not a prunebench run directory (no {RESULTS_FILE}); pass the folder `prunebench run` wrote")

    rows, outcomes, predictions = load_study_predictions(run)  # one pass over the store for everything below
    failures = cell_failures(run)
    if not rows:
        if failures:
            f = failures[0]
            raise UserError(f"{run} holds no finished model results: {len(failures)} cell(s) failed or are blocked, "
                            f"first {f.describe()}: {f.error}; {f.hint}")
        raise UserError(f"{run} holds no finished model results yet; run the study first (prunebench run)")
    return render_report(rows, run, config_text=read_config_text(run), delta=delta, n_boot=n_boot, seed=seed,
                         title=str(run), outcomes=outcomes, num_classes=num_classes(run), confidence=confidence,
                         failures=failures, pending=pending_cells(run),
                         who=who_pays(run, class_delta=_delta_from(_config_of(run)) if delta is None else delta,
                                      confidence=confidence, n_boot=n_boot, seed=seed,
                                      study=(rows, outcomes, predictions)))


def _terminal_table(rows: Sequence[Mapping[str, Any]], an: Any) -> str:
    """The prune-potential table, or for a sparse-train study its accuracy table and verdicts."""
    from prunebench.analysis.sparse import is_sparse_study

    if is_sparse_study(rows):
        from prunebench.report.sparse import terminal_text

        return terminal_text(rows, an)
    return an.table


def read_table(md_path: Path) -> str:
    """The terminal prune-potential table that :func:`write_report` wrote next to ``summary.md``."""
    txt = Path(md_path).with_name(TABLE_NAME)
    return txt.read_text(encoding="utf-8").rstrip() if txt.is_file() else ""


def study_table(run_dir: str | Path, *, delta: float, confidence: float = CONFIDENCE) -> str:
    """The terminal prune-potential table of a run (with paired intervals), without writing a report."""
    from prunebench.study.results import load_study
    from prunebench.study.rundir import num_classes

    run = Path(run_dir)
    rows, outcomes = load_study(run)
    an = analyze(rows, outcomes, delta, level=confidence, num_classes=num_classes(run), roles=distribution_roles())
    return _terminal_table(rows, an)


__all__ = ["TABLE_NAME", "distribution_roles", "read_table", "render_report", "study_table", "write_report"]
