"""Wall and CPU time of every evaluator, at its defaults, on one LeNet-5 over the full Fashion-MNIST test set.

    PRUNEBENCH_DATA=../shared/data .venv/bin/python benchmarks/bench_eval_suite.py --epochs 3

Trains a parent and an independently seeded baseline (``--epochs`` each), prunes a copy of the
parent to 50% with ``wt`` (no retraining: the timing does not depend on accuracy), then runs each
evaluator once with parent and baseline given. Corruptions build all 19 x 5 corrupted test sets
into a fresh cache (the first model of a study pays this; later models read the cache).
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path

import torch

from prunebench.data import load_dataset
from prunebench.evaluation import EVALUATORS, run_evaluator
from prunebench.evaluation.base import EvalContext
from prunebench.models import create_model
from prunebench.pruning import prune
from prunebench.training import TrainConfig, train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--evaluators", nargs="*", default=None, help="default: all registered")
    args = ap.parse_args()
    data = load_dataset("fashion-mnist")
    nets = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        m = create_model("lenet5", in_channels=1, num_classes=10, image_size=28)
        train(m, data, TrainConfig(epochs=args.epochs, seed=seed), progress=False)
        nets.append(m.eval())
    parent, baseline = nets
    model = create_model("lenet5", in_channels=1, num_classes=10, image_size=28)
    model.load_state_dict(parent.state_dict())
    prune(model, "wt", 0.5)
    model.eval()
    names = args.evaluators or EVALUATORS.names()
    print(f"threads {torch.get_num_threads()}, load {os.getloadavg()[0]:.2f}")
    print(f"{'evaluator':24s} {'wall s':>8s} {'CPU s':>8s} {'metrics':>8s}")
    with tempfile.TemporaryDirectory() as cache:
        ctx = EvalContext(data, parent=parent, baseline=baseline, cache_dir=Path(cache))
        for name in names:
            t, c = time.perf_counter(), time.process_time()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                metrics = run_evaluator(name, model, ctx)
            print(f"{name:24s} {time.perf_counter() - t:8.1f} {time.process_time() - c:8.1f} {len(metrics):8d}", flush=True)
    print(f"load at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
