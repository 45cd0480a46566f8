"""The ``prunebench`` command as a user runs it: help with examples, one-line errors with exit 2,
train -> evaluate on real data."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from prunebench.cli.main import COMMANDS


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "prunebench", *args], capture_output=True, text=True, cwd=cwd, timeout=600)


@pytest.mark.parametrize("command", [c if c != "listing" else "list" for c in COMMANDS])
def test_every_command_has_help_with_example(command: str) -> None:
    out = cli(command, "--help")
    assert out.returncode == 0 and "example" in out.stdout.lower() and "prunebench" in out.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--model", "lenet6", "--data", "fashion-mnist"], "unknown model 'lenet6'"),
        (["train", "--model", "lenet5", "--data", "cifar11"], "unknown dataset 'cifar11'"),
        (["train", "--model", "lenet5", "--data", "fashion-mnist", "--lr", "-1"], "bad training option lr"),
        (["evaluate", "missing.safetensors"], "checkpoint not found"),
        (["train", "--model", "lenet5", "--data", "npz"], "--data-root FILE.npz"),
    ],
)
def test_bad_input_is_one_line_exit_2(args: list[str], message: str, tmp_path: Path) -> None:
    out = cli(*args, cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in out.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_debug_shows_traceback(tmp_path: Path) -> None:
    out = cli("--debug", "evaluate", "missing.safetensors", cwd=tmp_path)
    assert out.returncode != 0 and "Traceback" in out.stderr


def test_train_then_evaluate(tmp_path: Path) -> None:
    out = cli("train", "--model", "lenet5", "--data", "fashion-mnist", "--epochs", "1", "--train-limit", "4000",
              "--batch-size", "32", "--out", str(tmp_path / "ck"), "--no-progress")
    assert out.returncode == 0, out.stderr
    assert "test accuracy" in out.stdout
    from prunebench.store import read_meta

    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.metrics.json", "ck.safetensors"]  # one checkpoint file
    meta = read_meta(tmp_path / "ck.safetensors")
    assert meta["model"] == "lenet5" and meta["dataset"] == "fashion-mnist"
    ev = cli("evaluate", str(tmp_path / "ck.safetensors"), "--out", str(tmp_path / "eval.json"))
    assert ev.returncode == 0, ev.stderr
    metrics = json.loads((tmp_path / "eval.json").read_text())
    assert metrics["test_acc"] == pytest.approx(meta["metrics"]["test_acc"])  # same model, same test set
    assert 0.6 < metrics["test_acc"] <= 1.0


def test_list_registries() -> None:
    models = cli("list", "models")
    assert models.returncode == 0 and "resnet20" in models.stdout and "lenet5" in models.stdout
    assert re.search(r"^wrn28_10 +family=wrn  depth=28  widen=10", models.stdout, re.M)  # typed metadata
    data = cli("list", "datasets")
    assert "fashion-mnist" in data.stdout and "cifar10" in data.stdout and "npz" in data.stdout
    assert re.search(r"^cifar100 +channels=3  size=32  classes=100$", data.stdout, re.M)
    evs = cli("list", "evaluators").stdout.splitlines()
    at = next(i for i, line in enumerate(evs) if line.startswith("calibration "))
    assert "needs_parent=False" in evs[at] and "n_bins=15 (equal-width confidence bins" in evs[at + 1]
    assert evs[at + 2].strip().startswith("description: Does confidence match accuracy?")
    corr = cli("list", "corruptions").stdout
    assert re.search(r"^spatter +family=weather  benchmark=False$", corr, re.M)


def test_evaluate_suite_is_checked_against_the_specs_before_any_file_is_read(tmp_path: Path) -> None:
    for suite, words in [("noise-similarity", "pass --parent"), ("calibraton", "did you mean 'calibration'")]:
        out = cli("evaluate", str(tmp_path / "absent.safetensors"), "--suite", suite)
        assert out.returncode == 2 and words in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_prune_cascade_and_bad_ratio(tmp_path: Path) -> None:
    from prunebench.store import load_checkpoint

    assert cli("train", "--model", "lenet5", "--data", "fashion-mnist", "--epochs", "1", "--train-limit", "1000",
               "--out", str(tmp_path / "parent"), "--no-progress").returncode == 0
    out = cli("prune", str(tmp_path / "parent.safetensors"), "--method", "wt", "--ratio", "0.7",
              "--out", str(tmp_path / "p70"), "--no-progress")
    assert out.returncode == 0, out.stderr
    assert "0.7000" in out.stdout and "test accuracy" in out.stdout
    p70 = load_checkpoint(tmp_path / "p70")
    state = p70.pruning_state()
    assert state.prune_ratio() == pytest.approx(0.7, rel=0.005)
    # Cascade: pruning further keeps every weight that was already pruned at zero.
    assert cli("prune", str(tmp_path / "p70.safetensors"), "--method", "wt", "--ratio", "0.9",
               "--out", str(tmp_path / "p90"), "--no-progress").returncode == 0
    p90 = load_checkpoint(tmp_path / "p90")
    for name, mask in p70.masks.items():
        assert not (p90.masks[name] & ~mask).any(), name
    assert p90.pruning_state().prune_ratio() == pytest.approx(0.9, rel=0.005)
    assert [p["method"] for p in p90.meta["pruning"]] == ["wt", "wt"]
    ft = cli("prune", str(tmp_path / "parent.safetensors"), "--method", "ft", "--ratio", "0.5", "--latency",
             "--option", "round_to=4", "--option", "norm=l2", "--out", str(tmp_path / "ft50"), "--no-progress")
    assert ft.returncode == 0, ft.stderr
    ft50 = load_checkpoint(tmp_path / "ft50")
    from prunebench.pruning.registry import METHODS  # the checkpoint records every option as it ran, defaults too
    assert ft50.meta["pruning"][-1]["options"] == {**METHODS.spec("ft").options().model_dump(mode="json"),
                                                   "round_to": 4, "norm": "l2"}
    assert ft50.meta["pruning"][-1]["options"]["allocation"] == "uniform"
    for name, mask in ft50.masks.items():  # round_to reached the method: kept filters come in blocks of 4
        kept = int(mask.reshape(mask.shape[0], -1).any(1).sum())
        assert kept % 4 == 0 or kept == mask.shape[0], (name, kept)
    for opt, msg in [("bogus=1", "unknown option 'bogus'"), ("round_to", "expects KEY=VALUE")]:
        bad = cli("prune", str(tmp_path / "parent.safetensors"), "--method", "ft", "--ratio", "0.5", "--option", opt,
                  "--out", str(tmp_path / "bad"))
        assert bad.returncode == 2 and msg in bad.stderr and not (tmp_path / "bad.safetensors").exists()
    lat = [line.split() for line in ft.stdout.splitlines() if "latency" in line or "compressed" in line]
    before_ms, after_ms, compressed_ms = float(lat[0][-2]), float(lat[0][-1]), float(lat[1][-1])
    assert min(before_ms, after_ms, compressed_ms) > 0
    for args, msg in [(["--ratio", "1.0"], "prune ratio must be in [0, 1)"), (["--ratio", "0.5"], "never revived")]:
        bad = cli("prune", str(tmp_path / "p90.safetensors"), "--method", "wt", *args, "--out", str(tmp_path / "bad"))
        assert bad.returncode == 2 and msg in bad.stderr and not (tmp_path / "bad.safetensors").exists()


def test_corrupt_grid(tmp_path: Path) -> None:
    out = cli("corrupt", "--dataset", "fashion-mnist", "--images", "2", "--out", str(tmp_path / "grid.png"))
    assert out.returncode == 0, out.stderr
    png = (tmp_path / "grid.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000  # a real picture, not an empty canvas
    bad = cli("corrupt", "--out", str(tmp_path / "grid.jpg"))
    assert bad.returncode == 2 and ".png" in bad.stderr
