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
