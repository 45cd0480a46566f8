"""Shared fixtures: real data locations and an isolated prunebench cache per test session."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PRUNEBENCH_SHARED", REPO.parent / "shared"))
MNIST_ROOT = SHARED / "data" / "mnist"


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Validation splits and corrupted sets go to a temporary cache, never the user's."""
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    """One intra-op thread for the whole suite: the test models and batches are tiny, results are
    bit-identical between sequential and multi-process study runs, and OpenMP threads spinning
    against other processes on a busy 2-core machine made some files 5-10x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def fmnist():
    """Fashion-MNIST, real files, small subsets for speed (validation split is the real 6000)."""
    from prunebench.data import load_dataset

    return load_dataset("fashion-mnist", train_limit=6000, test_limit=2000)


@pytest.fixture(scope="session")
def mnist_root() -> Path:
    if not (MNIST_ROOT / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"real MNIST test set not found at {MNIST_ROOT} (set PRUNEBENCH_SHARED)")
    return MNIST_ROOT


@pytest.fixture(scope="session")
def smoke_run(_one_thread, tmp_path_factory: pytest.TempPathFactory):
    """One sequential run of the bundled smoke study, shared: (run_dir, summary, rows)."""
    from helpers import SMOKE

    from prunebench.study import load_results, run_study

    run = tmp_path_factory.mktemp("study") / "smoke"
    summary = run_study(SMOKE, run, progress=False)
    assert summary.ok, summary.failed
    return run, summary, load_results(run)
