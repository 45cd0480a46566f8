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

Crash and lock safety: the run directory is checked read-only first (``prunebench.study.rundir``),
then locked for the run's lifetime (``prunebench.study.lock``: a second run on it is refused at
once, naming the holder; the kernel drops the lock of a killed run). Under the lock every temporary
file a killed writer left in the run directory is swept, whatever its age. Each record keeps the
numerical environment its cell ran in (``metrics["env"]``); a resume under another one names the
cells computed differently and, with ``recompute_env=True``, runs them again.
"""
from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from tqdm.auto import tqdm

from prunebench.atomic import sweep_stale, write_atomic
from prunebench.errors import UserError
from prunebench.store.resultstore import ResultStore
from prunebench.study.cells import get_dataset
from prunebench.study.config import FORMAT, StudyConfig
from prunebench.study.kinds import KINDS
from prunebench.study.loader import load_config
from prunebench.study.lock import RunLock, describe, running
from prunebench.study.numenv import describe_differences, env_differences
from prunebench.study.plan import Cell, plan
from prunebench.study.rundir import (
    CACHE,
    CHECKPOINTS,
    CONFIG_FILE,
    DATA_FILE,
    PLAN_FILE,
    RESULTS_FILE,
    check_run_dir,
    checkpoint_path,
    merged_plan,
)
from prunebench.study.usermodel import check_models

__all__ = ["RunSummary", "check_run_dir", "config_text", "run_study"]


@dataclass
class RunSummary:
    """What a run did."""

    run_dir: Path
    cells: list[Cell]
    executed: list[str] = field(default_factory=list)  # keys run in this invocation, in completion order
    reused: list[str] = field(default_factory=list)  # keys already done before
    failed: dict[str, str] = field(default_factory=dict)  # key -> one-line error
    blocked: list[str] = field(default_factory=list)  # keys not run because an input failed
    env_changed: dict[str, str] = field(default_factory=dict)  # done key -> how its numerical env differs now
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed and not self.blocked

    @property
    def models_done(self) -> int:
        """Model cells (train / prune) finished, in this invocation or before."""
        done = (set(self.executed) - set(self.failed)) | set(self.reused)
        return sum(c.is_model and c.key in done for c in self.cells)

    def rows(self) -> list[dict[str, Any]]:
        """The study's result rows (:func:`prunebench.study.results.load_results` of ``run_dir``)."""
        from prunebench.study.results import load_results

        return load_results(self.run_dir)

    def executed_kinds(self) -> dict[str, int]:
        kind = {c.key: c.kind for c in self.cells}
        return {k: sum(kind[x] == k for x in self.executed) for k in KINDS}


def run_study(config: StudyConfig | str | Path | Mapping[str, Any] | None = None, run_dir: str | Path | None = None, *,
              workers: int | str = 1, device: str | None = None, progress: bool = True, executor: str = "local",
              ray_address: str | None = None, extend: bool = False, recompute_env: bool = False,
              model: Callable[..., Any] | None = None, data: Any = None) -> RunSummary:
    """Validate, plan and execute a study into ``run_dir`` (default ``runs/<name>``); reruns skip finished cells.

    ``model``: a function returning a new ``nn.Module`` (called with the config's ``model.kwargs`` and
    the dataset geometry it names: ``in_channels``, ``num_classes``, ``image_size``, ``width``), used
    instead of the config's ``model``; ``data``: a :class:`~prunebench.data.Dataset`
    (``prunebench.data.load_dataset`` or ``prunebench.data.from_tensors``) used instead of its
    ``dataset``. In-memory objects cannot reach worker processes: such a study runs its cells one
    after another in this process (``workers`` 1, ``executor`` "local"). Its cell keys hash the
    factory's source and the data's tensors (:mod:`prunebench.study.inmemory`), so a rerun in a new
    session resumes. The returned :class:`RunSummary` is what ``prunebench run`` gets (``.rows()``
    reads the result rows).

    ``executor``: "local" (in this process, or ``workers`` processes) or "ray" (Ray tasks on the cluster
    at ``ray_address``; ``workers`` > 1 caps the cells in flight). ``workers="auto"``: see
    :func:`auto_workers`. ``extend``: add this study to a run
    directory that holds another one (its cells stay in the plan). ``recompute_env``: re-run finished
    cells whose recorded numerical environment differs from this run's."""
    from prunebench.device import resolve_device

    if model is not None or data is not None:  # in-memory objects: this process only (study/inmemory.py)
        from prunebench.study.inmemory import prepare

        cfg, workers = prepare(config, model, data, workers, executor), 1
    else:
        cfg = config if isinstance(config, StudyConfig) else load_config(config)
    if workers != "auto" and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise UserError(f"--workers must be at least 1 (or auto), got {workers!r}")
    if executor not in ("local", "ray"):
        raise UserError(f"unknown executor {executor!r}; choose local or ray")
    run = Path(run_dir) if run_dir is not None else Path("runs") / cfg.name
    check_run_dir(run, cfg, extend=extend)
    holder = running(run)
    if holder is not None:
        raise UserError(f"{run} is in use by another run ({describe(holder)}); wait for it to finish, or pass another --out")
    check_writable(run)
    # Ray workers pick their own device (the driver may have no GPU); locally it is resolved here.
    dev = (device or cfg.device) if executor == "ray" else resolve_device(device or cfg.device)
    if isinstance(workers, str):  # "auto"
        workers = 1 if executor == "ray" else auto_workers(str(dev))
    data = get_dataset(cfg.dataset.as_run())
    cells = plan(cfg, data.info)
    check_models(cells)
    if cfg.mode == "sparse-train":
        from prunebench.study.sparse_plan import check_feasible

        check_feasible(cells)
    from prunebench.study.executors import make_executor

    ex = make_executor(executor, str(run.resolve()), str(dev), workers=workers, progress=progress,
                       ray_address=ray_address)
    # ---- everything validated and the executor reachable: from here on the run directory is written
    lock = RunLock(run)
    try:
        run.mkdir(parents=True, exist_ok=True)
        lock.acquire()
        check_run_dir(run, cfg, extend=extend)  # again, under the lock: another run may have written meanwhile
        cache = run / CACHE  # corrupted test sets: one folder per test split
        for folder in (run, run / CHECKPOINTS, *cache.glob("*/*")):  # killed writers' temp files; none alive now
            sweep_stale(folder, older_than_s=0)
    except BaseException:
        lock.release()
        ex.close(cancel=True)
        raise
    t0 = time.perf_counter()
    try:
        with ResultStore(run / RESULTS_FILE) as store:
            if extend:
                keep_earlier_config(run, cfg)
            write_atomic(run / CONFIG_FILE, config_text(cfg))
            write_atomic(run / DATA_FILE, json.dumps(data.summary(), indent=1))
            listed = [c.to_json() for c in cells]
            write_atomic(run / PLAN_FILE, json.dumps({"format": FORMAT, "name": cfg.name, "delta": cfg.delta,
                                                      "cells": merged_plan(run, listed) if extend else listed}, indent=1))
            summary = RunSummary(run, cells)
            try:
                _schedule(cells, store, ex, summary, progress, getattr(ex, "env", None), recompute_env)
            except BaseException:
                ex.close(cancel=True)
                raise
            ex.close()
    finally:
        lock.release()
    summary.seconds = time.perf_counter() - t0
    return summary


