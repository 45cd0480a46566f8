"""A killed study always resumes, two runs never share a run directory, workers die with the driver.

Real processes, real SIGKILL, the real smoke study. One uninterrupted run (started together with a
second run on the same directory, which must be refused) is the reference; another directory is
then killed again and again (while its store is created, while a checkpoint is written, with
``--workers 2``, at random moments) and finally run to the end: its rows must equal the reference.
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from prunebench.store.resultstore import ResultStore

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}  # one thread: bit-identical runs
KILLS = 10
START_BUDGET_S = 120.0  # one start of the smoke study, generous for a busy 2-core machine


def start(run: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "prunebench", "run", "smoke", "--out", str(run), "--quiet",
                             "--no-report", "--workers", "1", *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)


def children(pid: int) -> list[int]:
    """Live (non-zombie) processes whose parent is ``pid``."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(stat[1]) == pid and stat[0] != "Z":
            out.append(int(d.name))
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def done_models(run: Path) -> int:
    db = run / "results.sqlite"
    if not db.is_file():
        return 0
    try:
        with ResultStore(db, readonly=True, timeout=1.0) as store:
            return sum(r.kind != "eval" for r in store.records() if r.status == "done")
    except Exception:  # noqa: BLE001  (mid-creation: not readable yet)
        return 0


def wait_for(cond, proc: subprocess.Popen, timeout: float = START_BUDGET_S, poll: float = 0.002) -> bool:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if cond():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(poll)
    return False


def temps(run: Path) -> list[Path]:
    return [p for p in run.rglob(".*.tmp")]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    """Two runs started together on one directory: exactly one runs, the other is refused at once with
    one line naming the holder; ``report`` during the run works (and says a run is in progress)."""
    from prunebench.cli.main import main
    from prunebench.study.results import load_results

    run = tmp_path_factory.mktemp("concurrent") / "smoke"
    a, b = start(run), start(run)
    # the refused one ends first (it never trains); the other one runs the study
    t0 = time.monotonic()
    while a.poll() is None and b.poll() is None and time.monotonic() - t0 < START_BUDGET_S:
        time.sleep(0.05)
    loser, winner = (a, b) if a.poll() is not None else (b, a)
    err = loser.communicate(timeout=60)[1]
    lines = err.strip().splitlines()
    assert loser.returncode == 2 and len(lines) == 1 and "is in use by another run" in lines[0], err
    assert f"pid {winner.pid}" in lines[0] and "Traceback" not in err
    # report while the run is in progress: a row finished -> a report of what is done, exit 1 (incomplete)
    assert wait_for(lambda: done_models(run) >= 1 and (run / "plan.json").is_file(), winner)
    time.sleep(2.0)  # let the parent's evals land too (one row needs its nominal eval)
    report_rc = main(["report", str(run), "--bootstrap", "20"]) if winner.poll() is None else None
    rows_during = load_results(run)
    out, err = winner.communicate(timeout=600)
    assert winner.returncode == 0, err
    with ResultStore(run / "results.sqlite", readonly=True) as store:
        recs = store.records()
    return {"run": run, "rows": load_results(run), "records": recs, "report_rc": report_rc, "rows_during": rows_during}


def test_two_runs_on_one_directory_one_runs_the_other_is_refused(reference) -> None:
    recs = reference["records"]
    assert all(r.status == "done" for r in recs)
    assert len({r.key for r in recs}) == len(recs)
    assert reference["report_rc"] in (None, 1)  # a partial report exits 1 (study incomplete), never 2
    assert len(reference["rows_during"]) <= len(reference["rows"])
    assert not temps(reference["run"])


