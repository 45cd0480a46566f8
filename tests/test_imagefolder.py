"""The image-folder dataset: class folders read with Pillow give the tensors an npz of the same images
gives; the one-folder layout splits per class by seed; resizing, the cache and every bad layout."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from prunebench.cli.main import main
from prunebench.data import load_dataset, load_splits
from prunebench.errors import UserError

CLASSES = ("ankle boot", "bag", "coat")


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PRUNEBENCH_CACHE", str(tmp_path / "cache"))


def _write(root: Path, split: str | None, images: np.ndarray, labels: np.ndarray, suffix: str = ".png") -> None:
    for i, (x, y) in enumerate(zip(images, labels)):
        folder = root / split / CLASSES[y] if split else root / CLASSES[y]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(x if x.ndim == 2 else x.transpose(1, 2, 0)).save(folder / f"{i:04d}{suffix}")


def _arrays(n: int, shape: tuple[int, ...], seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.sort(np.arange(n) % len(CLASSES))  # class-sorted: the order the folder is read in
    return rng.integers(0, 256, (n, *shape), dtype=np.uint8), labels


@pytest.mark.parametrize("shape", [(12, 10), (3, 9, 11)])  # gray H x W, RGB C x H x W
def test_folder_gives_the_tensors_of_the_npz_of_the_same_images(tmp_path, shape):
    xtr, ytr = _arrays(12, shape, 0)
    xte, yte = _arrays(6, shape, 1)
    _write(tmp_path / "img", "train", xtr, ytr)
    _write(tmp_path / "img", "test", xte, yte)
    np.savez(tmp_path / "same.npz", x_train=xtr, y_train=ytr, x_test=xte, y_test=yte, classes=np.array(CLASSES))
    info_f, folder = load_splits("image-folder", tmp_path / "img")
    info_n, npz = load_splits("npz", tmp_path / "same.npz")
    for s in ("train", "test"):
        assert folder[s].x.equal(npz[s].x) and folder[s].y.equal(npz[s].y)
    assert info_f.classes == CLASSES == info_n.classes
    assert (info_f.in_channels, info_f.image_size) == (info_n.in_channels, info_n.image_size)
    assert info_f.mean == pytest.approx(info_n.mean) and info_f.std == pytest.approx(info_n.std)
    data = load_dataset("image-folder", tmp_path / "img", val_fraction=0.25)
    assert len(data.train) + len(data.val) == 12 and len(data.val) == 3 and len(data.test) == 6


def test_one_folder_is_split_per_class_by_seed(tmp_path):
    x, y = _arrays(30, (8, 8), 0)
    _write(tmp_path / "img", None, x, y)
    splits = {seed: load_splits("image-folder", tmp_path / "img", {"split_seed": seed, "test_fraction": 0.3})[1]
              for seed in (0, 1)}
    s0 = splits[0]
    assert np.bincount(s0["test"].y.numpy()).tolist() == [3, 3, 3]  # round(0.3 * 10) of each class
    assert len(s0["train"]) == 21
    rows = {tuple(r) for r in s0["train"].x.flatten(1).tolist()} | {tuple(r) for r in s0["test"].x.flatten(1).tolist()}
    assert len(rows) == 30  # disjoint, and together every image
    again = load_splits("image-folder", tmp_path / "img", {"split_seed": 0, "test_fraction": 0.3})[1]
    assert again["test"].x.equal(s0["test"].x)
    assert not splits[1]["test"].x.equal(s0["test"].x)


def test_declared_size_resizes_mixed_images_and_without_it_they_are_refused(tmp_path):
    x, y = _arrays(6, (8, 8), 0)
    _write(tmp_path / "img", None, x, y)
    Image.fromarray(np.zeros((20, 14), np.uint8)).save(tmp_path / "img" / "bag" / "big.png")
    with pytest.raises(UserError, match="images differ in size .*declare a size in the dataset options, e.g. size: 32"):
        load_splits("image-folder", tmp_path / "img")
    info, splits = load_splits("image-folder", tmp_path / "img", {"size": 16})
    assert info.image_size == (16, 16) and splits["train"].x.shape[1:] == (1, 16, 16)
    info3, splits3 = load_splits("image-folder", tmp_path / "img", {"size": 16, "channels": 3})
    assert info3.in_channels == 3 and splits3["train"].x[:, 0].equal(splits3["train"].x[:, 2])  # gray -> RGB


def test_the_cache_is_used_and_a_changed_image_invalidates_it(tmp_path):
    x, y = _arrays(6, (8, 8), 0)
    _write(tmp_path / "img", None, x, y)
    _, first = load_splits("image-folder", tmp_path / "img")
    cached = list((tmp_path / "cache" / "image-folder").glob("*.safetensors"))
    assert len(cached) == 1
    _, second = load_splits("image-folder", tmp_path / "img")
    assert second["train"].x.equal(first["train"].x)
    target = sorted((tmp_path / "img" / "coat").iterdir())[0]
    Image.fromarray(np.full((8, 8), 7, np.uint8)).save(target)
    _, third = load_splits("image-folder", tmp_path / "img")
    both = np.concatenate([third["train"].x.numpy(), third["test"].x.numpy()])
    assert (both.reshape(len(both), -1) == 7).all(axis=1).any()  # the new pixels, not the cached ones
    assert len(list((tmp_path / "cache" / "image-folder").glob("*.safetensors"))) == 2


def _layout(root: Path, case: str) -> None:
    x, y = _arrays(6, (8, 8), 0)
    if case == "empty-class":
        _write(root, None, x, y)
        (root / "dog").mkdir()
    elif case == "loose":
        root.mkdir()
        Image.fromarray(x[0]).save(root / "a.png")
    elif case == "no-test":
        _write(root, "train", x, y)
    elif case == "test-only-class":
        _write(root, "train", x[y < 2], y[y < 2])
        _write(root, "test", x, y)
    elif case == "corrupt":
        _write(root, None, x, y)
        (root / "bag" / "broken.png").write_bytes(b"not a png")
    elif case == "one-image":
        _write(root, None, x[:4], np.array([0, 0, 1, 2]))


@pytest.mark.parametrize("case,message", [
    ("empty-class", "class folder .*dog holds no images"),
    ("loose", "holds no class folders with images \\(it has 1 loose images"),
    ("no-test", "has train/ but no test/"),
    ("test-only-class", "test has classes with no training images: coat"),
    ("corrupt", "cannot read image .*broken.png"),
    ("one-image", "has 1 image; a train / test split needs at least 2 per class"),
])
def test_bad_layouts_are_one_line_errors(tmp_path, case, message):
    _layout(tmp_path / "img", case)
    with pytest.raises(UserError, match=message):
        load_splits("image-folder", tmp_path / "img")


@pytest.mark.parametrize("options,message", [({"size": 2}, "size"), ({"colour": 3}, "colour"),
                                             ({"channels": 2}, "channels")])
def test_bad_options_name_the_option(tmp_path, options, message):
    x, y = _arrays(6, (8, 8), 0)
    _write(tmp_path / "img", None, x, y)
    with pytest.raises(UserError, match=message):
        load_splits("image-folder", tmp_path / "img", options)


def test_train_then_evaluate_reads_the_options_from_the_checkpoint(tmp_path, capsys):
    x, y = _arrays(60, (10, 10), 0)
    _write(tmp_path / "img", None, x, y, suffix=".jpg")  # JPEG decodes too (lossy, so no tensor comparison)
    Image.fromarray(np.zeros((30, 30), np.uint8)).save(tmp_path / "img" / "bag" / "big.jpg")  # needs size
    ck = tmp_path / "m"
    assert main(["train", "--model", "lenet5", "--data", "image-folder", "--data-root", str(tmp_path / "img"),
                 "--data-option", "size=28", "--epochs", "1", "--batch-size", "16", "--out", str(ck),
                 "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["evaluate", f"{ck}.safetensors", "--out", str(tmp_path / "ev.json")]) == 0  # no --data-option
    assert "test_acc" in capsys.readouterr().out
    assert main(["train", "--model", "lenet5", "--data", "image-folder", "--data-root", str(tmp_path / "img"),
                 "--data-option", "size", "--out", str(tmp_path / "bad")]) == 2
    assert "--data-option expects KEY=VALUE" in capsys.readouterr().err


def test_a_study_config_checks_the_dataset_options(tmp_path):
    from prunebench.study.loader import load_config

    cfg = {"model": "lenet5", "dataset": {"name": "image-folder", "root": str(tmp_path), "options": {"sizee": 28}},
           "ratios": [0.5], "methods": ["wt"]}
    with pytest.raises(UserError, match="dataset.options: .*sizee"):
        load_config(cfg)
    ok = load_config({**cfg, "dataset": {"name": "image-folder", "root": str(tmp_path), "options": {"size": 28}}})
    assert ok.dataset.as_run()["options"] == {"size": 28}
    default = load_config({**cfg, "dataset": {"name": "image-folder", "root": str(tmp_path),
                                              "options": {"test_fraction": 0.2}}})
    assert "options" not in default.dataset.as_run()  # a default spelled out changes no key


def test_a_study_on_an_image_folder_reports_its_data(tmp_path):
    import json

    import prunebench
    from prunebench.report import write_report

    x, y = _arrays(90, (12, 12), 0)
    _write(tmp_path / "img", None, x, y)
    cfg = {"name": "folder", "model": "lenet5", "train": {"epochs": 1, "batch_size": 16, "lr": 0.05},
           "dataset": {"name": "image-folder", "root": str(tmp_path / "img"), "options": {"size": 28},
                       "val_fraction": 0.2},
           "methods": ["wt"], "ratios": [0.5], "device": "cpu"}
    summary = prunebench.run_study(cfg, tmp_path / "run", progress=False)
    assert summary.ok
    data = json.loads((tmp_path / "run" / "data.json").read_text())
    assert (data["train"], data["val"], data["test"]) == (58, 14, 18)  # 18 = 3 x round(0.2 x 30); val from train
    assert data["classes"] == list(CLASSES) and data["image_size"] == [28, 28]
    html, _ = write_report(tmp_path / "run")
    text = html.read_text()
    assert "58 training, 14 validation" in text and "18 test images" in text and "ankle boot, bag, coat" in text
