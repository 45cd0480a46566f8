"""Executors: where cells run. ``LocalExecutor`` runs them in this process (``workers=1``) or in N worker
processes (``concurrent.futures.ProcessPoolExecutor``, spawn start method: forking a process that has
already started torch's thread pools can deadlock).

The protocol is small so another backend can replace it (``RayExecutor`` in ``ray_executor.py`` does):
``capacity`` (how many cells may be in flight), ``submit(cell)``, ``wait() -> [outcome, ...]`` (blocks until at
least one in-flight cell finished), ``close()``. Dependencies are the scheduler's business (``prunebench.study.runner``):
it only submits cells whose inputs are done.

Worker processes die with the driver, however it dies: each worker asks the kernel for SIGKILL when
its parent exits (``PR_SET_PDEATHSIG``, Linux) and, everywhere, a watcher thread kills the worker
once its parent is gone (its parent pid changes). ``env`` is the numerical environment cells run in
(``prunebench.study.numenv``); every outcome carries the one it was computed in.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait as wait_futures
from typing import Any, Protocol

from prunebench.errors import UserError
from prunebench.study.cells import run_cell
from prunebench.study.plan import Cell


class Executor(Protocol):
    capacity: int

    def submit(self, cell: Cell) -> None: ...

    def wait(self) -> list[dict[str, Any]]: ...

    def close(self, cancel: bool = False) -> None: ...


class LocalExecutor:
    """Sequential in-process execution, or ``workers`` processes with ``threads // workers`` intra-op threads
    each (``threads``: the driver's torch thread count)."""

    def __init__(self, run_dir: str, device: str, workers: int = 1, progress: bool = True) -> None:
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self.run_dir, self.device, self.workers = str(run_dir), str(device), workers
        self.progress = progress and workers == 1  # nested per-process bars would garble the terminal
        self.capacity = workers
        # the driver's intra-op thread budget (torch's default: the cores; OMP_NUM_THREADS if set) split evenly
        self.threads = max(1, _driver_threads() // workers) if workers > 1 else None
        self._queue: list[Cell] = []
        self._futures: dict[Future, str] = {}
        self._pool: ProcessPoolExecutor | None = None
        if self.threads is not None:  # workers > 1
            self._pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_init_worker, initargs=(self.threads, os.getpid()))

    @property
    def env(self) -> dict[str, Any]:
        """The numerical environment the cells of this executor run in."""
        from prunebench.study.numenv import numerical_env

        return numerical_env(self.device, self.threads)

    def submit(self, cell: Cell) -> None:
        if self._pool is None:
            self._queue.append(cell)
        else:
            fut = self._pool.submit(run_cell_with_env, cell.to_json(), self.run_dir, self.device, False)
            self._futures[fut] = cell.key

    def wait(self) -> list[dict[str, Any]]:
        if self._pool is None:
            if not self._queue:
                return []
            cell = self._queue.pop(0)
            return [run_cell_with_env(cell.to_json(), self.run_dir, self.device, self.progress)]
        if not self._futures:
            return []
        done, _ = wait_futures(list(self._futures), return_when=FIRST_COMPLETED)
        out = []
        for fut in done:
            key = self._futures.pop(fut)
            try:
                out.append(fut.result())
            except Exception as e:  # noqa: BLE001  (the worker process died: e.g. killed for memory)
                out.append({"key": key, "status": "failed", "error": f"{type(e).__name__}: worker process failed ({e})",
                            "seconds": None})
        return out

    def close(self, cancel: bool = False) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=cancel)
            self._pool = None


def make_executor(kind: str, run_dir: str, device: str, *, workers: int = 1, progress: bool = True,
                  ray_address: str | None = None) -> Executor:
    """The executor named ``kind``: "local" (``workers`` processes) or "ray" (``workers`` caps the
    cells in flight; 0 or 1 = as many as the cluster's CPUs allow)."""
    if kind == "local":
        return LocalExecutor(run_dir, device, workers=workers, progress=progress)
    if kind == "ray":
        from prunebench.study.ray_executor import RayExecutor

        return RayExecutor(run_dir, device, address=ray_address, capacity=workers if workers > 1 else None)
    raise UserError(f"unknown executor {kind!r}; choose local or ray")


def _driver_threads() -> int:
    import torch

    return min(torch.get_num_threads(), os.cpu_count() or 1)


def run_cell_with_env(cell: dict[str, Any], run_dir: str, device: str, progress: bool = False) -> dict[str, Any]:
    """:func:`run_cell`, its outcome tagged with the numerical environment it ran in (``env``)."""
    from prunebench.study.numenv import numerical_env

    out = run_cell(cell, run_dir, device, progress)
    out["env"] = numerical_env(device)
    return out


def _init_worker(threads: int, parent: int) -> None:
    import torch

    torch.set_num_threads(threads)
    die_with_parent(parent)


def die_with_parent(parent: int, poll_s: float = 0.5) -> None:
    """Make this process die when process ``parent`` (its parent) exits, also by SIGKILL."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG = 1
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the parent died before the request above took effect
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="prunebench-parent-watch", daemon=True).start()