def auto_workers(device: str) -> int:
    """``--workers auto``: on the CPU one single-threaded process per available core (at most 8), on a
    GPU one process. Small and mid-sized networks use a core far better alone than split over intra-op
    threads (BENCHMARKS.md, "Default study": 2 x 1 thread vs 1 x 2 threads), and one busy core elsewhere
    on the machine stalls a multi-threaded step at every barrier, while it only slows one worker."""
    if not device.startswith("cpu"):
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, _cgroup_cpus() or cores, 8))


def _cgroup_cpus() -> int | None:
    """The CPU quota of this container (cgroup v2 ``cpu.max``, e.g. "200000 100000" = 2 CPUs), if any:
    affinity shows the host's cores, the quota what this process may use of them."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        return None if quota == "max" else max(1, int(int(quota) // int(period)))
    except (OSError, ValueError):
        return None


def keep_earlier_config(run: Path, cfg: StudyConfig) -> None:
    """``--extend``: the config of the study already there is kept as ``config.<its name>.yaml``."""
    from prunebench.study.rundir import identity, read_config_text

    text = read_config_text(run)
    if text is None:
        return
    saved = yaml.safe_load(text)
    if isinstance(saved, dict) and identity(saved) != identity(cfg.resolved()):
        name = str(saved.get("name") or "earlier").replace("/", "_")
        target = run / f"config.{name}.yaml"
        if not target.exists():
            write_atomic(target, text)


def check_writable(run: Path) -> None:
    """Refuse (one line, nothing written) a run directory that cannot be created or written."""
    from prunebench.outpaths import check_out_dir

    check_out_dir(run, "--out")


def _schedule(cells: list[Cell], store: ResultStore, executor: Any, summary: RunSummary, progress: bool,
              env: dict[str, Any] | None = None, recompute_env: bool = False) -> None:
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
        if not all(inputs.get(d) == digest.get(d) for d in c.deps):
            return False
        diff = env_differences(rec.metrics.get("env"), env)
        if diff:
            summary.env_changed[c.key] = describe_differences(diff)
            return not recompute_env
        return True

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
                if out.get("env"):
                    metrics["env"] = out["env"]
                store.put(c.key, c.kind, c.config, metrics, status="done", seconds=out.get("seconds"))
                if c.is_model:
                    digest[c.key] = out["metrics"]["sha256"]
                state[c.key] = "done"
                summary.executed.append(c.key)
            else:
                store.put(c.key, c.kind, c.config, {"error": out["error"], "traceback": out.get("traceback"),
                                                    "labels": c.labels, "inputs": inputs, "env": out.get("env")},
                          status="failed", seconds=out.get("seconds"))
                state[c.key] = "failed"
                summary.failed[c.key] = out["error"]
                summary.executed.append(c.key)
                tqdm.write(f"cell failed: {c.describe()} [{c.key}]: {out['error']}")
            bar.update(1)
    bar.close()


def config_text(cfg: StudyConfig) -> str:
    head = ("# Resolved study config written by prunebench run (every default spelled out).\n"
            "# Rerun with: prunebench run <this file> --out <this folder>\n")
    return head + yaml.safe_dump(cfg.resolved(), sort_keys=False, default_flow_style=None, width=110)


