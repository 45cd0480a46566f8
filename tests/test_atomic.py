"""Atomic writes: a complete file or the old one, never half a file, and no temporary left behind."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from prunebench.atomic import atomic_path, sweep_stale, write_atomic


def test_write_replaces_whole_file_with_umask_permissions(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "out.json"
    write_atomic(target, "first")
    write_atomic(target, b"\x00second")
    assert target.read_bytes() == b"\x00second"
    assert oct(target.stat().st_mode & 0o777) == oct(0o666 & ~_umask())  # not mkstemp's 0600
    assert [p.name for p in target.parent.iterdir()] == ["out.json"]


def test_failure_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "model.safetensors"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_path(target) as tmp:
            tmp.write_text("half a fi")
            raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]


def test_sweep_removes_only_old_temporaries(tmp_path: Path) -> None:
    old, young, data = tmp_path / ".model.safetensors.ab12.tmp", tmp_path / ".plan.json.cd34.tmp", tmp_path / "x.tmp"
    for p in (old, young, data):
        p.write_text("partial")
    os.utime(old, (1_000_000_000, 1_000_000_000))  # 2001
    os.utime(data, (1_000_000_000, 1_000_000_000))
    assert sweep_stale(tmp_path) == [old]
    assert not old.exists() and young.exists() and data.exists()  # young: a writer may be at work
    assert sweep_stale(tmp_path / "missing") == []


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_next_writer_sweeps_dead_writers_temporaries_whatever_their_age(tmp_path: Path) -> None:
    """A killed writer's temporary goes at the next write of the same target, even if it is a second
    old; a live writer's (this process) and another target's stay."""
    import subprocess
    import sys

    from prunebench.atomic import _TAG

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    target = tmp_path / "report.html"
    killed = tmp_path / f".report.html.{_TAG}-{pid}.x1.tmp"
    live = tmp_path / f".report.html.{_TAG}-{os.getpid()}.x2.tmp"
    other = tmp_path / f".summary.md.{_TAG}-{pid}.x3.tmp"
    for p in (killed, live, other):
        p.write_text("partial")
    write_atomic(target, "done")
    assert not killed.exists() and live.exists() and other.exists() and target.read_text() == "done"
    assert sweep_stale(tmp_path, older_than_s=0) == [other]  # a locked folder: all but the live writer's
    assert live.exists()


def test_unwritable_destination_is_a_user_error(tmp_path: Path) -> None:
    from prunebench.errors import UserError

    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="cannot write"):
        write_atomic(tmp_path / "file" / "sub" / "out.json", "{}")
