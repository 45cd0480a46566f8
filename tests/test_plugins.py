"""Plug-ins: a new entry written as ONE file in a temporary package, named in ``PRUNEBENCH_PLUGINS``,
shows up everywhere the built-in entries do, with no other file changed. Each section runs
``prunebench`` (or Python) in a subprocess so that the registries load fresh.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml


def _env(tmp_path: Path, plugins: str) -> dict[str, str]:
    """The environment of a subprocess that sees the plug-in package under ``tmp_path``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), *filter(None, [env.get("PYTHONPATH")])])
    env["PRUNEBENCH_PLUGINS"] = plugins
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """``prunebench ARGS`` in a fresh process (the registries load there, plug-ins included)."""
    return subprocess.run([sys.executable, "-m", "prunebench", *args], capture_output=True, text=True, env=env,
                          timeout=600)


# ============================================================================ evaluators and datasets
EVALUATOR_FILE = '''
"""An evaluator from outside prunebench: accuracy on horizontally mirrored test images."""
import torch
from pydantic import Field

from prunebench.evaluation.base import predict_logits
from prunebench.evaluation.registry import EVALUATORS
from prunebench.registry import Options


class MirrorOptions(Options):
    n: int = Field(100, gt=0, description="first test images mirrored")


@EVALUATORS.register("plug-mirror", options=MirrorOptions, axis_label="flip", panels=("mirror_gap",),
                     description="Plug-in check: accuracy on left-right mirrored test images.")
def mirror(model, ctx, opts):
    """Accuracy on mirrored test images: acc/mirror-1 left-right, acc/mirror-2 also upside down; mirror_gap."""
    split = ctx.test_split().subset(slice(0, opts.n))
    x01 = split.x.float().div(255.0)
    out = {}
    for level, dims in ((1, [3]), (2, [2, 3])):
        correct = predict_logits(model, torch.flip(x01, dims=dims), ctx.data, ctx.device).argmax(1) == split.y
        out[f"acc/mirror-{level}"], out[f"correct/mirror-{level}"] = correct.float().mean().item(), correct
    clean = (predict_logits(model, x01, ctx.data, ctx.device).argmax(1) == split.y).float().mean().item()
    return {**out, "mirror_gap": clean - out["acc/mirror-1"]}
'''
DATASET_FILE = '''
"""A dataset from outside prunebench: the first 2,000 training and 500 test images of Fashion-MNIST."""
from dataclasses import replace

from prunebench.data import load_splits
from prunebench.data.registry import DATASETS


@DATASETS.register("plug-fmnist", channels=1, size=28, classes=10)
def plug_fmnist(root=None):
    """Fashion-MNIST, cut to 2,000 training and 500 test images."""
    info, splits = load_splits("fashion-mnist", root)
    cut = {"train": 2000, "test": 500}
    return replace(info, name="plug-fmnist"), {k: s.subset(slice(0, cut[k])) for k, s in splits.items()}
'''
TINY_STUDY = {"name": "plug", "model": {"name": "lenet5"},
              "dataset": {"name": "plug-fmnist", "train_limit": 600, "test_limit": 200},
              "train": {"epochs": 1, "batch_size": 64, "lr": 0.05}, "retrain": {"epochs": 1},
              "methods": ["wt"], "ratios": [0.5], "evaluation": {"suite": [{"plug-mirror": {"n": 150}}]},
              "device": "cpu"}


