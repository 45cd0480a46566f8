"""The bad-input catalogue: every command, malformed files and values, each refused with ONE line on
stderr naming the problem and the fix, exit status 2, no traceback, and nothing written anywhere.

Each case runs ``prunebench`` in-process (``main(argv)``) in an empty working directory; the shared
"world" of input files (checkpoints, npz files, YAML files, a finished run directory) is compared
byte for byte (and by mtime) before and after.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from prunebench.cli.main import main

KW = {"in_channels": 1, "num_classes": 10, "image_size": 28}
META = {"model": "lenet5", "model_kwargs": KW, "dataset": "fashion-mnist", "val_fraction": 0.1, "split_seed": 0,
        "train": {"epochs": 1, "lr": 0.05}}
UNWRITABLE = "/proc/prunebench-no-such/out"  # refused even for root: nothing can be created under /proc


def _legacy(path: Path, meta: dict) -> None:
    from safetensors.torch import save_file

    from prunebench.models import create_model

    model = create_model("lenet5", **KW)
    tensors = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    save_file(tensors, str(path.with_suffix(".safetensors")))
    path.with_suffix(".json").write_text(json.dumps({"format": "prunebench-checkpoint", "version": 1, **meta,
                                                     "has_masks": False,
                                                     "shapes": {k: list(v.shape) for k, v in tensors.items()}}))


def _npz(path: Path, x_train, y_train, x_test=None, y_test=None, **extra) -> None:
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_train if x_test is None else x_test,
             y_test=y_train if y_test is None else y_test, **extra)


@pytest.fixture(scope="module")
def world(tmp_path_factory, smoke_run) -> Path:
    """Every input file the cases refer to, written once."""
    from helpers import SMOKE

    from prunebench.models import create_model
    from prunebench.store import save_checkpoint

    w = tmp_path_factory.mktemp("world")
    torch.manual_seed(0)
    save_checkpoint(w / "ck", create_model("lenet5", **KW), META)
    _legacy(w / "other-model", {**META, "model": "resnet20"})
    _legacy(w / "classes-edited", {**META, "model_kwargs": {**KW, "num_classes": 12}})
    legacy = w / "shapes-edited"
    _legacy(legacy, META)
    meta = json.loads(legacy.with_suffix(".json").read_text())
    meta["shapes"]["0.weight"] = [3, 3]
    legacy.with_suffix(".json").write_text(json.dumps(meta))
    data = (w / "ck.safetensors").read_bytes()
    (w / "truncated.safetensors").write_bytes(data[: len(data) // 3])
    (w / "random.safetensors").write_bytes(os.urandom(4096))
    (w / "empty.safetensors").write_bytes(b"")
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(3)}, str(w / "foreign.safetensors"))
    (w / "a-file").write_text("not a folder")
    (w / "a-folder").mkdir()
    (w / "grid.png").mkdir()  # a folder named like the file to write
    (w / "ck.metrics.json").mkdir()  # train --out ck would write ck.metrics.json: a folder is there
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (20, 1, 28, 28), dtype=np.uint8)
    lab = np.arange(20) % 10
    (w / "random.npz").write_bytes(os.urandom(2048))
    _npz(w / "labels1000.npz", img, lab + 1000)
    _npz(w / "rgb.npz", rng.integers(0, 255, (20, 3, 28, 28), dtype=np.uint8), lab)
    _npz(w / "float.npz", img.astype(np.float32), lab)
    _npz(w / "negative.npz", img, lab - 5)
    _npz(w / "mismatch.npz", img, lab[:10])
    _npz(w / "objects.npz", img, lab, classes=np.array([object()] * 10, dtype=object))
    np.savez(w / "missing.npz", x_train=img, y_train=lab)
    np.save(w / "single.npy", img)
    shutil.copy(w / "single.npy", w / "single.npz")
    (w / "npz-folder").mkdir()
    from PIL import Image

    for folder, sizes in (("imgs-empty-class", (8, 8)), ("imgs-mixed", (8, 12))):
        for c, side in zip(("a", "b"), sizes):
            (w / folder / c).mkdir(parents=True)
            for i in range(3):
                Image.fromarray(img[i, 0, :side, :side]).save(w / folder / c / f"{i}.png")
    (w / "imgs-empty-class" / "c").mkdir()
    (w / "imgs-none").mkdir()
    good = dict(SMOKE)
    ys = {
        "binary.yaml": os.urandom(300) + b"\xff\xfe",
        "syntax.yaml": b"name: [unclosed\nmodel: lenet5\n",
        "tag.yaml": b"!!python/object/apply:os.system ['echo pwned']\n",
        "list.yaml": b"- a\n- b\n",
        "inf-lr.yaml": yaml.safe_dump({**good, "train": {**good["train"], "lr": float("inf")}}).encode(),
        "nan-delta.yaml": yaml.safe_dump({**good, "delta": float("nan")}).encode(),
        "kwargs.yaml": yaml.safe_dump({**good, "model": {"name": "lenet5", "kwargs": {"depthh": 3}}}).encode(),
        "unknown-key.yaml": yaml.safe_dump({**good, "epochz": 3}).encode(),
        "other.yaml": yaml.safe_dump({**good, "name": "other"}).encode(),
        "other-model.yaml": yaml.safe_dump({**good, "model": "vgg11_bn"}).encode(),
        "width-inf.yaml": yaml.safe_dump({**good, "model": {"name": "lenet5", "width": float("inf")}}).encode(),
        "neg-ratio.yaml": yaml.safe_dump({**good, "ratios": [-0.5, 0.5]}).encode(),
        **{f"sparse-{k}.yaml": yaml.safe_dump({**_sparse(good), **v}).encode() for k, v in SPARSE_BAD.items()},
    }
    for name, content in ys.items():
        (w / name).write_bytes(content)
    run = w / "run"
    shutil.copytree(smoke_run[0], run)
    damaged = w / "damaged-run"
    shutil.copytree(smoke_run[0], damaged)
    (damaged / "results.sqlite").write_bytes(os.urandom(8192))
    (w / "not-a-run").mkdir()
    (w / "not-a-run" / "notes.txt").write_text("mine")
    return w


def snapshot(root: Path) -> dict[str, tuple[int, int, bytes]]:
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.stat().st_size, p.read_bytes())
            for p in sorted(root.rglob("*")) if p.is_file()}


def _sparse(good: dict) -> dict:
    """The smoke study as a sparse-train study (two static random runs)."""
    base = {k: v for k, v in good.items() if k not in ("methods", "retrain", "cycles", "mode", "ratios")}
    return {**base, "mode": "sparse-train", "ratios": [0.9], "sparse": {"runs": ["random/uniform", "random/erk"]}}


SPARSE_BAD = {  # sparse-train configs, each refused by the named line of the case table
    "unknown-scheme": {"sparse": {"runs": [{"criterion": "random", "scheme": "erkk"}]}},
    "unknown-criterion": {"sparse": {"runs": [{"criterion": "snipp", "scheme": "erk"}]}},
    "unknown-update": {"sparse": {"runs": [{"update": "rigll", "scheme": "erk"}]}},
    "bad-run": {"sparse": {"runs": ["random-erk"]}},
    "bad-update-option": {"sparse": {"runs": [{"update": "rigl", "update_options": {"fraction": 2}}]}},
    "zero-sparsity": {"ratios": [0.0, 0.9]},
    "full-sparsity": {"ratios": [1.0]},
    "infeasible": {"ratios": [0.9995], "sparse": {"runs": ["random/erk-plus"]}},
    "depth-lenet": {"sparse": {"runs": ["random/erk"], "depths": [20, 56]}},
    "dup-width": {"sparse": {"runs": ["random/erk"], "widths": [1, 1]}},
    "with-methods": {"methods": ["wt"]},
    "no-section": {"sparse": None},
    "exact-magnitude": {"sparse": {"runs": [{"criterion": "magnitude", "scheme": "erk", "exact": False}]}},
}


W = "{w}"  # placeholder for the world folder in the case table


def npz_case(name: str, file: str, needle: str) -> tuple[str, list[str], str]:
    """The case ``train-npz-<name>``: train on the world's npz file ``file``, refused with ``needle``."""
    return f"train-npz-{name}", ["train", "--model", "lenet5", "--data", "npz", "--data-root", f"{W}/{file}"], needle


