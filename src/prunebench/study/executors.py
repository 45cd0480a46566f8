"""Executors: where cells run. ``LocalExecutor`` runs them in this process (``workers=1``) or in N worker
processes (``concurrent.futures.ProcessPoolExecutor``, spawn start method: forking a process that has
already started torch's thread pools can deadlock).

The protocol is small so another backend can replace it (``RayExecutor`` in ``ray_executor.py`` does): ``capacity`` (how many cells may
be in flight), ``submit(cell)``, ``wait() -> [outcome, ...]`` (blocks until at least one in-flight
cell finished), ``close()``. Dependencies are the scheduler's business (``prunebench.study.runner``):
it only submits cells whose inputs are done.
"""
from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor
from concurrent.futures import wait as wait_futures
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
    """Sequential in-process execution, or ``workers`` processes with ``cpu_count // workers`` threads each."""

    def __init__(self, run_dir: str, device: str, workers: int = 1, progress: bool = True) -> None:
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self.run_dir, self.device, self.workers = str(run_dir), str(device), workers
        self.progress = progress and workers == 1  # nested per-process bars would garble the terminal
        self.capacity = workers
        self._queue: list[Cell] = []
        self._futures: dict[Future, str] = {}
        self._pool: ProcessPoolExecutor | None = None
        if workers > 1:
            threads = max(1, (os.cpu_count() or 1) // workers)
            self._pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_init_worker, initargs=(threads,))

    def submit(self, cell: Cell) -> None:
        if self._pool is None:
            self._queue.append(cell)
        else:
            fut = self._pool.submit(run_cell, cell.to_json(), self.run_dir, self.device, False)
            self._futures[fut] = cell.key

    def wait(self) -> list[dict[str, Any]]:
        if self._pool is None:
            if not self._queue:
                return []
            cell = self._queue.pop(0)
            return [run_cell(cell.to_json(), self.run_dir, self.device, self.progress)]
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


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
