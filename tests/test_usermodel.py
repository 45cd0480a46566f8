"""Your own model and your own trained parent in a study (issue 14, items 1 and 2), through the real CLI.

The model is defined in a file this test writes (a concatenation of two branches: not a zoo model);
the parent is that model's weights saved by ``safetensors.torch.save_file``. One study (two
repetitions, spawn workers) is shared by the module; tests that change it work on a copy.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from prunebench.cli.main import main
from prunebench.store import load_checkpoint
from prunebench.study import load_config, run_study
from prunebench.study.cells import checkpoint_path

MODEL_SRC = '''
import torch
from torch import nn


class CatNet(nn.Module):
    """Two branches concatenated, then a conv and a linear head."""

    def __init__(self, in_channels, num_classes, hidden):
        super().__init__()
        self.a = nn.Conv2d(in_channels, hidden, 3, padding=1)
        self.b = nn.Conv2d(in_channels, hidden, 5, padding=2)
        self.bn = nn.BatchNorm2d(2 * hidden)
        self.conv = nn.Conv2d(2 * hidden, 12, 3, padding=1)
        self.head = nn.Linear(12, num_classes)

    def forward(self, x):
        h = torch.relu(self.bn(torch.cat([self.a(x), self.b(x)], 1)))
        return self.head(torch.relu(self.conv(h)).mean((2, 3)))


def make(in_channels, num_classes, hidden=6):
    return CatNet(in_channels, num_classes, hidden)


def not_a_model(**kwargs):
    return 3
'''

CONFIG = {
    "name": "catnet",
    "model": {"factory": "catnet.py:make", "kwargs": {"hidden": 6}},
    "parent": "weights/parent.safetensors",
    "dataset": {"name": "fashion-mnist", "train_limit": 400, "test_limit": 200},
    "train": {"epochs": 1, "batch_size": 64, "lr": 0.05},
    "methods": ["wt", "ft"],
    "ratios": [0.5],
    "repetitions": 2,
    "evaluation": {"suite": ["calibration"]},
    "device": "cpu",
}


def write_study(folder: Path, config: dict | None = None, hidden: int = 6) -> Path:
    """The model file, a parent of it (random weights: never retrained, so any weights do) and the config."""
    from prunebench.models.factory import build_user_model

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "catnet.py").write_text(MODEL_SRC)
    (folder / "weights").mkdir(exist_ok=True)
    torch.manual_seed(123)
    model = build_user_model(f"{folder / 'catnet.py'}:make", {"in_channels": 1, "num_classes": 10, "hidden": hidden})
    save_file(model.state_dict(), str(folder / "weights" / "parent.safetensors"))
    (folder / "study.yaml").write_text(yaml.safe_dump(config or CONFIG))
    return folder / "study.yaml"


def plan_cells(run: Path) -> list[dict]:
    return json.loads((run / "plan.json").read_text())["cells"]


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory):
    """(study folder, run dir, exit code) of one CLI run with two spawn workers."""
    folder = tmp_path_factory.mktemp("usermodel") / "project"
    cfg = write_study(folder)
    run = folder.parent / "run"
    rc = main(["run", str(cfg), "--out", str(run), "--quiet", "--workers", "2"])
    return folder, run, rc


def test_user_model_with_given_parent_runs_end_to_end(study) -> None:
    from prunebench.study.results import load_results

    folder, run, rc = study
    assert rc == 0
    rows = load_results(run)
    parents = [r for r in rows if r["kind"] == "parent"]
    pruned = [r for r in rows if r["kind"] == "pruned"]
    assert sorted(r["rep"] for r in parents) == [0, 1]
    assert sorted((r["method"], r["rep"]) for r in pruned) == [("ft", 0), ("ft", 1), ("wt", 0), ("wt", 1)]
    assert all(0 <= r["nominal/acc/nominal"] <= 1 for r in rows)
    ft = [r for r in pruned if r["method"] == "ft"][0]
    assert ft["params_total"] < parents[0]["params_total"] or ft["params_nonzero"] < parents[0]["params_nonzero"]
    # the report names the factory and says that repetitions share one parent
    html = (run / "report.html").read_text()
    assert "catnet.py:make" in html and "not independently trained parents" in html


def test_given_parent_is_not_retrained_bit_identical(study) -> None:
    folder, run, _ = study
    given = load_file(str(folder / "weights" / "parent.safetensors"))
    trains = [c for c in plan_cells(run) if c["kind"] == "train"]
    assert len(trains) == 2
    sha = hashlib.sha256((folder / "weights" / "parent.safetensors").read_bytes()).hexdigest()
    for c in trains:
        assert c["config"]["parent"] == {"sha256": sha} and "train" not in c["config"]  # the file replaces the recipe
        saved = load_file(str(checkpoint_path(run, c["key"])))
        assert sorted(saved) == sorted(given)
        for k, v in given.items():
            assert saved[k].dtype == v.dtype and saved[k].numpy().tobytes() == v.numpy().tobytes(), k


def test_checkpoint_of_user_model_loads_and_repetitions_share_no_baseline(study) -> None:
    folder, run, _ = study
    cells = plan_cells(run)
    assert not [c for c in cells if c["kind"] == "eval" and "baseline" in c["config"]]  # all parents are one parent
    prune = next(c for c in cells if c["kind"] == "prune" and c["labels"]["method"] == "ft")
    ck = load_checkpoint(checkpoint_path(run, prune["key"]))
    assert ck.meta["model_factory"] == f"{(folder / 'catnet.py').resolve()}:make" and ck.meta["model"] == "catnet.py:make"
    assert type(ck.model).__name__ == "CatNet"
    out = ck.model.eval()(torch.zeros(2, 1, 28, 28))
    assert out.shape == (2, 10)


def test_moving_keeps_cells_editing_the_factory_reruns_them(study, tmp_path: Path) -> None:
    folder, run, _ = study
    moved, moved_run = tmp_path / "project", tmp_path / "run"
    shutil.copytree(folder, moved)
    shutil.copytree(run, moved_run)
    again = run_study(moved / "study.yaml", moved_run, progress=False)
    assert again.executed == [] and len(again.reused) == len(again.cells)  # keys do not depend on where it lies
    before = {c["key"] for c in plan_cells(moved_run) if c["kind"] == "train"}
    (moved / "catnet.py").write_text(MODEL_SRC + "\n# an edit\n")
    edited = run_study(moved / "study.yaml", moved_run, progress=False)
    after = {c["key"] for c in plan_cells(moved_run) if c["kind"] == "train"}
    assert edited.ok and after.isdisjoint(before)
    assert edited.reused == [] and len(edited.executed) == len(edited.cells)
    assert edited.executed_kinds()["train"] == 2


def test_zoo_configs_keep_model_entries(study) -> None:
    """A zoo config plans without any factory or parent entries (keys: /work/brief/plankeys.py)."""
    from helpers import SMOKE
    from prunebench.study.cells import get_dataset
    from prunebench.study.plan import plan

    cfg = load_config(SMOKE)
    cells = plan(cfg, get_dataset(cfg.dataset.model_dump(mode="json")).info)
    train = next(c for c in cells if c.kind == "train")
    assert train.config["model"] == {"name": "lenet5", "kwargs": train.run["model"]["kwargs"]} and "parent" not in train.config
    assert "given_parent" not in train.run and "parent" not in cfg.resolved() and "factory" not in cfg.resolved()["model"]


# ---------------------------------------------------------------------- bad input: one line, exit 2, nothing written
def _bad_cases() -> list[tuple[str, dict, str]]:
    c = json.loads(json.dumps(CONFIG))

    def change(**kw):
        d = json.loads(json.dumps(c))
        for k, v in kw.items():
            d[k] = v
        return d
    model = c["model"]
    return [
        ("module missing", change(model={**model, "factory": "no_such_module_pb14:make"}),
         "cannot import module 'no_such_module_pb14'"),
        ("file missing", change(model={**model, "factory": "missing.py:make"}), "file not found"),
        ("function missing", change(model={**model, "factory": "catnet.py:nope"}), "has no attribute 'nope'"),
        ("not a module", change(model={"factory": "catnet.py:not_a_model"}), "returned a int, not a torch.nn.Module"),
        ("name and factory", change(model={**model, "name": "lenet5"}), "not both"),
        ("neither", change(model={"kwargs": {}}), "not neither"),
        ("parent missing", change(parent="weights/none.safetensors"), "parent: file not found"),
        ("parent not safetensors", change(parent="catnet.py"), "is not a safetensors file"),
        ("parent and scratch", change(scratch=["S3"]), "scratch baselines are sized by the parent's training epochs"),
        ("parent shape", change(model={**model, "kwargs": {"hidden": 4}}),
         "tensor 'a.weight' has shape [6, 1, 3, 3] but the model's is [4, 1, 3, 3]"),
    ]


@pytest.mark.parametrize("case", _bad_cases(), ids=lambda c: c[0])
def test_bad_input_one_line_exit_2_nothing_written(case, tmp_path: Path, capsys) -> None:
    _, config, message = case
    cfg = write_study(tmp_path / "p", config)
    out = tmp_path / "out"
    assert main(["run", str(cfg), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not out.exists()


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.pop("head.bias"), "lacks tensor 'head.bias' (model shape [10])"),
    (lambda t: t.update({"extra.weight": torch.zeros(3)}), "has tensor 'extra.weight' (shape [3])"),
    (lambda t: t.update({"head.bias": t["head.bias"].double()}), "'head.bias' is torch.float64"),
])
def test_parent_tensors_that_do_not_fit(edit, message: str, tmp_path: Path, capsys) -> None:
    cfg = write_study(tmp_path / "p")
    path = tmp_path / "p" / "weights" / "parent.safetensors"
    tensors = load_file(str(path))
    edit(tensors)
    save_file(tensors, str(path))
    out = tmp_path / "out"
    assert main(["run", str(cfg), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not out.exists()


def test_module_factory_is_keyed_by_its_source_and_gets_the_geometry_it_names(tmp_path: Path, monkeypatch) -> None:
    """``package.module:function``: hashed by ``inspect.getsource`` of the module; geometry passed only
    when the signature names it (``image_size`` here; ``**kwargs`` receives none)."""
    from prunebench.models.factory import accepted_geometry
    from prunebench.study.cells import get_dataset
    from prunebench.study.plan import plan

    pkg = tmp_path / "pb14pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    src = MODEL_SRC + "\n\ndef sized(in_channels, num_classes, image_size, **rest):\n    assert image_size == 28\n" \
                      "    return CatNet(in_channels, num_classes, 4)\n"
    (pkg / "nets.py").write_text(src)
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = load_config({**CONFIG, "parent": None, "model": {"factory": "pb14pkg.nets:sized"}})
    cells = plan(cfg, get_dataset(cfg.dataset.model_dump(mode="json")).info)
    train = next(c for c in cells if c.kind == "train")
    assert train.config["model"]["factory"] == {"function": "sized", "sha256": hashlib.sha256(src.encode()).hexdigest()}
    assert train.run["model"]["kwargs"] == {"in_channels": 1, "num_classes": 10, "image_size": 28}
    assert train.run["model"]["factory"] == "pb14pkg.nets:sized" and "train" in train.config
    assert accepted_geometry("pb14pkg.nets:make", {"in_channels": 1, "image_size": 28, "width": 1.0}) == {"in_channels": 1}


def test_zoo_model_with_a_prunebench_checkpoint_as_parent(tmp_path: Path, capsys) -> None:
    """A prunebench checkpoint (metadata and all) is a valid given parent of a zoo model; a pruned
    one (it holds masks) is refused before anything is written."""
    from prunebench.models import create_model
    from prunebench.store import save_checkpoint
    from prunebench.study.results import load_results

    torch.manual_seed(7)
    lenet = create_model("lenet5", in_channels=1, num_classes=10, image_size=28)
    ck = save_checkpoint(tmp_path / "lenet.safetensors", lenet, {"model": "lenet5", "model_kwargs": {}})
    cfg = {"name": "zoo-parent", "model": "lenet5", "parent": str(ck), "device": "cpu", "methods": ["wt"],
           "ratios": [0.5], "dataset": {"name": "fashion-mnist", "train_limit": 300, "test_limit": 100},
           "train": {"epochs": 1, "batch_size": 64}}
    summary = run_study(cfg, tmp_path / "run", progress=False)
    assert summary.ok and {k: n for k, n in summary.executed_kinds().items() if n} == {"train": 1, "prune": 1, "eval": 2}
    parent = next(r for r in load_results(tmp_path / "run") if r["kind"] == "parent")
    saved = load_checkpoint(checkpoint_path(tmp_path / "run", parent["model_key"])).model.state_dict()
    assert all(torch.equal(saved[k], v) for k, v in lenet.state_dict().items())
    masked = save_checkpoint(tmp_path / "pruned.safetensors", lenet, {"model": "lenet5", "model_kwargs": {}},
                             masks={"7.weight": torch.ones_like(lenet.state_dict()["7.weight"], dtype=torch.bool)})
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({**cfg, "parent": str(masked)}))
    assert main(["run", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    assert "is a pruned checkpoint (it holds pruning masks)" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_user_model_with_scratch_baseline_and_trained_parent(tmp_path: Path) -> None:
    """Without a parent the factory's model is trained as usual, and a scratch baseline rebuilds it from the factory."""
    from prunebench.study.results import load_results

    cfg = write_study(tmp_path / "p", {**CONFIG, "parent": None, "methods": ["wt"], "repetitions": 1,
                                       "evaluation": {"suite": []}, "scratch": ["S3"]})
    summary = run_study(cfg, tmp_path / "run", progress=False)
    assert summary.ok and {k: n for k, n in summary.executed_kinds().items() if n} == {"train": 1, "prune": 1,
                                                                                      "scratch": 1, "eval": 3}
    train = next(c for c in summary.cells if c.kind == "train")
    assert "train" in train.config and "parent" not in train.config
    assert sorted(r["method"] for r in load_results(tmp_path / "run")) == ["parent", "wt", "wt-scratch-S3"]
