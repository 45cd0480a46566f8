"""Run a study: validate, plan, check the run directory, then execute the cells that are not done yet.

Nothing is written before the config is validated, the names resolved, the data found, the plan made
and the run directory found compatible (store schema, config format). Then ``config.yaml`` (the
resolved config) and ``plan.json`` are written atomically and the cells run.

When is a cell done (skipped on a rerun)? When its store record says "done", its checkpoint exists
(model cells), and the SHA-256 of every input checkpoint it recorded equals that input's current
one. A record is written only after its checkpoint, so an interrupted cell simply runs again. If a
model cell re-runs (its record was lost) and reproduces the same checkpoint bytes, which it does on
the same device because every cell is seeded, the cells built on it stay valid and are not redone;
if the bytes differ, its dependents run again. Failed cells are recorded as "failed" and retried on
the next run; cells depending on them are "blocked" (not run, not recorded).
"""
from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml
from tqdm.auto import tqdm

from prunebench.atomic import sweep_stale, write_atomic
from prunebench.errors import UserError
from prunebench.store.results import SCHEMA_VERSION, ResultStore
from prunebench.study.cells import CHECKPOINTS, checkpoint_path, get_dataset
from prunebench.study.config import FORMAT, StudyConfig, load_config
from prunebench.study.plan import Cell, plan

CONFIG_FILE, PLAN_FILE, RESULTS_FILE = "config.yaml", "plan.json", "results.sqlite"


@dataclass
class RunSummary:
    """What a run did."""

    run_dir: Path
    cells: list[Cell]
    executed: list[str] = field(default_factory=list)  # keys run in this invocation, in completion order
    reused: list[str] = field(default_factory=list)  # keys already done before
    failed: dict[str, str] = field(default_factory=dict)  # key -> one-line error
    blocked: list[str] = field(default_factory=list)  # keys not run because an input failed
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed and not self.blocked

    def executed_kinds(self) -> dict[str, int]:
        kind = {c.key: c.kind for c in self.cells}
        return {k: sum(kind[x] == k for x in self.executed) for k in ("train", "prune", "eval")}


def run_study(config: StudyConfig | str | Path | Mapping[str, Any] | None = None, run_dir: str | Path | None = None, *,
              workers: int = 1, device: str | None = None, progress: bool = True, executor: str = "local",
              ray_address: str | None = None) -> RunSummary:
    """Validate, plan and execute a study into ``run_dir`` (default ``runs/<name>``); reruns skip finished cells.

    ``executor``: "local" (in this process, or ``workers`` processes) or "ray" (Ray tasks on the cluster
    at ``ray_address``; ``workers`` > 1 caps the cells in flight)."""
    from prunebench.cli.common import resolve_device

    cfg = config if isinstance(config, StudyConfig) else load_config(config)
    if workers < 1:
        raise UserError(f"--workers must be at least 1, got {workers}")
    if executor not in ("local", "ray"):
        raise UserError(f"unknown executor {executor!r}; choose local or ray")
    run = Path(run_dir) if run_dir is not None else Path("runs") / cfg.name
    check_run_dir(run)
    # Ray workers pick their own device (the driver may have no GPU); locally it is resolved here.
    dev = (device or cfg.device) if executor == "ray" else resolve_device(device or cfg.device)
    data = get_dataset(cfg.dataset.model_dump(mode="json"))
    cells = plan(cfg, data.info)
    from prunebench.study.executors import make_executor

    ex = make_executor(executor, str(run.resolve()), str(dev), workers=workers, progress=progress,
                       ray_address=ray_address)
    # ---- everything validated and the executor reachable: from here on the run directory is written
    try:
        run.mkdir(parents=True, exist_ok=True)
        for folder in (run, run / CHECKPOINTS):  # left by a run that was killed mid-write
            sweep_stale(folder)
    except BaseException:
        ex.close(cancel=True)
        raise
    t0 = time.perf_counter()
    with ResultStore(run / RESULTS_FILE) as store:
        write_atomic(run / CONFIG_FILE, config_text(cfg))
        write_atomic(run / PLAN_FILE, json.dumps({"format": FORMAT, "name": cfg.name, "delta": cfg.delta,
                                                  "cells": [c.to_json() for c in cells]}, indent=1))
        summary = RunSummary(run, cells)
        try:
            _schedule(cells, store, ex, summary, progress)
        except BaseException:
            ex.close(cancel=True)
            raise
        ex.close()
    summary.seconds = time.perf_counter() - t0
    return summary


