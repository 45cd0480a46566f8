"""Result rows of a run directory (docs/STUDY.md): one flat dict per finished model cell, eval metrics merged.

Only the cells of the run's current plan (``plan.json``) count, so records left in the store by an
earlier config (still valid under their own keys and reused if that config comes back) never leak
into the rows. An eval record is merged only if it evaluated the model's current checkpoint.
"""
from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prunebench.errors import UserError
from prunebench.study.compute import budget
from prunebench.study.kinds import MODEL_KINDS

BASE_FIELDS = ("model_key", "kind", "method", "rep", "cycle", "target_ratio", "prune_ratio",
               "params_total", "params_nonzero", "flops_dense", "flops_effective")
# beyond the schema: was this model retrained, the repetition's seed, the method's kind (pruned rows)
EXTRA_FIELDS = ("retrained", "seed", "structured", "baseline")
# sparse-train studies (labels): the run (criterion x scheme x update) and model size; metrics: gradient
# norm at initialisation and the realised per-layer densities
LABEL_FIELDS = ("run", "size", "criterion", "scheme", "update",  # sparse-train runs
                "scratch", "pipeline")  # scratch baselines: their setup; pruned rows: the method's tag without the LR
SPARSE_METRICS = ("grad_norm_init", "layer_densities")


def load_results(run_dir: str | Path, *, as_frame: bool = False) -> Any:
    """The rows of ``run_dir`` (list of dicts; a pandas DataFrame with ``as_frame=True``)."""
    rows, _ = load_study(run_dir, outcomes=False)
    if as_frame:
        try:
            import pandas as pd
        except ImportError:
            raise UserError("as_frame=True needs pandas, which is not installed; pip install pandas, "
                            "or use the list of dicts (as_frame=False)") from None
        return pd.DataFrame(rows, columns=columns(rows))
    return rows


def load_outcomes(run_dir: str | Path) -> dict[str, dict[str, Any]]:
    """Per-example outcomes of every result row: ``model_key -> {"correct/<distribution>" -> bool array}``.

    Same filter as :func:`load_results` (current plan, eval of the model's current checkpoint). Models
    evaluated before prunebench recorded outcomes simply have none (the analysis then marks their
    intervals unavailable). Arrays follow :mod:`prunebench.analysis.outcomes`.
    """
    return load_study(run_dir)[1]


def load_predictions(run_dir: str | Path) -> dict[str, dict[str, Any]]:
    """Predicted classes and labels per example: ``model_key -> {"pred/<dist>" | "label/<dist>" -> uint8 array}``.

    Same filter as :func:`load_results`. Evaluations recorded before prunebench stored predictions have
    none (per-class Delta and PIEs then need a rerun into a new ``--out``); nothing fails.
    """
    run = Path(run_dir)
    return _predictions(run, *_read(run))


def _predictions(run: Path, cells: list[dict[str, Any]], records: dict[str, Any]) -> dict[str, dict[str, Any]]:
    from prunebench.analysis.outcomes import PREDICTIONS_KEY, unpack_labels

    out: dict[str, dict[str, Any]] = {}
    for cell, rec, model in _current_evals(cells, records):
        for tag, packed in (rec.metrics.get(PREDICTIONS_KEY) or {}).items():
            try:
                out.setdefault(model["model_key"], {})[tag] = unpack_labels(packed)
            except (KeyError, TypeError, ValueError) as e:
                raise UserError(f"the predictions of eval cell {cell['key']} in {run} are damaged ({e}); delete "
                                "that record or rerun into a new --out directory") from None
    return out


def load_study(run_dir: str | Path, *, outcomes: bool = True) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """Rows and (unless ``outcomes=False``) per-example outcomes of ``run_dir`` from ONE read-only pass
    over its plan and store (what the report, ``run``'s summary and the analysis need together)."""
    run = Path(run_dir)
    return _rows_outcomes(run, *_read(run), outcomes)


def load_study_predictions(run_dir: str | Path) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]],
                                                         dict[str, dict[str, Any]]]:
    """Rows, per-example outcomes and predictions (:func:`load_study` + :func:`load_predictions`) from ONE
    read-only pass over the plan and store: what the report with its "Who pays" section needs."""
    run = Path(run_dir)
    cells, records = _read(run)
    rows, outcomes = _rows_outcomes(run, cells, records, True)
    return rows, outcomes, _predictions(run, cells, records)


def _rows_outcomes(run: Path, cells: list[dict[str, Any]], records: dict[str, Any],
                   outcomes: bool) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    from prunebench.analysis.outcomes import OUTCOMES_KEY, unpack

    rows: dict[str, dict[str, Any]] = {}
    out: dict[str, dict[str, Any]] = {}
    for cell, rec, row in _current_evals(cells, records, rows):
        row.update({k: v for k, v in rec.metrics.items() if "/" in k and not isinstance(v, (dict, list))})
        if not outcomes:
            continue
        for tag, packed in (rec.metrics.get(OUTCOMES_KEY) or {}).items():
            try:
                out.setdefault(row["model_key"], {})[tag] = unpack(packed)
            except (KeyError, TypeError, ValueError) as e:
                raise UserError(f"the outcomes of eval cell {cell['key']} in {run} are damaged ({e}); delete "
                                "that record or rerun into a new --out directory") from None
    for row in rows.values():
        row.pop("_sha")
    return list(rows.values()), out