def prune_case(name: str, ck: str, needle: str, *extra: str, method: str = "wt", ratio: str = "0.5",
               out: str = "p") -> tuple[str, list[str], str]:
    """The case ``prune-<name>``: prune the world's checkpoint ``<ck>.safetensors``, refused with ``needle``."""
    return (f"prune-{name}", ["prune", f"{W}/{ck}.safetensors", "--method", method, "--ratio", ratio, *extra, "--out", out],
            needle)


CASES = [
    # ---- train
    ("train-unknown-model", ["train", "--model", "lenet6", "--data", "fashion-mnist"], "unknown model 'lenet6'"),
    ("train-unknown-data", ["train", "--model", "lenet5", "--data", "cifar11"], "unknown dataset 'cifar11'"),
    ("train-negative-lr", ["train", "--model", "lenet5", "--data", "fashion-mnist", "--lr", "-1"], "bad training option lr"),
    ("train-inf-lr", ["train", "--model", "lenet5", "--data", "fashion-mnist", "--lr", "inf"], "--lr must be a finite"),
    ("train-nan-width", ["train", "--model", "lenet5", "--data", "fashion-mnist", "--width", "nan"], "--width must be a finite"),
    ("train-zero-width", ["train", "--model", "lenet5", "--data", "fashion-mnist", "--width", "0"], "--width must be"),
    ("train-negative-width", ["train", "--model", "lenet5", "--data", "fashion-mnist", "--width", "-2"], "--width must be"),
    ("train-nan-smoothing", ["train", "--model", "lenet5", "--data", "fashion-mnist", "--label-smoothing", "nan"],
     "--label-smoothing must be a finite"),
    ("train-negative-epochs", ["train", "--model", "lenet5", "--data", "fashion-mnist", "--epochs", "-1"], "epochs"),
    ("train-zero-limit", ["train", "--model", "lenet5", "--data", "fashion-mnist", "--train-limit", "0"], "--train-limit"),
    ("train-bad-device", ["train", "--model", "lenet5", "--data", "fashion-mnist", "--device", "tpu7"], "unknown device"),
    ("train-out-under-file", ["train", "--model", "lenet5", "--data", "fashion-mnist", "--out", f"{W}/a-file/ck"],
     "is a file, not a folder"),
    ("train-out-unwritable", ["train", "--model", "lenet5", "--data", "fashion-mnist", "--out", UNWRITABLE], "cannot write"),
    ("train-out-is-folder", ["train", "--model", "lenet5", "--data", "fashion-mnist", "--out", f"{W}/a-folder"],
     "is an existing folder"),
    ("train-out-sibling-folder", ["train", "--model", "lenet5", "--data", "fashion-mnist", "--out", f"{W}/ck"],
     "is an existing folder"),
    ("train-npz-no-root", ["train", "--model", "lenet5", "--data", "npz"], "--data-root FILE.npz"),
    npz_case("random-bytes", "random.npz", "not an .npz archive"),
    npz_case("labels-1000", "labels1000.npz", "1010-class model"),
    npz_case("float", "float.npz", "must be uint8"),
    npz_case("negative", "negative.npz", "negative labels"),
    npz_case("mismatch", "mismatch.npz", "one label per image"),
    npz_case("objects", "objects.npz", "classes must be a 1-D array of strings"),
    npz_case("missing-keys", "missing.npz", "lacks"),
    npz_case("is-npy", "single.npz", "single .npy array"),
    npz_case("folder", "npz-folder", "is a folder"),
    npz_case("not-found", "nope.npz", "not found"),
    # ---- prune
    prune_case("missing", "nope", "not found"),
    prune_case("unknown-method", "ck", "unknown pruning method", method="nosuch"),
    prune_case("ratio-one", "ck", "prune ratio must be in [0, 1)", ratio="1.0"),
    prune_case("ratio-negative", "ck", "prune ratio must be in [0, 1)", ratio="-0.1"),
    prune_case("ratio-nan", "ck", "--ratio must be a finite", ratio="nan"),
    prune_case("unknown-option", "ck", "unknown option 'bogus'", "--option", "bogus=1", method="ft"),
    prune_case("option-no-value", "ck", "expects KEY=VALUE", "--option", "round_to", method="ft"),
    prune_case("option-round-to-inf", "ck", "round_to must be a positive integer", "--option", "round_to=.inf", method="ft"),
    prune_case("negative-retrain", "ck", "--retrain-epochs", "--retrain-epochs", "-1"),
    prune_case("out-under-file", "ck", "is a file, not a folder", out=f"{W}/a-file/p"),
    prune_case("out-unwritable", "ck", "cannot write", out=UNWRITABLE),
    prune_case("out-is-folder", "ck", "is an existing folder", out=f"{W}/a-folder"),
    prune_case("other-model-sidecar", "other-model", "does not fit model 'resnet20'"),
    prune_case("classes-edited", "classes-edited", "num_classes=12"),
    prune_case("shapes-edited", "shapes-edited", "'shapes' disagree"),
    prune_case("truncated", "truncated", "corrupt or truncated"),
    prune_case("random-bytes", "random", "corrupt or truncated"),
    prune_case("empty-file", "empty", "is empty"),
    prune_case("foreign-safetensors", "foreign", "holds no prunebench metadata"),
    # ---- evaluate
    ("evaluate-missing", ["evaluate", f"{W}/nope.safetensors"], "checkpoint not found"),
    ("evaluate-limit-zero", ["evaluate", f"{W}/ck.safetensors", "--limit", "0"], "--limit must be a positive"),
    ("evaluate-limit-negative", ["evaluate", f"{W}/ck.safetensors", "--limit", "-5"], "--limit must be a positive"),
    ("evaluate-other-channels", ["evaluate", f"{W}/ck.safetensors", "--data", "npz", "--data-root", f"{W}/rgb.npz"],
     "takes 1-channel images but dataset"),
    ("evaluate-unknown-evaluator", ["evaluate", f"{W}/ck.safetensors", "--suite", "nosuch", "--limit", "50"],
     "unknown evaluator"),
    ("evaluate-unknown-data", ["evaluate", f"{W}/ck.safetensors", "--data", "cifar11"], "unknown dataset"),
    ("evaluate-out-is-folder", ["evaluate", f"{W}/ck.safetensors", "--out", f"{W}/a-folder"], "is an existing folder"),
    ("evaluate-out-under-file", ["evaluate", f"{W}/ck.safetensors", "--out", f"{W}/a-file/e.json"],
     "is a file, not a folder"),
    ("evaluate-out-unwritable", ["evaluate", f"{W}/ck.safetensors", "--out", UNWRITABLE], "cannot write"),
    ("evaluate-shapes-edited", ["evaluate", f"{W}/shapes-edited.safetensors"], "'shapes' disagree"),
    ("evaluate-other-model-sidecar", ["evaluate", f"{W}/other-model.safetensors"], "does not fit model"),
    # ---- check
    ("check-missing-parent", ["check", f"{W}/ck.safetensors", "--parent", f"{W}/nope.safetensors"], "not found"),
    ("check-other-model-sidecar", ["check", f"{W}/other-model.safetensors", "--parent", f"{W}/ck.safetensors"],
     "does not fit model 'resnet20'"),
    ("check-bad-delta", ["check", f"{W}/ck.safetensors", "--parent", f"{W}/ck.safetensors", "--delta", "2"], "--delta"),
    ("check-empty-suite", ["check", f"{W}/ck.safetensors", "--parent", f"{W}/ck.safetensors", "--suite", ","],
     "--suite is empty"),
    ("check-limit-zero", ["check", f"{W}/ck.safetensors", "--parent", f"{W}/ck.safetensors", "--limit", "0"], "--limit"),
    # ---- run
    ("run-config-missing", ["run", f"{W}/nope.yaml"], "config file not found"),
    ("run-binary-yaml", ["run", f"{W}/binary.yaml"], "not a text file"),
    ("run-yaml-syntax", ["run", f"{W}/syntax.yaml"], "not valid YAML"),
    ("run-yaml-python-tag", ["run", f"{W}/tag.yaml"], "not valid YAML"),
    ("run-yaml-list", ["run", f"{W}/list.yaml"], "a study config is a YAML mapping"),
    ("run-inf-lr", ["run", f"{W}/inf-lr.yaml", "--out", "r"], "train.lr: inf is not a finite number"),
    ("run-nan-delta", ["run", f"{W}/nan-delta.yaml", "--out", "r"], "delta"),
    ("run-inf-width", ["run", f"{W}/width-inf.yaml", "--out", "r"], "model.width: inf is not a finite number"),
    ("run-unknown-model-kwargs", ["run", f"{W}/kwargs.yaml", "--out", "r"], "depthh"),
    ("run-unknown-key", ["run", f"{W}/unknown-key.yaml", "--out", "r"], "unknown key 'epochz'"),
    ("run-negative-ratio", ["run", f"{W}/neg-ratio.yaml", "--out", "r"], "outside [0, 1)"),
    ("run-sparse-unknown-scheme", ["run", f"{W}/sparse-unknown-scheme.yaml", "--out", "r"],
     "sparse.runs[0].scheme: unknown density scheme 'erkk' (did you mean 'erk'?); choose one of: er, erk"),
    ("run-sparse-unknown-criterion", ["run", f"{W}/sparse-unknown-criterion.yaml", "--out", "r"],
     "sparse.runs[0].criterion: unknown sparse criterion 'snipp'"),
    ("run-sparse-unknown-update", ["run", f"{W}/sparse-unknown-update.yaml", "--out", "r"],
     "sparse.runs[0].update: unknown sparse update rule 'rigll' (did you mean 'rigl'?)"),
    ("run-sparse-bad-run", ["run", f"{W}/sparse-bad-run.yaml", "--out", "r"], "is not <criterion>/<scheme>"),
    ("run-sparse-bad-update-option", ["run", f"{W}/sparse-bad-update-option.yaml", "--out", "r"],
     "sparse.runs[0].update: sparse update rule 'rigl': option fraction=2"),
    ("run-sparse-zero-sparsity", ["run", f"{W}/sparse-zero-sparsity.yaml", "--out", "r"], "must be > 0"),
    ("run-sparse-full-sparsity", ["run", f"{W}/sparse-full-sparsity.yaml", "--out", "r"], "outside [0, 1)"),
    ("run-sparse-infeasible", ["run", f"{W}/sparse-infeasible.yaml", "--out", "r"], "is infeasible"),
    ("run-sparse-depth-lenet", ["run", f"{W}/sparse-depth-lenet.yaml", "--out", "r"],
     "sparse.depths: model family 'lenet' (lenet5) has no depth variants"),
    ("run-sparse-dup-width", ["run", f"{W}/sparse-dup-width.yaml", "--out", "r"], "repeat a value"),
    ("run-sparse-with-methods", ["run", f"{W}/sparse-with-methods.yaml", "--out", "r"], "remove methods"),
    ("run-sparse-no-section", ["run", f"{W}/sparse-no-section.yaml", "--out", "r"], "needs a sparse section"),
    ("run-sparse-exact-magnitude", ["run", f"{W}/sparse-exact-magnitude.yaml", "--out", "r"], "random criterion only"),
    ("run-other-study", ["run", f"{W}/other.yaml", "--out", f"{W}/run"], "holds another study (name 'smoke' -> 'other')"),
    ("run-other-model", ["run", f"{W}/other-model.yaml", "--out", f"{W}/run"], "model.name 'lenet5' -> 'vgg11_bn'"),
    ("run-locked", ["run", "smoke", "--out", f"{W}/run"], "is in use by another run (pid"),
    ("run-zero-workers", ["run", "smoke", "--out", "r", "--workers", "0"], "--workers must be at least 1"),
    ("run-out-is-file", ["run", "smoke", "--out", f"{W}/a-file"], "exists and is not a directory"),
    ("run-out-under-file", ["run", "smoke", "--out", f"{W}/a-file/run"], "is a file, not a folder"),
    ("run-out-unwritable", ["run", "smoke", "--out", UNWRITABLE], "cannot write"),
    ("run-out-not-a-run", ["run", "smoke", "--out", f"{W}/not-a-run"], "not empty and not a prunebench run directory"),
    ("run-damaged-store", ["run", "smoke", "--out", f"{W}/damaged-run"], "not a prunebench results store"),
    ("run-bad-device", ["run", "smoke", "--out", "r", "--device", "tpu7"], "unknown device"),
    # ---- report
    ("report-missing", ["report", f"{W}/nope"], "not a prunebench run directory"),
    ("report-not-a-run", ["report", f"{W}/not-a-run"], "not a prunebench run directory"),
    ("report-bad-delta", ["report", f"{W}/run", "--delta", "2"], "--delta must be in [0, 1)"),
    ("report-zero-bootstrap", ["report", f"{W}/run", "--bootstrap", "0"], "--bootstrap"),
    ("train-imagefolder-empty-class", ["train", "--model", "lenet5", "--data", "image-folder", "--data-root",
                                       f"{W}/imgs-empty-class"], "imgs-empty-class/c holds no images"),
    ("train-imagefolder-mixed-sizes", ["train", "--model", "lenet5", "--data", "image-folder", "--data-root",
                                       f"{W}/imgs-mixed"], "declare a size in the dataset options"),
    ("train-imagefolder-no-images", ["train", "--model", "lenet5", "--data", "image-folder", "--data-root",
                                     f"{W}/imgs-none"], "holds no class folders with images"),
    ("train-imagefolder-bad-size", ["train", "--model", "lenet5", "--data", "image-folder", "--data-root",
                                    f"{W}/imgs-mixed", "--data-option", "size=2"], "size"),
    ("train-data-option-no-value", ["train", "--model", "lenet5", "--data", "image-folder", "--data-option", "size"],
     "--data-option expects KEY=VALUE"),
    # ---- export
    ("export-unknown-format", ["export", f"{W}/ck.safetensors", "--format", "onxx", "--out", "m.onnx"],
     "unknown export format 'onxx'"),
    ("export-wrong-suffix", ["export", f"{W}/ck.safetensors", "--format", "onnx", "--out", "m.pt"], "should end in .onnx"),
    ("export-csr-of-dense", ["export", f"{W}/ck.safetensors", "--format", "csr", "--out", "m.safetensors"],
     "the checkpoint is dense"),
    ("export-latency-not-onnx", ["export", f"{W}/ck.safetensors", "--format", "torchscript", "--out", "m.pt",
                                 "--latency"], "use it with --format onnx"),
    ("export-out-unwritable", ["export", f"{W}/ck.safetensors", "--format", "onnx", "--out", f"{UNWRITABLE}.onnx"],
     "cannot write"),
    ("export-out-is-folder", ["export", f"{W}/ck.safetensors", "--format", "onnx", "--out", f"{W}/a-folder"],
     "is an existing folder"),
    ("export-truncated", ["export", f"{W}/truncated.safetensors", "--format", "onnx", "--out", "m.onnx"], "unreadable"),
    ("report-damaged-store", ["report", f"{W}/damaged-run"], "not a prunebench results store"),
    # ---- corrupt
    ("corrupt-zero-images", ["corrupt", "--out", "g.png", "--images", "0"], "--images must be between 1 and"),
    ("corrupt-huge-images", ["corrupt", "--out", "g.png", "--images", "100000"], "--images must be between 1 and"),
    ("corrupt-not-png", ["corrupt", "--out", "g.jpg"], "must name a .png"),
    ("corrupt-out-under-file", ["corrupt", "--out", f"{W}/a-file/g.png"], "is a file, not a folder"),
    ("corrupt-out-unwritable", ["corrupt", "--out", f"{UNWRITABLE}.png"], "cannot write"),
    ("corrupt-out-is-folder", ["corrupt", "--out", f"{W}/grid.png"], "is an existing folder"),
    ("corrupt-unknown-data", ["corrupt", "--dataset", "cifar11", "--out", "g.png"], "unknown dataset"),
]


