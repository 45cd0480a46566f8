"""Checkpoints (safetensors + JSON), config hashing with defaults left out, the SQLite store."""
from __future__ import annotations

import json
import multiprocessing as mp
from pathlib import Path

import pytest
import torch

from prunebench.errors import UserError
from prunebench.models import create_model
from prunebench.store import ResultStore, config_hash, load_checkpoint, read_meta, save_checkpoint

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
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.json", "ck.safetensors"]  # no temp files left


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
    (tmp_path / "ck.json").write_text("{not json")
    with pytest.raises(UserError, match="unreadable"):
        read_meta(tmp_path / "ck")
    (tmp_path / "ck.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(UserError, match="not a prunebench checkpoint"):
        read_meta(tmp_path / "ck")


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