def _schedule(cells: list[Cell], store: ResultStore, executor: Any, summary: RunSummary, progress: bool) -> None:
    """Dependency-driven loop: resolve reusable cells, keep the executor full, record outcomes."""
    records = {r.key: r for r in store.records()}
    by_key = {c.key: c for c in cells}
    state: dict[str, str] = {}  # key -> done | failed | blocked
    digest: dict[str, str] = {}  # model key -> checkpoint sha256
    pending = list(cells)
    in_flight: set[str] = set()
    bar = tqdm(total=len(cells), desc="cells", disable=not progress, dynamic_ncols=True)

    def reusable(c: Cell) -> bool:
        rec = records.get(c.key)
        if rec is None or rec.status != "done":
            return False
        if c.is_model and not checkpoint_path(summary.run_dir, c.key).is_file():
            return False
        inputs = rec.metrics.get("inputs") or {}
        return all(inputs.get(d) == digest.get(d) for d in c.deps)

    while pending or in_flight:
        rest = []
        for c in pending:
            dep_states = [state.get(d) for d in c.deps]
            if any(s in ("failed", "blocked") for s in dep_states):
                state[c.key] = "blocked"
                summary.blocked.append(c.key)
                bar.update(1)
            elif any(s is None for s in dep_states):
                rest.append(c)
            elif reusable(c):
                state[c.key] = "done"
                if c.is_model:
                    digest[c.key] = records[c.key].metrics.get("sha256", "")
                summary.reused.append(c.key)
                bar.update(1)
            elif len(in_flight) < executor.capacity:
                in_flight.add(c.key)
                executor.submit(c)
                bar.set_postfix_str(c.describe(), refresh=True)
            else:
                rest.append(c)
        pending = rest
        if not in_flight:
            if pending:
                raise AssertionError(f"unsatisfiable dependencies for {[c.key for c in pending][:3]}")
            break
        for out in executor.wait():
            c = by_key[out["key"]]
            in_flight.discard(c.key)
            inputs = {d: digest.get(d) for d in c.deps}
            if out["status"] == "done":
                metrics = {**out["metrics"], "labels": c.labels, "inputs": inputs}
                store.put(c.key, c.kind, c.config, metrics, status="done", seconds=out.get("seconds"))
                if c.is_model:
                    digest[c.key] = out["metrics"]["sha256"]
                state[c.key] = "done"
                summary.executed.append(c.key)
            else:
                store.put(c.key, c.kind, c.config, {"error": out["error"], "traceback": out.get("traceback"),
                                                    "labels": c.labels, "inputs": inputs},
                          status="failed", seconds=out.get("seconds"))
                state[c.key] = "failed"
                summary.failed[c.key] = out["error"]
                summary.executed.append(c.key)
                tqdm.write(f"cell failed: {c.describe()} [{c.key}]: {out['error']}")
            bar.update(1)
    bar.close()


# ---------------------------------------------------------------------- run directory
def check_run_dir(run: Path) -> None:
    """Refuse (UserError, one line) a run directory this prunebench cannot continue; writes nothing."""
    if not run.exists():
        return
    if not run.is_dir():
        raise UserError(f"{run} exists and is not a directory; pass another --out")
    cfg_path, db_path = run / CONFIG_FILE, run / RESULTS_FILE
    if not cfg_path.exists() and not db_path.exists():
        if any(run.iterdir()):
            raise UserError(f"{run} is not empty and not a prunebench run directory; pass an empty or new --out")
        return
    if cfg_path.exists():
        try:
            saved = yaml.safe_load(cfg_path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            raise UserError(f"{cfg_path} is unreadable ({type(e).__name__}); the run directory is damaged, use a new --out") from None
        fmt = saved.get("format") if isinstance(saved, dict) else None
        if fmt != FORMAT:
            from prunebench import __version__

            who = saved.get("prunebench_version", "an unknown version") if isinstance(saved, dict) else "an unknown version"
            raise UserError(f"{run} was written by prunebench {who} (run format {fmt}); this prunebench {__version__} "
                            f"reads format {FORMAT}; use a new --out directory (or that prunebench version)")
    if db_path.exists():
        try:  # immutable=1: read without locking, creating nothing (no -wal/-shm next to the file)
            con = sqlite3.connect(f"file:{db_path}?immutable=1", uri=True)
            try:
                row = con.execute("SELECT value FROM meta WHERE name='schema'").fetchone()
            finally:
                con.close()
        except sqlite3.DatabaseError as e:
            raise UserError(f"{db_path} is not a prunebench results store ({e}); use a new --out directory") from None
        schema = int(row[0]) if row else None
        if schema != SCHEMA_VERSION:
            raise UserError(f"{db_path} has store schema {schema}, this prunebench uses schema {SCHEMA_VERSION}; "
                            "use a new --out directory (or the prunebench version that wrote it)")


def config_text(cfg: StudyConfig) -> str:
    head = ("# Resolved study config written by prunebench run (every default spelled out).\n"
            "# Rerun with: prunebench run <this file> --out <this folder>\n")
    return head + yaml.safe_dump(cfg.resolved(), sort_keys=False, default_flow_style=None, width=110)


