"""The Ray executor on a real Ray cluster on loopback (``ray start --head`` on 127.0.0.1, 2 CPUs): the
smoke study run as Ray tasks gives exactly the rows of the sequential run, a rerun reuses every cell,
and a wrong address is a one-line UserError with nothing written."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import SMOKE, strip

from prunebench.errors import UserError
from prunebench.study import load_results, run_study

ray = pytest.importorskip("ray", reason="the Ray executor test needs `pip install 'prunebench[ray]'` (scripts/setup.sh --test)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    """A head node on loopback, stopped at the end; its address."""
    ray_cli = str(Path(sys.executable).with_name("ray"))
    port = _free_port()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    subprocess.run([ray_cli, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2",
                    "--num-gpus=0", "--include-dashboard=false", "--disable-usage-stats"],
                   check=True, env=env, capture_output=True, timeout=180)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        if ray.is_initialized():
            ray.shutdown()
        subprocess.run([ray_cli, "stop", "--force"], env=env, capture_output=True, timeout=120)


@pytest.mark.timeout(600)
def test_ray_cluster_runs_the_study_like_the_local_executor(cluster, smoke_run, tmp_path: Path) -> None:
    run = tmp_path / "ray"
    summary = run_study(SMOKE, run, progress=False, executor="ray", ray_address=cluster)
    assert summary.ok, summary.failed
    assert len(summary.executed) == len(smoke_run[1].executed) and not summary.reused
    assert strip(load_results(run)) == strip(smoke_run[2])  # same numbers: same cells, same seeds, 1 thread each
    again = run_study(SMOKE, run, progress=False, executor="ray", ray_address=cluster)
    assert not again.executed and len(again.reused) == len(summary.cells)


def test_unreachable_cluster_is_a_user_error(tmp_path: Path) -> None:
    run = tmp_path / "nowhere"
    with pytest.raises(UserError, match="cannot connect to the Ray cluster"):
        run_study(SMOKE, run, progress=False, executor="ray", ray_address=f"127.0.0.1:{_free_port()}")
    assert not ray.is_initialized() and not run.exists()  # nothing written


def test_cuda_on_a_cluster_without_gpus_is_a_user_error(cluster, tmp_path: Path) -> None:
    run = tmp_path / "gpu"
    with pytest.raises(UserError, match="has no GPU"):
        run_study(SMOKE, run, progress=False, executor="ray", ray_address=cluster, device="cuda")
    assert not ray.is_initialized() and not run.exists()
