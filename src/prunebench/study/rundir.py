"""The run directory: its layout (the one place that names its files), may this prunebench continue
it, does it belong to this study, which cells failed or are blocked.

Layout of ``<run_dir>``: ``config.yaml`` (the resolved config), ``plan.json`` (the current plan's
cells), ``results.sqlite`` (the store), ``checkpoints/<cell key>.safetensors``, ``cache/`` (corrupted
test sets shared by the eval cells) and ``.lock`` (:mod:`prunebench.study.lock`). Code elsewhere
reaches these through the names and readers below, never by spelling a file name.

Everything here only reads (the store is opened read-only, its WAL respected); the writer is
:func:`prunebench.study.runner.run_study`, under the directory's lock (:mod:`prunebench.study.lock`).

Study identity: a run directory belongs to one study, named by its ``name``, model and dataset.
Revising that study (methods, ratios, recipes, evaluators) resumes in place (earlier cells under
their own keys stay in the store and are reused if they come back); a config naming another study
is refused unless the run is asked to ``extend`` the directory, which keeps every earlier cell in
``plan.json`` so that its rows stay visible.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from prunebench.errors import UserError

CONFIG_FILE, PLAN_FILE, RESULTS_FILE = "config.yaml", "plan.json", "results.sqlite"
DATA_FILE = "data.json"  # the dataset's split sizes, geometry and class names, for the report
CHECKPOINTS = "checkpoints"  # <cell key>.safetensors of every model cell
CACHE = "cache"  # corrupted test sets, computed once per study and shared by every eval cell
LOCK_FILE = ".lock"
IDENTITY = ("name", "model.name", "dataset.name")


# ---------------------------------------------------------------------- paths and readers
def checkpoint_path(run_dir: str | Path, key: str) -> Path:
    """The checkpoint file of model cell ``key``."""
    return Path(run_dir) / CHECKPOINTS / f"{key}.safetensors"


def is_run_dir(run: Path) -> bool:
    """Does ``run`` hold a plan and a store (what a finished or running ``prunebench run`` wrote)?"""
    return (run / PLAN_FILE).is_file() and (run / RESULTS_FILE).is_file()


def read_plan_cells(run: Path, *, strict: bool = False) -> list[dict[str, Any]] | None:
    """The cells of the run's current ``plan.json``; None when it is missing or unreadable, or with
    ``strict`` a UserError for an unreadable one."""
    path = run / PLAN_FILE
    try:
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    except OSError:
        return None
    except (ValueError, KeyError, TypeError) as e:
        if strict:
            raise UserError(f"{path} is unreadable ({e}); rerun `prunebench run` to rewrite it") from None
        return None
    return cells if isinstance(cells, list) else None


def read_data_summary(run: Path) -> dict[str, Any] | None:
    """The run's ``data.json`` (:meth:`prunebench.data.base.Dataset.summary`, written when it ran), or None."""
    try:
        out = json.loads((Path(run) / DATA_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return out if isinstance(out, dict) else None


def read_config_text(run: Path) -> str | None:
    """The run's resolved ``config.yaml`` as text, or None."""
    path = run / CONFIG_FILE
    return path.read_text(encoding="utf-8") if path.is_file() else None


def num_classes(run: Path) -> int | None:
    """The models' class count from the run's plan (chance level for the analysis), or None."""
    try:
        return int((read_plan_cells(run) or [])[0]["run"]["model"]["kwargs"]["num_classes"])
    except (ValueError, KeyError, IndexError, TypeError):
        return None


# ---------------------------------------------------------------------- may we continue it?
def check_run_dir(run: Path, cfg: Any = None, *, extend: bool = False) -> None:
    """Refuse (UserError, one line) a run directory this prunebench cannot continue, or (given
    ``cfg``) one that belongs to another study and ``extend`` is not set. Writes nothing."""
    from prunebench.store.resultstore import SCHEMA_VERSION, inspect_store
    from prunebench.study.config import FORMAT

    run = Path(run)
    if not run.exists():
        return
    if not run.is_dir():
        raise UserError(f"{run} exists and is not a directory; pass another --out")
    cfg_path, db_path = run / CONFIG_FILE, run / RESULTS_FILE
    if not cfg_path.exists() and not db_path.exists():
        if any(p.name != LOCK_FILE and not _is_temp(p.name) for p in run.iterdir()):
            raise UserError(f"{run} is not empty and not a prunebench run directory; pass an empty or new --out")
        return
    saved = None
    if cfg_path.exists():
        saved = _saved_config(cfg_path)
        fmt = saved.get("format") if isinstance(saved, dict) else None
        if fmt != FORMAT:
            from prunebench import __version__

            who = saved.get("prunebench_version", "an unknown version") if isinstance(saved, dict) else "an unknown version"
            raise UserError(f"{run} was written by prunebench {who} (run format {fmt}); this prunebench {__version__} "
                            f"reads format {FORMAT}; use a new --out directory (or that prunebench version)")
    if db_path.exists():
        schema = inspect_store(db_path)
        if schema is not None and schema != SCHEMA_VERSION:
            raise UserError(f"{db_path} has store schema {schema}, this prunebench uses schema {SCHEMA_VERSION}; "
                            "use a new --out directory (or the prunebench version that wrote it)")
    if cfg is not None and isinstance(saved, dict) and not extend:
        mine, theirs = identity(cfg.resolved()), identity(saved)
        if mine != theirs:
            diff = ", ".join(f"{k} {theirs[k]!r} -> {mine[k]!r}" for k in IDENTITY if mine[k] != theirs[k])
            raise UserError(f"{run} holds another study ({diff}); pass a new --out, or --extend to add this study "
                            "to that directory (its earlier rows stay visible)")


def identity(resolved: Mapping[str, Any]) -> dict[str, Any]:
    """The fields that name a study (``IDENTITY``) from a resolved config mapping."""
    out = {}
    for dotted in IDENTITY:
        v: Any = resolved
        for part in dotted.split("."):
            v = v.get(part) if isinstance(v, Mapping) else None
        out[dotted] = v
    return out


def _saved_config(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise UserError(f"{path} is unreadable ({type(e).__name__}); the run directory is damaged, use a new --out") from None


def _is_temp(name: str) -> bool:
    return name.startswith(".") and name.endswith(".tmp")


def merged_plan(run: Path, cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``cells`` plus every cell of the run's current ``plan.json`` not among them (``--extend``)."""
    old = read_plan_cells(run)
    if old is None:
        return cells
    keys = {c["key"] for c in cells}
    return [*(c for c in old if c.get("key") not in keys), *cells]


# ---------------------------------------------------------------------- failed and blocked cells
@dataclass(frozen=True)
class CellFailure:
    """A cell of the current plan that did not finish: ``failed`` (it ran and raised) or ``blocked``
    (an input failed or is blocked, so it did not run)."""

    key: str
    kind: str
    labels: dict[str, Any]
    status: str  # "failed" | "blocked"
    error: str  # the one-line error; for a blocked cell, which input failed
    hint: str  # what to do

    def describe(self) -> str:
        lab = self.labels
        what = {"train": f"train rep {lab.get('rep')}",
                "prune": f"prune {lab.get('method')} {lab.get('target_ratio')} rep {lab.get('rep')}",
                "sparse": f"sparse {lab.get('method')} {lab.get('target_ratio')} rep {lab.get('rep')}",
                "scratch": f"scratch {lab.get('method')} {lab.get('target_ratio')} rep {lab.get('rep')}",
                "eval": f"eval {lab.get('evaluator')} of {lab.get('method', 'parent')} {lab.get('target_ratio', '')} "
                        f"rep {lab.get('rep')}".replace("  ", " ")}.get(self.kind, self.kind)
        return f"{what} [{self.key}]"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def hint_for(error: str) -> str:
    """What to do about a failed cell, from its error text."""
    low = error.lower()
    if "diverged" in low or "non-finite" in low or " nan" in low:
        return "training diverged: lower the learning rate (train.lr / retrain.lr) or add warmup, then rerun"
    if "out of memory" in low or "memoryerror" in low or "worker process failed" in low:
        return "out of memory or the worker died: lower batch sizes or --workers, then rerun"
    return "rerun the same command to retry; the full traceback is in results.sqlite (metrics.traceback)"


def cell_failures(run_dir: str | Path) -> list[CellFailure]:
    """The failed and blocked cells of ``run_dir``'s current plan, in plan order (read-only; works on
    a running study). A cell is blocked when one of its inputs failed or is blocked and it has no
    finished record."""
    from prunebench.store.resultstore import ResultStore

    run = Path(run_dir)
    cells = read_plan_cells(run)
    if cells is None:
        return []
    if not (run / RESULTS_FILE).is_file():
        return []
    with ResultStore(run / RESULTS_FILE, readonly=True) as store:
        records = {r.key: r for r in store.records()}
    bad: dict[str, str] = {}
    out: list[CellFailure] = []
    for c in cells:
        rec = records.get(c["key"])
        if rec is not None and rec.status == "done":
            continue
        if rec is not None and rec.status == "failed":
            err = str(rec.metrics.get("error", "unknown error"))
            bad[c["key"]] = "failed"
            out.append(CellFailure(c["key"], c["kind"], c.get("labels", {}), "failed", err, hint_for(err)))
            continue
        culprit = next((d for d in c.get("deps", ()) if d in bad), None)
        if culprit is not None:
            bad[c["key"]] = "blocked"
            out.append(CellFailure(c["key"], c["kind"], c.get("labels", {}), "blocked",
                                   f"input {culprit} {bad[culprit]}", "fix the failed input cell; this one runs after it"))
    return out


def pending_cells(run_dir: str | Path) -> int:
    """How many cells of the current plan have no finished record (failed, blocked or not yet run)."""
    from prunebench.store.resultstore import ResultStore

    run = Path(run_dir)
    try:
        keys = [c["key"] for c in read_plan_cells(run) or ()]
    except (KeyError, TypeError):
        return 0
    if not (run / RESULTS_FILE).is_file():
        return len(keys)
    with ResultStore(run / RESULTS_FILE, readonly=True) as store:
        done = {r.key for r in store.records() if r.status == "done"}
    return sum(k not in done for k in keys)