def _current_evals(cells: list[dict[str, Any]], records: dict[str, Any],
                   rows: dict[str, dict[str, Any]] | None = None) -> Iterator[tuple[dict[str, Any], Any, dict[str, Any]]]:
    """(eval cell, its record, its model's row) for every finished eval of a finished model's current
    checkpoint, in plan order; model rows are built into ``rows`` on the way (one filter for every reader)."""
    rows = {} if rows is None else rows
    for cell in cells:
        rec = records.get(cell["key"])
        if rec is None:
            continue
        if cell["kind"] in MODEL_KINDS:
            model_row = rows[cell["key"]] = _model_row(cell, rec.metrics)
            model_row.update(budget(rec.metrics.get("compute"), rows.get(cell["config"].get("from"))))
            continue
        row = rows.get(cell["config"]["model"])
        if row is None or (rec.metrics.get("inputs") or {}).get(row["model_key"]) != row["_sha"]:
            continue  # model not finished, or this eval saw an older checkpoint
        yield cell, rec, row


def _read(run: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The plan's cells (model cells before their evals, as planned) and the store's finished records,
    read-only; a directory that is not a run is one UserError."""
    from prunebench.store.resultstore import ResultStore
    from prunebench.study.rundir import PLAN_FILE, RESULTS_FILE, check_run_dir, is_run_dir, read_plan_cells

    if not is_run_dir(run):
        raise UserError(f"{run} is not a prunebench run directory (no {PLAN_FILE} / {RESULTS_FILE}); "
                        "pass the folder `prunebench run` wrote")
    check_run_dir(run)
    cells = read_plan_cells(run, strict=True)
    if cells is None:
        raise UserError(f"{run / PLAN_FILE} is unreadable; rerun `prunebench run` to rewrite it")
    with ResultStore(run / RESULTS_FILE, readonly=True) as store:
        records = {r.key: r for r in store.records() if r.status == "done"}
    return cells, records


def _model_row(cell: dict[str, Any], metrics: dict[str, Any]) -> dict[str, Any]:
    lab = cell["labels"]
    parent = cell["kind"] == "train"
    row: dict[str, Any] = {
        "model_key": cell["key"], "kind": "parent" if parent else "pruned", "method": "parent" if parent else lab["method"],
        "rep": lab["rep"], "cycle": 0 if parent else lab["cycle"], "target_ratio": 0.0 if parent else lab["target_ratio"],
        "prune_ratio": metrics.get("prune_ratio", 0.0),
    }
    for k in BASE_FIELDS[7:]:
        row[k] = metrics.get(k)
    row["retrained"], row["seed"] = lab.get("retrained", True), lab.get("seed")
    if not parent:
        row.update(_method_kind(lab))
    row.update({k: lab[k] for k in LABEL_FIELDS if k in lab})
    row.update({k: metrics[k] for k in SPARSE_METRICS if k in metrics})
    stage = metrics.get("compute") or {}
    if not parent and stage.get("schedule"):
        row["retrain_lr"] = stage["schedule"]["lr"]  # the initial LR of this model's (re)training
        row["retrain_epochs"] = stage.get("epochs")
    if not parent and "method_name" in lab:
        row["method_name"] = lab["method_name"]
    tr = metrics.get("trainability") or {}
    if "trainability_acc" in tr:
        row["trainability_acc"] = tr["trainability_acc"]
    for when in ("pruned", "retrained"):  # jac_sv_mean_pruned, jac_cond_retrained, ...
        row.update({f"{k}_{when}": v for k, v in (tr.get(f"jacobian_{when}") or {}).items()})
    row["_sha"] = metrics.get("sha256")
    return row


def _method_kind(labels: dict[str, Any]) -> dict[str, Any]:
    """``structured`` / ``baseline`` of a pruned model: from its plan labels, or (a plan written before
    they were recorded) from the method registry; None when the method is not registered here."""
    if "structured" in labels:
        return {"structured": labels["structured"], "baseline": labels.get("baseline", False)}
    from prunebench.study.pruning_step import method_kind

    try:
        return method_kind(str(labels.get("method_name", labels.get("method"))))
    except UserError:
        return {"structured": None, "baseline": None}


def columns(rows: list[dict[str, Any]]) -> list[str]:
    """Schema fields first, then every metric (nominal first, then by evaluator, sorted)."""
    seen = {k for r in rows for k in r}
    metrics = sorted((k for k in seen if k not in BASE_FIELDS and k not in EXTRA_FIELDS),
                     key=lambda k: (not k.startswith("nominal/"), k))
    return [*BASE_FIELDS, *EXTRA_FIELDS, *metrics]


def export_results(run_dir: str | Path, path: str | Path) -> Path:
    """Write the rows to ``path``: ``.csv`` (one column per field, empty = missing) or ``.json`` (list of objects)."""
    from prunebench.atomic import write_atomic

    rows = load_results(run_dir)
    out = Path(path)
    suffix = out.suffix.lower()
    if suffix not in (".csv", ".json"):
        raise UserError(f"cannot export to {out.name!r}: use a .csv or .json file name")
    out.parent.mkdir(parents=True, exist_ok=True)
    cols = columns(rows)
    if suffix == ".json":
        clean = [{k: _json_value(r.get(k)) for k in cols if k in r} for r in rows]
        write_atomic(out, json.dumps(clean, indent=1))
    else:
        import io

        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in cols})
        write_atomic(out, buf.getvalue())
    return out


def _json_value(v: Any) -> Any:
    return None if isinstance(v, float) and not math.isfinite(v) else v
