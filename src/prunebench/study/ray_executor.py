"""``RayExecutor``: cells as Ray tasks, so one study spreads over a cluster (``prunebench run --executor ray``).

Ray schedules and retries nothing on its own here: the study's scheduler (``prunebench.study.runner``)
submits only cells whose inputs are done and records every outcome in the run's SQLite store, which
stays with the driver (SQLite must not live on a network file system). Workers read and write
checkpoints under the run directory, so on a multi-machine cluster that directory must be on storage
every node mounts at the same path (on one machine, or a loopback cluster, any path works).

Each task reserves ``cpus_per_cell`` CPUs (and one GPU when the device is CUDA) and sets torch's thread
count to its CPU share, as the process executor does. ``ray`` is an optional dependency: ``pip install
'prunebench[ray]'``.
"""
from __future__ import annotations

import logging
from typing import Any

from prunebench.errors import UserError
from prunebench.study.cells import run_cell
from prunebench.study.plan import Cell


def _task(cell: dict[str, Any], run_dir: str, device: str, threads: int) -> dict[str, Any]:
    import torch

    from prunebench.study.numenv import numerical_env

    torch.set_num_threads(max(1, threads))
    out = run_cell(cell, run_dir, device, False)
    out["env"] = numerical_env(device)
    return out


class RayExecutor:
    """Run cells as Ray tasks on the cluster at ``address`` ("auto": the one ``ray start`` made on this
    machine; None: a fresh local Ray instance for this run). ``capacity``: cells in flight (default:
    as many as the cluster's CPUs allow at ``cpus_per_cell`` each)."""

    def __init__(self, run_dir: str, device: str, *, address: str | None = None, capacity: int | None = None,
                 cpus_per_cell: float = 1.0) -> None:
        try:
            import ray
        except ImportError:
            raise UserError("the ray executor needs Ray: pip install 'prunebench[ray]' (or run without --executor ray)") from None
        if cpus_per_cell <= 0:
            raise UserError(f"cpus per cell must be > 0, got {cpus_per_cell}")
        self._ray = ray
        self._owns = not ray.is_initialized()
        if self._owns and address not in (None, "auto", "local"):
            _check_reachable(address)
        if self._owns:
            try:
                ray.init(address=address, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError) as e:
                msg = " ".join(str(e).split())[:300]
                raise UserError(f"cannot connect to the Ray cluster at {address!r} ({msg}); start one with `ray start "
                                "--head` or pass the right --ray-address") from None
        resources = ray.cluster_resources()
        cpus, gpus = float(resources.get("CPU", 1.0)), float(resources.get("GPU", 0.0))
        # The device is the workers' business: "cuda" reserves one GPU per cell (Ray sets which one,
        # so an index from the driver would be wrong there); "auto" uses GPUs if the cluster has any.
        device = str(device)
        if device == "auto":
            device = "cuda" if gpus >= 1 else "cpu"
        elif device.startswith("cuda"):
            device = "cuda"
        gpus_per_cell = 1.0 if device == "cuda" else 0.0
        if gpus_per_cell and gpus < gpus_per_cell:
            self.close()
            raise UserError(f"device cuda asked for, but the Ray cluster at {address!r} has no GPU; use --device cpu "
                            "or add GPU nodes")
        self.run_dir, self.device = str(run_dir), device
        fit = int(cpus // cpus_per_cell) if not gpus_per_cell else min(int(cpus // cpus_per_cell), int(gpus))
        self.capacity = int(capacity) if capacity else max(1, fit)
        remote = ray.remote(num_cpus=cpus_per_cell, num_gpus=gpus_per_cell, max_retries=0)(_task)
        plugins = _plugins_env()  # workers on other nodes do not inherit the driver's environment
        self._remote = remote.options(runtime_env={"env_vars": plugins}) if plugins else remote
        self._refs: dict[Any, str] = {}
        self._threads = max(1, int(cpus_per_cell))

    def submit(self, cell: Cell) -> None:
        ref = self._remote.remote(cell.to_json(), self.run_dir, self.device, self._threads)
        self._refs[ref] = cell.key

    def wait(self) -> list[dict[str, Any]]:
        if not self._refs:
            return []
        ready, _ = self._ray.wait(list(self._refs), num_returns=1)
        out = []
        for ref in ready:
            key = self._refs.pop(ref)
            try:
                out.append(self._ray.get(ref))
            except Exception as e:  # noqa: BLE001  (the worker died: node lost, killed for memory, ...)
                msg = " ".join(str(e).split())[:300]
                out.append({"key": key, "status": "failed", "error": f"{type(e).__name__}: Ray task failed ({msg})",
                            "seconds": None})
        return out

    def close(self, cancel: bool = False) -> None:
        if cancel:
            for ref in getattr(self, "_refs", {}):
                try:
                    self._ray.cancel(ref, force=True)
                except Exception:  # noqa: BLE001  (already finished or its worker is gone: nothing to cancel)
                    pass
        getattr(self, "_refs", {}).clear()
        if self._owns and self._ray.is_initialized():
            self._ray.shutdown()


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast (Ray itself retries for minutes) when nothing listens at ``host:port``."""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
            return
    except (OSError, ValueError) as e:
        raise UserError(f"cannot connect to the Ray cluster at {address!r} ({e}); start one with `ray start --head` "
                        "or pass the right --ray-address (host:port)") from None


def _plugins_env() -> dict[str, str]:
    """``PRUNEBENCH_PLUGINS`` for the workers, ``.py`` paths made absolute (the modules themselves must be
    importable, and the files readable at the same path, on every node)."""
    import os
    from pathlib import Path

    from prunebench.registry import PLUGINS_ENV

    names = [n.strip() for n in os.environ.get(PLUGINS_ENV, "").split(",") if n.strip()]
    names = [str(Path(n).expanduser().resolve()) if n.endswith(".py") else n for n in names]
    return {PLUGINS_ENV: ",".join(names)} if names else {}