def test_killed_again_and_again_the_study_resumes_identically(reference, tmp_path: Path, capsys) -> None:
    """>= 10 SIGKILLs (store creation, checkpoint writes, --workers 2, random moments), each followed by
    a check that no process is left; then a final run: rows identical to the reference, no duplicate,
    no temporary file."""
    from helpers import strip

    from prunebench.study.results import load_results

    rng = random.Random(11)
    run = tmp_path / "smoke"
    db = run / "results.sqlite"
    plan = ["store", "checkpoint", "workers", "random", "store-workers", "checkpoint", "random", "workers",
            "checkpoint-workers", "random", "progress", "progress-workers", "progress"]  # progress: deeper in
    kills, t_start, hits = 0, time.monotonic(), []
    for moment in plan:
        if kills >= KILLS and time.monotonic() - t_start > 150:
            break
        workers = "workers" in moment
        proc = start(run, *(["--workers", "2"] if workers else []))
        if moment.startswith("progress"):
            models = done_models(run)
            hit = wait_for(lambda: done_models(run) > models, proc, poll=0.05)
            time.sleep(rng.uniform(0.0, 0.4))
        elif moment.startswith("store"):
            hit = wait_for(lambda: db.exists(), proc)
        elif moment.startswith("checkpoint"):
            hit = wait_for(lambda: any((run / "checkpoints").glob(".*.tmp")) if (run / "checkpoints").is_dir()
                           else False, proc)
        elif workers:
            hit = wait_for(lambda: len(children(proc.pid)) >= 2 and done_models(run) >= 1, proc, poll=0.05)
        else:
            hit = wait_for(lambda: False, proc, timeout=rng.uniform(1.5, 4.5)) or proc.poll() is None
        if proc.poll() is not None:  # finished (or failed) before the moment came
            _, err = proc.communicate()
            assert proc.returncode == 0, f"start after {kills} kills failed: {err}"
            break
        kids = children(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        kills += 1
        hits.append(f"{moment}{'' if hit else '?'}@{done_models(run)}")
        deadline = time.monotonic() + 10
        while any(alive(k) for k in kids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [k for k in kids if alive(k)], f"processes left after SIGKILL #{kills} ({moment}): {kids}"
    assert kills >= KILLS, f"only {kills} kills before the study finished"
    print(f"kill-resume: {kills} SIGKILLs, every start after one resumed; moments (kind@models done): {hits}")
    final = start(run)
    out, err = final.communicate(timeout=600)
    assert final.returncode == 0, err
    rows = load_results(run)
    assert strip(rows) == strip(reference["rows"])
    assert len({r["model_key"] for r in rows}) == len(rows)
    with ResultStore(db, readonly=True) as store:
        recs = store.records()
    assert sorted(r.key for r in recs) == sorted(r.key for r in reference["records"])
    assert all(r.status == "done" for r in recs)
    assert not temps(run)


# ---------------------------------------------------------------------- in-process: failures, env, extend
@pytest.fixture
def run_copy(smoke_run, tmp_path: Path) -> Path:
    import shutil

    dst = tmp_path / "run"
    shutil.copytree(smoke_run[0], dst)
    return dst


def test_failed_and_blocked_cells_are_listed_and_report_exits_1(run_copy: Path, capsys) -> None:
    from helpers import SMOKE

    from prunebench.cli.main import main
    from prunebench.study import run_study
    from prunebench.study.rundir import cell_failures

    summary = run_study({**SMOKE, "retrain": {"epochs": 1, "lr": 1e12}}, run_copy, progress=False)
    failures = cell_failures(run_copy)
    failed = [f for f in failures if f.status == "failed"]
    blocked = [f for f in failures if f.status == "blocked"]
    assert sorted(f.key for f in failed) == sorted(summary.failed) and len(failed) == len(SMOKE["methods"])
    assert sorted(f.key for f in blocked) == sorted(summary.blocked) and blocked
    assert all("TrainingDiverged" in f.error and "learning rate" in f.hint for f in failed)
    assert all(f.error.startswith("input ") and f.to_json()["status"] == "blocked" for f in blocked)
    capsys.readouterr()
    assert main(["report", str(run_copy), "--bootstrap", "20"]) == 1
    err = capsys.readouterr().err
    assert "failed: prune wt 0.5" in err and "blocked:" in err and "incomplete" in err
    assert main(["report", str(run_copy), "--bootstrap", "20", "--allow-incomplete"]) == 0


def test_resume_under_another_numerical_env_names_the_cells_and_recomputes_on_request(run_copy: Path) -> None:
    from helpers import SMOKE

    from prunebench.study import run_study

    with ResultStore(run_copy / "results.sqlite") as store:
        rec = next(r for r in store.records("train"))
        assert rec.metrics["env"]["threads"] >= 1 and rec.metrics["env"]["torch"] == torch_version()
        store.put(rec.key, rec.kind, rec.config, {**rec.metrics, "env": {**rec.metrics["env"], "threads": 99}},
                  seconds=rec.seconds)
    summary = run_study(SMOKE, run_copy, progress=False)
    assert summary.executed == [] and list(summary.env_changed) == [rec.key]
    assert "threads 99 -> " in summary.env_changed[rec.key]
    summary = run_study(SMOKE, run_copy, progress=False, recompute_env=True)
    assert summary.executed == [rec.key]  # same bytes again: nothing built on it needs to run
    with ResultStore(run_copy / "results.sqlite") as store:
        assert store.get(rec.key).metrics["env"]["threads"] != 99


def test_extend_adds_another_study_and_keeps_earlier_rows(run_copy: Path, smoke_run) -> None:
    from helpers import SMOKE

    from prunebench.errors import UserError
    from prunebench.study import load_results, run_study

    other = {**SMOKE, "name": "other", "methods": ["wt"], "ratios": [0.3]}
    with pytest.raises(UserError, match="holds another study"):
        run_study(other, run_copy, progress=False)
    summary = run_study(other, run_copy, progress=False, extend=True)
    assert summary.ok
    rows = load_results(run_copy)
    before = {r["model_key"] for r in smoke_run[2]}
    assert before < {r["model_key"] for r in rows}  # every earlier row is still visible, the new one too
    assert any(r["target_ratio"] == 0.3 for r in rows)
    assert yaml_name(run_copy / "config.smoke.yaml") == "smoke" and yaml_name(run_copy / "config.yaml") == "other"


def yaml_name(path: Path) -> str:
    import yaml

    return yaml.safe_load(path.read_text())["name"]


def torch_version() -> str:
    import torch

    return torch.__version__