@pytest.fixture(scope="module")
def data_plugins(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """``<tmp>/evplug/mirror.py`` and ``<tmp>/evplug/tinydata.py``, one file each, and the env naming them."""
    root = tmp_path_factory.mktemp("data_plugins")
    files = {"mirror": EVALUATOR_FILE, "tinydata": DATASET_FILE}
    (root / "evplug").mkdir()
    for stem, text in files.items():
        (root / "evplug" / f"{stem}.py").write_text(textwrap.dedent(text), encoding="utf-8")
    return root, _env(root, ",".join(f"evplug.{stem}" for stem in files))


def test_evaluator_and_dataset_plugins_are_listed(data_plugins) -> None:
    _, env = data_plugins
    ev = _cli(env, "list", "evaluators")
    assert ev.returncode == 0, ev.stderr
    lines = ev.stdout.splitlines()
    at = next(i for i, ln in enumerate(lines) if ln.startswith("plug-mirror "))
    assert "axis_label=flip" in lines[at] and "needs_parent=False" in lines[at]
    assert "n=100 (first test images mirrored)" in lines[at + 1]
    assert "accuracy on left-right mirrored test images" in lines[at + 2]
    assert any(ln.startswith("calibration ") for ln in lines)  # the built-in ones are still there
    data = _cli(env, "list", "datasets")
    assert data.returncode == 0, data.stderr
    line = next(ln for ln in data.stdout.splitlines() if ln.startswith("plug-fmnist "))
    assert "channels=1" in line and "size=28" in line and "classes=10" in line


@pytest.mark.parametrize("options, words", [({"n": 0}, ["option n=0", "greater than 0"]),
                                            ({"m": 3}, ["unknown option 'm'", "n=100 (first test images mirrored)"])])
def test_evaluator_plugin_options_are_checked_by_the_study_config(data_plugins, tmp_path: Path, options, words) -> None:
    _, env = data_plugins
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml.safe_dump({**TINY_STUDY, "evaluation": {"suite": [{"plug-mirror": options}]}}))
    bad = _cli(env, "run", str(cfg), "--out", str(tmp_path / "run"), "--quiet")
    assert bad.returncode == 2, bad.stderr
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in bad.stderr, bad.stderr
    assert all(w in lines[0] for w in ["evaluation.suite[0]", "plug-mirror", *words]), lines[0]
    assert not (tmp_path / "run" / "results.sqlite").exists()


def test_evaluator_and_dataset_plugins_run_in_a_study_with_a_report_section(data_plugins, tmp_path: Path) -> None:
    _, env = data_plugins
    cfg = tmp_path / "plug.yaml"
    cfg.write_text(yaml.safe_dump(TINY_STUDY))
    run = _cli(env, "run", str(cfg), "--out", str(tmp_path / "run"), "--quiet")
    assert run.returncode == 0, run.stderr
    rows = json.loads(subprocess.run(
        [sys.executable, "-c", f"import json, prunebench; print(json.dumps(prunebench.load_results({str(tmp_path / 'run')!r})))"],
        capture_output=True, text=True, env=env, timeout=600, check=True).stdout)
    assert sorted(r["method"] for r in rows) == ["parent", "wt"]
    for r in rows:  # the plug-in evaluator ran on every model, on the plug-in dataset's images
        assert 0.0 <= r["plug-mirror/acc/mirror-1"] <= 1.0 and 0.0 <= r["plug-mirror/acc/mirror-2"] <= 1.0
        assert r["plug-mirror/mirror_gap"] is not None
    html = (tmp_path / "run" / "report.html").read_text(encoding="utf-8")
    assert 'id="ev-plug-mirror"' in html and "accuracy on left-right mirrored test images" in html
    assert "Prune potential vs flip" in html  # the axis label of its metadata


def test_evaluator_and_dataset_plugins_join_the_registry_parametrized_tests(data_plugins) -> None:
    _, env = data_plugins
    tests = Path(__file__).parent
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider",
                          f"{tests / 'test_evaluators.py'}::test_evaluator_spec_metadata",
                          f"{tests / 'test_data_readers.py'}::test_dataset_spec_metadata"],
                         capture_output=True, text=True, env=env, timeout=600, cwd=tests.parent)
    assert out.returncode == 0, out.stdout[-3000:]
    assert "PASSED tests/test_evaluators.py::test_evaluator_spec_metadata[plug-mirror]" in out.stdout
    assert "PASSED tests/test_data_readers.py::test_dataset_spec_metadata[plug-fmnist]" in out.stdout
