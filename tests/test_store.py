"""Checkpoints (one safetensors file, metadata in its header; the legacy .json sidecar still read), config
hashing with defaults left out, the SQLite store (WAL respected, interrupted creation repaired, busy != not a store)."""
from __future__ import annotations

import json
import multiprocessing as mp
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from prunebench.errors import UserError
from prunebench.models import create_model
from prunebench.store import ResultStore, config_hash, load_checkpoint, read_meta, save_checkpoint
from prunebench.store.checkpoint import META_KEY
from prunebench.store.resultstore import inspect_store

from helpers import devices

KW = {"in_channels": 1, "num_classes": 10, "image_size": 28}


def test_checkpoint_round_trip_with_masks(tmp_path: Path) -> None:
    model = create_model("resnet20", **KW)
    model(torch.randn(4, 1, 28, 28))  # move BN running stats off their defaults
    name, param = next((n, p) for n, p in model.named_parameters() if p.ndim == 4)
    mask = torch.rand_like(param) > 0.5
    save_checkpoint(tmp_path / "ck", model, {"model": "resnet20", "model_kwargs": KW, "metrics": {"acc": 0.5}}, {name: mask})
    ck = load_checkpoint(tmp_path / "ck.safetensors")
    for (k, a), b in zip(model.state_dict().items(), ck.model.state_dict().values()):
        assert torch.equal(a, b), k
    assert torch.equal(ck.masks[name], mask) and ck.meta["metrics"] == {"acc": 0.5}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.safetensors"]  # one file, no temp files left


def test_checkpoint_of_a_shrunk_model_is_rebuilt(tmp_path: Path) -> None:
    """A model whose layers lost channels (structured compression) reloads into the zoo skeleton."""
    model = create_model("lenet5", **KW)
    conv1, conv2 = model[0], model[3]
    keep = torch.arange(4)
    with torch.no_grad():
        conv1.weight = torch.nn.Parameter(conv1.weight[keep].clone())
        conv1.bias = torch.nn.Parameter(conv1.bias[keep].clone())
        conv1.out_channels = 4
        conv2.weight = torch.nn.Parameter(conv2.weight[:, keep].clone())
        conv2.in_channels = 4
    x = torch.randn(3, 1, 28, 28)
    save_checkpoint(tmp_path / "small", model, {"model": "lenet5", "model_kwargs": KW, "compressed": True})
    ck = load_checkpoint(tmp_path / "small")
    assert torch.allclose(ck.model(x), model(x)) and ck.model[0].out_channels == 4