@pytest.mark.parametrize("name, argv, needle", CASES, ids=[c[0] for c in CASES])
def test_bad_input_one_line_exit_2_nothing_written(world: Path, tmp_path: Path, monkeypatch, capsys,
                                                   name: str, argv: list[str], needle: str) -> None:
    from prunebench.study.lock import RunLock

    argv = [a.replace(W, str(world)) for a in argv]
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    lock = RunLock(world / "run").acquire() if name == "run-locked" else None
    try:
        before = snapshot(world)
        capsys.readouterr()
        rc = main(argv)
        out, err = capsys.readouterr()
        after = snapshot(world)
    finally:
        if lock is not None:
            lock.release()
    lines = err.strip().splitlines()
    assert rc == 2, (rc, err)
    assert len(lines) == 1 and needle in lines[0], err
    assert lines[0].startswith("prunebench: error: ") and "Traceback" not in err + out
    assert "allow_pickle" not in err and "unsafe" not in err  # never the hint
    assert after == before, sorted(set(after) ^ set(before)) or [k for k in after if after[k] != before[k]]
    assert list(cwd.iterdir()) == []  # nothing written in the working directory either
    assert not Path(UNWRITABLE).parent.exists()


def test_catalogue_is_large_enough() -> None:
    assert len(CASES) >= 60 and len({c[0] for c in CASES}) == len(CASES)
