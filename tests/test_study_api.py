"""``prunebench.run_study(config, model=..., data=...)`` over an in-memory factory and
``prunebench.data.from_tensors`` data (issue 14, item 4), and the examples/ folder (item 6)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from torch import nn

import prunebench
from prunebench.cli.main import main
from prunebench.data import from_tensors, load_dataset
from prunebench.errors import UserError

REPO = Path(__file__).resolve().parents[1]
CONFIG = {"name": "api", "train": {"epochs": 1, "batch_size": 64, "lr": 0.05}, "methods": ["wt"], "ratios": [0.5],
          "device": "cpu"}


def small_net(in_channels: int, num_classes: int, width: float = 1.0) -> nn.Module:
    c = max(2, int(8 * width))
    return nn.Sequential(nn.Conv2d(in_channels, c, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                         nn.Linear(4 * c, num_classes))


@pytest.fixture(scope="module")
def arrays():
    fm = load_dataset("fashion-mnist")
    return fm.train.x[:500].numpy(), fm.train.y[:500].numpy(), fm.test.x[:200].numpy(), fm.test.y[:200].numpy()


def test_from_tensors_splits_and_normalizes(arrays) -> None:
    xtr, ytr, xte, yte = arrays
    ds = from_tensors(xtr[:, 0, :, :, None], ytr, xte, yte, classes=[str(i) for i in range(10)], val_fraction=0.2)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (400, 100, 200)
    assert ds.info.in_channels == 1 and ds.info.image_size == (28, 28) and ds.info.num_classes == 10
    merged = np.concatenate([ds.train.x.numpy(), ds.val.x.numpy()])
    assert sorted(map(bytes, merged)) == sorted(map(bytes, xtr))  # NHWC read as NCHW, nothing lost or duplicated
    assert abs(ds.info.mean[0] - xtr.mean() / 255) < 1e-6
    with pytest.raises(UserError, match="y_train must be 500 integer class labels"):
        from_tensors(xtr, ytr.astype(np.float32), xte, yte)
    with pytest.raises(UserError, match="classes names 3 classes but the labels use 10"):
        from_tensors(xtr, ytr, xte, yte, classes=["a", "b", "c"])


def test_run_study_in_memory_returns_rows_and_resumes(arrays, tmp_path: Path) -> None:
    data = from_tensors(*arrays)
    summary = prunebench.run_study(CONFIG, tmp_path / "run", model=small_net, data=data, progress=False)
    assert summary.ok and {k: n for k, n in summary.executed_kinds().items() if n} == {"train": 1, "prune": 1, "eval": 2}
    rows = summary.rows()
    assert sorted(r["method"] for r in rows) == ["parent", "wt"]
    assert all(0 <= r["nominal/acc/nominal"] <= 1 for r in rows)
    assert rows[0]["params_total"] == sum(p.numel() for p in small_net(1, 10).parameters())
    # a new Dataset object with the same tensors, the same function: the same keys, everything reused
    again = prunebench.run_study(CONFIG, tmp_path / "run", model=small_net, data=from_tensors(*arrays), progress=False)
    assert again.executed == [] and sorted(again.reused) == sorted(summary.executed)
    # other data: other keys
    xtr, ytr, xte, yte = arrays
    other = from_tensors(xtr[:400], ytr[:400], xte, yte)
    third = prunebench.run_study(CONFIG, tmp_path / "run2", model=small_net, data=other, progress=False)
    assert {c.key for c in third.cells}.isdisjoint({c.key for c in summary.cells})


def test_run_study_in_memory_refusals(arrays, tmp_path: Path) -> None:
    data = from_tensors(*arrays)
    run = tmp_path / "run"
    cases = [
        (dict(model=small_net, data=data, workers=2), "runs in this process only"),
        (dict(model=lambda in_channels, num_classes: small_net(in_channels, num_classes), data=data), "lambda"),
        (dict(model=small_net(1, 10), data=data), "not a model instance"),
        (dict(model=small_net, data=(1, 2)), "data= must be a prunebench Dataset"),
    ]
    for kwargs, message in cases:
        with pytest.raises(UserError, match=message):
            prunebench.run_study(CONFIG, run, progress=False, **kwargs)
    with pytest.raises(UserError, match="both name a model"):
        prunebench.run_study({**CONFIG, "model": "lenet5"}, run, model=small_net, data=data, progress=False)
    with pytest.raises(UserError, match="both name the data"):
        prunebench.run_study({**CONFIG, "dataset": "fashion-mnist"}, run, model=small_net, data=data, progress=False)
    assert not run.exists()


def _env() -> dict[str, str]:
    src = str(Path(prunebench.__file__).resolve().parents[1])
    return {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1"}


def test_examples_given_parent_study(tmp_path: Path, capsys) -> None:
    ex = tmp_path / "examples"
    shutil.copytree(REPO / "examples", ex)
    made = subprocess.run([sys.executable, str(ex / "make_parent.py"), "--train-limit", "500"], env=_env(),
                          capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr
    assert (ex / "my_model_parent.safetensors").is_file()
    rc = main(["run", str(ex / "given_parent.yaml"), "--out", str(tmp_path / "run"), "--quiet", "--workers", "1"])
    assert rc == 0, capsys.readouterr().err
    assert "Given parent" in (tmp_path / "run" / "report.html").read_text()


def test_examples_notebook(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, str(REPO / "examples" / "notebook.py"), str(tmp_path / "nb")], env=_env(),
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "ok: True" in out.stdout and "parent ratio 0.00" in out.stdout and "wt ratio 0.50" in out.stdout