def test_bad_checkpoints_are_user_errors(tmp_path: Path) -> None:
    model = create_model("lenet5", **KW)
    save_checkpoint(tmp_path / "ck", model, {"model": "lenet5", "model_kwargs": KW})
    with pytest.raises(UserError, match="not found"):
        load_checkpoint(tmp_path / "nope.safetensors")
    data = (tmp_path / "ck.safetensors").read_bytes()
    (tmp_path / "ck.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="corrupt or truncated"):
        load_checkpoint(tmp_path / "ck")
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "ck.safetensors"))  # no prunebench metadata, legacy sidecar
    (tmp_path / "ck.json").write_text("{not json")
    with pytest.raises(UserError, match="unreadable"):
        read_meta(tmp_path / "ck")
    (tmp_path / "ck.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(UserError, match="not a prunebench checkpoint"):
        read_meta(tmp_path / "ck")
    (tmp_path / "ck.json").unlink()
    with pytest.raises(UserError, match="holds no prunebench metadata"):
        read_meta(tmp_path / "ck")


def _legacy_pair(path: Path, model, meta: dict, masks: dict | None = None) -> None:
    """A checkpoint in the old two-file layout (tensors + JSON sidecar), as prunebench 0.x wrote it."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    for name, m in (masks or {}).items():
        tensors["mask/" + name] = m.to(torch.uint8)
    shapes = {k: list(v.shape) for k, v in tensors.items() if not k.startswith("mask/")}
    save_file(tensors, str(path.with_suffix(".safetensors")))
    path.with_suffix(".json").write_text(json.dumps({"format": "prunebench-checkpoint", "version": 1, **meta,
                                                     "has_masks": bool(masks), "shapes": shapes}))


def test_legacy_two_file_checkpoint_still_loads_and_is_rewritten_as_one(tmp_path: Path) -> None:
    model = create_model("lenet5", **KW)
    name = "0.weight"
    mask = torch.rand_like(model.state_dict()[name]) > 0.3
    _legacy_pair(tmp_path / "old.safetensors", model, {"model": "lenet5", "model_kwargs": KW, "tag": "old"}, {name: mask})
    ck = load_checkpoint(tmp_path / "old.safetensors")
    assert ck.meta["tag"] == "old" and torch.equal(ck.masks[name], mask)
    save_checkpoint(tmp_path / "old", ck.model, {**ck.meta, "tag": "new"}, ck.masks)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.safetensors"]  # the sidecar is gone
    assert read_meta(tmp_path / "old")["tag"] == "new"


def test_checkpoint_is_replaced_by_one_rename(tmp_path: Path) -> None:
    """Tensors and metadata live in one file: a stale sidecar (what a kill between two renames used to
    leave) cannot pair new tensors with old metadata; the embedded metadata wins."""
    from safetensors import safe_open

    model = create_model("lenet5", **KW)
    path = save_checkpoint(tmp_path / "ck", model, {"model": "lenet5", "model_kwargs": KW, "method": "wt", "ratio": 0.9})
    with safe_open(str(path), framework="pt") as f:
        assert json.loads(f.metadata()[META_KEY])["ratio"] == 0.9
    (tmp_path / "ck.json").write_text(json.dumps({"format": "prunebench-checkpoint", "version": 1, "model": "lenet5",
                                                  "model_kwargs": KW, "ratio": 0.5}))
    assert read_meta(path)["ratio"] == 0.9
    # the bytes depend on the content only (no wall-clock timings), so a re-run reproduces them
    again = tmp_path / "again"
    hist = [{"epoch": 1, "val_acc": 0.5, "seconds": 1.23, "images_per_s": 99.0}]
    a = save_checkpoint(again, model, {"model": "lenet5", "model_kwargs": KW, "history": hist}).read_bytes()
    hist[0]["seconds"] = 7.0
    b = save_checkpoint(again, model, {"model": "lenet5", "model_kwargs": KW, "history": hist}).read_bytes()
    assert a == b


@pytest.mark.parametrize("edit, needle", [
    (lambda m: m["shapes"].update({"0.weight": [7, 1, 5, 5]}), "'shapes' disagree"),
    (lambda m: m["shapes"].pop("0.weight"), "'shapes' disagree"),
    (lambda m: m["model_kwargs"].update(num_classes=11), "num_classes"),
    (lambda m: m["model_kwargs"].update(in_channels=3), "in_channels"),
    (lambda m: m.update(model="resnet20"), "does not fit model 'resnet20'"),
    (lambda m: m["model_kwargs"].update(depth=3), "unexpected keyword argument"),
])
def test_edited_metadata_is_cross_checked_against_the_tensors(tmp_path: Path, edit, needle) -> None:
    model = create_model("lenet5", **KW)
    _legacy_pair(tmp_path / "ck.safetensors", model, {"model": "lenet5", "model_kwargs": dict(KW)})
    meta = json.loads((tmp_path / "ck.json").read_text())
    edit(meta)
    (tmp_path / "ck.json").write_text(json.dumps(meta))
    with pytest.raises(UserError, match=needle):
        load_checkpoint(tmp_path / "ck.safetensors")


def test_hash_leaves_defaults_out() -> None:
    defaults = {"lr": 0.1, "epochs": 10, "opt": {"momentum": 0.9, "nesterov": True}}
    base = {"lr": 0.2, "epochs": 10}
    h = config_hash(base, defaults)
    assert h == config_hash({"lr": 0.2}, defaults)  # an option at its default is invisible
    assert h == config_hash({"lr": 0.2, "opt": {"momentum": 0.9}}, defaults)
    assert h == config_hash({"epochs": 10, "lr": 0.2}, defaults)  # key order is irrelevant
    assert h != config_hash({"lr": 0.2, "opt": {"momentum": 0.5}}, defaults)
    assert h != config_hash({"lr": 0.3}, defaults) and len(h) == 16
    assert config_hash({"m": (1, 2)}) == config_hash({"m": [1, 2]})


def _writer(path: str, start: int) -> None:
    with ResultStore(path) as store:
        for i in range(start, start + 20):
            store.put(f"k{i}", "eval", {"i": i}, {"acc": i / 100})


def test_store_idempotent_and_concurrent(tmp_path: Path) -> None:
    path = tmp_path / "results.sqlite"
    with ResultStore(path) as store:
        store.put("a", "train", {"lr": 0.1}, {"acc": 0.9}, seconds=1.5)
        store.put("a", "train", {"lr": 0.1}, {"acc": 0.9}, seconds=1.5)
        assert len(store) == 1 and store.has("a") and not store.has("b")
        rec = store.get("a")
        assert rec.metrics == {"acc": 0.9} and rec.config == {"lr": 0.1} and rec.status == "done"
        store.put("b", "train", {}, {"error": "diverged"}, status="failed")
        assert not store.has("b") and store.has("b", status="failed")
    procs = [mp.get_context("spawn").Process(target=_writer, args=(str(path), s)) for s in (0, 100)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    with ResultStore(path) as store:
        assert len(store.records("eval")) == 40 and store.get("k105").metrics == {"acc": 1.05}


def test_store_rejects_non_database(tmp_path: Path) -> None:
    bad = tmp_path / "results.sqlite"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(UserError, match="not a prunebench results store"):
        ResultStore(bad)
    assert bad.read_bytes() == b"this is not sqlite" * 100  # nothing overwritten


def test_store_left_in_the_wal_by_a_killed_writer_opens(tmp_path: Path) -> None:
    """The bug of issue #11: a writer SIGKILLed after creating the store leaves the schema in the WAL;
    reading must not ignore it (immutable=1 did)."""
    path = tmp_path / "results.sqlite"
    code = ("import os, signal, sys; from prunebench.store import ResultStore; s = ResultStore(sys.argv[1]); "
            "s.put('a', 'train', {}, {'acc': 1.0}); os.kill(os.getpid(), signal.SIGKILL)")
    subprocess.run([sys.executable, "-c", code, str(path)], timeout=120)
    assert path.with_name("results.sqlite-wal").stat().st_size > 0  # the data is still in the WAL
    assert inspect_store(path) == 1
    with ResultStore(path, readonly=True) as store:
        assert store.get("a").metrics == {"acc": 1.0}
    with ResultStore(path) as store:
        assert len(store) == 1


@pytest.mark.parametrize("setup", ["empty-file", "results-only", "meta-empty"])
def test_interrupted_store_creation_is_repaired(tmp_path: Path, setup: str) -> None:
    path = tmp_path / "results.sqlite"
    if setup == "empty-file":
        path.write_bytes(b"")
    else:
        con = sqlite3.connect(path)
        con.execute("CREATE TABLE results (key TEXT PRIMARY KEY, kind TEXT NOT NULL, status TEXT NOT NULL, "
                    "config TEXT NOT NULL, metrics TEXT NOT NULL, seconds REAL, created REAL NOT NULL)")
        if setup == "meta-empty":
            con.execute("CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
        con.commit()
        con.close()
    assert inspect_store(path) is None  # recognised as an interrupted creation (no finished cell)
    with ResultStore(path) as store:
        store.put("a", "train", {}, {})
    assert inspect_store(path) == 1


def test_store_with_results_but_no_schema_is_not_ours(tmp_path: Path) -> None:
    path = tmp_path / "results.sqlite"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE other (x)")
    con.commit()
    con.close()
    with pytest.raises(UserError, match="not a prunebench results store"):
        ResultStore(path)


def test_busy_store_is_reported_as_busy(tmp_path: Path) -> None:
    path = tmp_path / "results.sqlite"
    ResultStore(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA journal_mode=DELETE")  # a rollback journal: an exclusive lock blocks readers too
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(UserError, match="is busy"):
            ResultStore(path, timeout=0.2)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    with ResultStore(path, readonly=True) as store:  # and readable again once released
        assert len(store) == 0


@pytest.mark.parametrize("device", devices())
def test_checkpoint_round_trip_on_device(tmp_path: Path, device: str) -> None:
    """A model (with masks) saved from ``device`` loads on ``device`` and on the CPU with the same outputs."""
    torch.manual_seed(0)
    model = create_model("lenet5", **KW).to(device)
    name, param = next((n, p) for n, p in model.named_parameters() if p.ndim == 2)
    mask = torch.rand_like(param) > 0.5
    with torch.no_grad():
        param.mul_(mask)
    path = save_checkpoint(tmp_path / "ck", model, {"model": "lenet5", "model_kwargs": KW}, {name: mask})
    x = torch.randn(8, 1, 28, 28)
    want = model(x.to(device)).cpu()
    for target in {device, "cpu"}:
        ck = load_checkpoint(path, target)
        assert next(ck.model.parameters()).device.type == torch.device(target).type
        assert torch.allclose(ck.model(x.to(target)).cpu(), want, atol=1e-5)
        assert ck.pruning_state() is not None and torch.equal(ck.masks[name].cpu(), mask.cpu())
