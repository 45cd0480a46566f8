"""The numerical environment a cell is computed in: the things that change a result's last digits.

Two runs of one cell agree bit for bit only under the same torch version, device, CPU kernel
capability, intra-op thread count and default dtype. Each cell's record keeps
:func:`numerical_env` under ``metrics["env"]``; a resume compares the recorded environment with
the current one (:func:`env_differences`) and says which cells were computed differently.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

COMPARED = ("torch", "device", "cpu_capability", "threads", "dtype")


def numerical_env(device: str, threads: int | None = None) -> dict[str, Any]:
    """This process's numerical environment for cells on ``device`` (``threads``: default the current
    intra-op thread count)."""
    import torch

    try:
        cap = torch.backends.cpu.get_cpu_capability()
    except (AttributeError, RuntimeError):
        cap = "unknown"
    dev = str(device)
    env: dict[str, Any] = {"torch": torch.__version__, "device": dev, "cpu_capability": cap,
                           "threads": int(threads if threads is not None else torch.get_num_threads()),
                           "dtype": str(torch.get_default_dtype()).removeprefix("torch.")}
    if dev.startswith("cuda") and torch.cuda.is_available():
        idx = torch.device(dev).index or 0
        env["gpu"] = torch.cuda.get_device_name(idx)
        env["cuda"] = torch.version.cuda
    return env


def env_differences(recorded: Mapping[str, Any] | None, current: Mapping[str, Any] | None) -> dict[str, tuple[Any, Any]]:
    """``{field: (recorded, current)}`` for the compared fields that differ; {} when either is unknown
    (records of an older prunebench carry none; the Ray driver does not know its workers')."""
    if not recorded or not current:
        return {}
    fields = COMPARED + (("gpu",) if "gpu" in recorded or "gpu" in current else ())
    return {k: (recorded.get(k), current.get(k)) for k in fields if recorded.get(k) != current.get(k)}


def describe_differences(diff: Mapping[str, tuple[Any, Any]]) -> str:
    return ", ".join(f"{k} {a} -> {b}" for k, (a, b) in diff.items())
