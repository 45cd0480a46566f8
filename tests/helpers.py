"""Helpers shared by test modules (pytest puts this folder on sys.path)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

import prunebench

SMOKE: dict[str, Any] = yaml.safe_load((Path(prunebench.__file__).parent / "configs" / "smoke.yaml").read_text())


def strip(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Study rows in a fixed order (by model key), for comparing two runs."""
    return sorted(rows, key=lambda r: r["model_key"])


def randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm non-trivial statistics and affine parameters, so a channel that is
    removed or zeroed shows up in the outputs unless it is handled exactly."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(torch.rand(c, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
                m.weight.copy_(torch.rand(c, generator=g) + 0.5)
                m.bias.copy_(torch.rand(c, generator=g) - 0.5)
    return model


def check_parent(out: Path) -> tuple[nn.Module, Any, dict[str, Any], Path]:
    """The parent of the ``prunebench check`` tests, trained on real Fashion-MNIST: lenet5, one epoch on 2000
    training images (seed 0), validation cut to 500 images, test to 500; saved as ``out/parent``.
    Returns (model, dataset, checkpoint meta, checkpoint path)."""
    from prunebench.data import load_dataset
    from prunebench.data.base import Dataset
    from prunebench.models import create_model
    from prunebench.store import save_checkpoint
    from prunebench.training import TrainConfig, train

    data = load_dataset("fashion-mnist", train_limit=2000, test_limit=500)
    data = Dataset(data.info, data.train, data.val.subset(slice(0, 500)), data.test)
    kwargs = {"in_channels": 1, "num_classes": 10, "image_size": 28}
    torch.manual_seed(0)
    model = create_model("lenet5", **kwargs)
    train(model, data, TrainConfig(epochs=1, batch_size=64, lr=0.05), progress=False)
    meta = {"model": "lenet5", "model_kwargs": kwargs, "dataset": "fashion-mnist"}
    return model, data, meta, save_checkpoint(out / "parent", model, meta)


def nested_outcomes(rows, n: int = 10_000) -> dict:
    """Per-example outcomes consistent with every ``<ev>/acc/<dist>`` of the rows: a model with accuracy a gets
    the first round(a n) examples right. Nested sets: two models disagree on exactly |a1 - a2| n examples,
    so paired intervals are as tight as n allows."""
    import numpy as np

    out: dict = {}
    for r in rows:
        for k, v in r.items():
            parts = k.split("/", 2)
            if len(parts) == 3 and parts[1] == "acc" and v is not None:
                correct = np.zeros(n, bool)
                correct[: int(round(float(v) * n))] = True
                out.setdefault(r["model_key"], {})[f"correct/{parts[2]}"] = correct
    return out


def devices() -> list[str]:
    """Devices for device-parametrized tests: cpu, plus cuda when present; PRUNEBENCH_TEST_DEVICES=cpu,cuda
    overrides (scripts/gpu_check.sh)."""
    import os

    env = os.environ.get("PRUNEBENCH_TEST_DEVICES")
    if env:
        return sorted({"cpu", *(d.strip() for d in env.split(",") if d.strip())})
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
