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


# ============================================================================ methods
METHOD_NAME = "plug-magnitude"
METHOD_FILE = '''
"""A pruning method from outside prunebench: global magnitude of |w| ** power."""
from pydantic import Field

from prunebench.pruning.allocation import global_topk
from prunebench.pruning.registry import METHODS
from prunebench.registry import Options


class PlugOptions(Options):
    power: float = Field(1.0, gt=0, description="score |w| ** power")
    layers_last: bool = Field(False, description="an option no built-in method has")


@METHODS.register("plug-magnitude", options=PlugOptions, structured=False, data_informed=False, color="#123456")
def plug_magnitude(model, state, ratio, ctx):
    """Keep the globally largest |w| ** power."""
    power = ctx.opts(PlugOptions).power
    return global_topk({k: p.detach().abs() ** power for k, p in state.weights().items()}, state.masks, ratio)
'''


@pytest.fixture(scope="module")
def method_plugin(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """``<tmp>/plugpkg/magnitude.py`` (a namespace package: the one file is all there is) and the env naming it."""
    root = tmp_path_factory.mktemp("method_plugin")
    (root / "plugpkg").mkdir()
    (root / "plugpkg" / "magnitude.py").write_text(textwrap.dedent(METHOD_FILE), encoding="utf-8")
    return root, _env(root, "plugpkg.magnitude")


def test_method_plugin_is_listed(method_plugin) -> None:
    _, env = method_plugin
    out = _cli(env, "list", "methods")
    assert out.returncode == 0, out.stderr
    line = next(i for i, ln in enumerate(out.stdout.splitlines()) if ln.startswith(METHOD_NAME))
    listing = out.stdout.splitlines()
    assert "structured=False" in listing[line] and "color=#123456" in listing[line]
    assert "power=1.0 (score |w| ** power)" in listing[line + 1]
    assert "\nwt " in out.stdout  # the built-in methods are still there


def test_method_plugin_prunes_from_the_cli(method_plugin) -> None:
    from prunebench.models import create_model
    from prunebench.store import load_checkpoint, save_checkpoint

    root, env = method_plugin
    parent = root / "parent"
    kwargs = {"in_channels": 1, "num_classes": 10, "image_size": 28}
    save_checkpoint(parent, create_model("lenet5", **kwargs), {"model": "lenet5", "model_kwargs": kwargs,
                                                                "dataset": "fashion-mnist"})
    out = _cli(env, "prune", f"{parent}.safetensors", "--method", METHOD_NAME, "--ratio", "0.6",
                      "--option", "power=2", "--out", str(root / "p60"), "--no-progress")
    assert out.returncode == 0, out.stderr
    assert "0.6000" in out.stdout
    ck = load_checkpoint(root / "p60.safetensors")
    assert ck.meta["pruning"][-1]["method"] == METHOD_NAME and ck.meta["pruning"][-1]["options"] == {"power": 2.0, "layers_last": False}
    assert abs(ck.pruning_state().prune_ratio() - 0.6) < 0.003
    for opt, words in [("power=-1", ["power=-1", "greater than 0"]), ("powr=2", ["unknown option 'powr'", "power=1.0"])]:
        bad = _cli(env, "prune", f"{parent}.safetensors", "--method", METHOD_NAME, "--ratio", "0.5",
                          "--option", opt, "--out", str(root / "bad"))
        assert bad.returncode == 2, (opt, bad.stderr)
        lines = bad.stderr.strip().splitlines()
        assert len(lines) == 1 and all(w in lines[0] for w in [METHOD_NAME, *words]), (opt, bad.stderr)
        assert not (root / "bad.safetensors").exists()


STUDY_CHECK = '''
import json, sys
from types import SimpleNamespace
from prunebench.errors import UserError
from prunebench.report.plots import method_colors
from prunebench.study.loader import load_config
from prunebench.study.plan import plan

base = dict(name="plug", model={"name": "lenet5"}, dataset={"name": "fashion-mnist"}, ratios=[0.5],
            evaluation={"suite": []})
out = {}
cfg = load_config({**base, "methods": [{"plug-magnitude": {"power": 2}}, "wt"]})
info = SimpleNamespace(in_channels=1, num_classes=10, image_size=(28, 28))
prune = [c for c in plan(cfg, info) if c.kind == "prune"]
out["labels"] = [c.labels for c in prune]
out["options"] = [c.config["options"] for c in prune]
keys = {}
for opts in ({}, {"power": 1.0}, {"power": 1}, {"power": 3}):
    c = load_config({**base, "methods": [{"plug-magnitude": opts}]})
    keys[json.dumps(opts)] = next(x.key for x in plan(c, info) if x.kind == "prune")
out["keys"] = keys
errors = {}
for name, opts in [("plug-magnitude", {"power": 0}), ("plug-magnitude", {"round_to": 8}),
                   ("wt", {"layers_last": True}), ("plug-magnitude", {"powr": 1})]:
    try:
        load_config({**base, "methods": [{name: opts}]})
        errors[f"{name} {opts}"] = None
    except UserError as e:
        errors[f"{name} {opts}"] = str(e)
out["errors"] = errors
out["color"] = method_colors(["plug-magnitude", "wt"])
json.dump(out, sys.stdout)
'''


def test_method_plugin_in_a_study_config(method_plugin) -> None:
    _, env = method_plugin
    run = subprocess.run([sys.executable, "-c", STUDY_CHECK], capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    plug, wt = out["labels"]
    assert plug["method"] == METHOD_NAME and plug["structured"] is False and plug["baseline"] is False
    assert out["options"] == [{"power": 2.0}, {}]
    keys = out["keys"]  # defaults are left out of the cell key however they are spelled
    assert keys["{}"] == keys['{"power": 1.0}'] == keys['{"power": 1}'] != keys['{"power": 3}']
    errors = out["errors"]
    assert "power=0" in errors["plug-magnitude {'power': 0}"] and "greater than 0" in errors["plug-magnitude {'power': 0}"]
    # an option only structured methods take: said so, with the methods that take it
    assert "structured" in errors["plug-magnitude {'round_to': 8}"] and "ft" in errors["plug-magnitude {'round_to': 8}"]
    assert "unknown option 'layers_last'" in errors["wt {'layers_last': True}"]
    assert "unknown option 'powr'" in errors["plug-magnitude {'powr': 1}"]
    assert all("\n" not in e for e in errors.values())
    assert out["color"] == {"plug-magnitude": "#123456", "wt": "#1f77b4"}


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


def test_method_evaluator_and_dataset_plugins_run_in_a_study_with_report_section_and_colour(
        method_plugin, data_plugins, tmp_path: Path) -> None:
    (method_root, method_env), (_, env) = method_plugin, data_plugins
    env = {**env, "PYTHONPATH": os.pathsep.join([str(method_root), env["PYTHONPATH"]]),
           "PRUNEBENCH_PLUGINS": f"{env['PRUNEBENCH_PLUGINS']},{method_env['PRUNEBENCH_PLUGINS']}"}
    cfg = tmp_path / "plug.yaml"
    cfg.write_text(yaml.safe_dump({**TINY_STUDY, "methods": ["wt", {METHOD_NAME: {"power": 2.0}}]}))
    run = _cli(env, "run", str(cfg), "--out", str(tmp_path / "run"), "--quiet")
    assert run.returncode == 0, run.stderr
    rows = json.loads(subprocess.run(
        [sys.executable, "-c", f"import json, prunebench; print(json.dumps(prunebench.load_results({str(tmp_path / 'run')!r})))"],
        capture_output=True, text=True, env=env, timeout=600, check=True).stdout)
    assert sorted(r["method"] for r in rows) == ["parent", METHOD_NAME, "wt"]
    assert next(r for r in rows if r["method"] == METHOD_NAME)["prune_ratio"] == pytest.approx(0.5, abs=0.005)
    for r in rows:  # the plug-in evaluator ran on every model, on the plug-in dataset's images
        assert 0.0 <= r["plug-mirror/acc/mirror-1"] <= 1.0 and 0.0 <= r["plug-mirror/acc/mirror-2"] <= 1.0
        assert r["plug-mirror/mirror_gap"] is not None
    html = (tmp_path / "run" / "report.html").read_text(encoding="utf-8")
    assert 'id="ev-plug-mirror"' in html and "accuracy on left-right mirrored test images" in html
    assert "Prune potential vs flip" in html  # the axis label of its metadata
    assert _png_has_colour(html, (0x12, 0x34, 0x56))  # the plug-in method's plot colour, from its metadata


def _png_has_colour(html: str, rgb: tuple[int, int, int]) -> bool:
    """Whether any figure embedded in ``html`` paints pixels of exactly ``rgb`` (bars are filled flat)."""
    import base64
    import io
    import re

    from PIL import Image

    for b64 in re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html):
        img = Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB")
        if any(c == rgb for _, c in img.getcolors(maxcolors=1 << 24) or ()):
            return True
    return False


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


# ============================================================================ a failed import is retried whole
FLAKY_FILE = '''
"""A plug-in that registers a method, then fails its first import (a missing file it needs, say)."""
from pathlib import Path

from prunebench.pruning.registry import METHODS

@METHODS.register("plug-flaky", structured=False, data_informed=False)
def flaky(model, state, ratio, ctx):
    """Registered before the failure below."""
    return {}

flag = Path(__file__).with_name("imported-once")
if not flag.exists():
    flag.write_text("1")
    raise RuntimeError("first import fails")
'''


@pytest.mark.parametrize("as_path", [True, False], ids=["py-file", "module"])
def test_a_plugin_that_failed_to_import_is_imported_again_without_a_duplicate(tmp_path: Path, as_path: bool) -> None:
    """Its half-done registration is undone with the failed import: the next lookup imports it again and finds
    the entry once (before: 'registered twice' by the same module on every later lookup)."""
    (tmp_path / "flaky_plugin.py").write_text(FLAKY_FILE)
    env = _env(tmp_path, str(tmp_path / "flaky_plugin.py") if as_path else "flaky_plugin")
    code = textwrap.dedent("""
        from prunebench.errors import UserError
        from prunebench.pruning.registry import METHODS
        try:
            METHODS.names()
        except UserError as e:
            print("first:", e)
        print("second:", METHODS.names().count("plug-flaky"), METHODS.spec("plug-flaky").obj.__doc__)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    first, second = out.stdout.splitlines()
    assert "failed to import: RuntimeError: first import fails" in first and "flaky_plugin" in first
    assert second == "second: 1 Registered before the failure below."
