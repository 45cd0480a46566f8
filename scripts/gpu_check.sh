#!/usr/bin/env bash
# One-call GPU check: given a CUDA machine, run the device-parametrized tests, time one training epoch
# and one study cell on CUDA (against the CPU), run the smoke study end to end on CUDA, print a table.
# Sized to finish in under 5 minutes on one GPU (Fashion-MNIST, LeNet-5).
#   bash scripts/gpu_check.sh            # needs CUDA; exits 3 (and says so) without it
#   bash scripts/gpu_check.sh --cpu      # the same steps on the CPU only (a dry run of this script)
# Setup first: PRUNEBENCH_TORCH="torch==X.Y --index-url https://download.pytorch.org/whl/cu12x" bash scripts/setup.sh --test
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
DEVICE=cuda
[[ "${1:-}" == "--cpu" ]] && DEVICE=cpu
if [[ $DEVICE == cuda ]]; then
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
  if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_check: torch.cuda.is_available() is False (torch $("$PY" -c 'import torch; print(torch.__version__)')); install a CUDA build of torch" >&2
    exit 3
  fi
fi
export PRUNEBENCH_TEST_DEVICES=$DEVICE
echo "== device-parametrized tests (PRUNEBENCH_TEST_DEVICES=$DEVICE)"
timeout 150 "$PY" -m pytest -q -k on_device tests/test_store.py tests/test_data.py 2>&1 | tail -5
echo "== timings"
timeout 150 "$PY" - "$DEVICE" <<'PYEOF'
import sys, tempfile, time
from pathlib import Path

import torch
import yaml

import prunebench
from prunebench.data import load_dataset
from prunebench.models import create_model
from prunebench.store import load_checkpoint, save_checkpoint
from prunebench.study.cells import run_cell
from prunebench.study.loader import load_config
from prunebench.study.numenv import numerical_env
from prunebench.study.plan import plan
from prunebench.study.runner import run_study
from prunebench.training import TrainConfig, evaluate_split, train

dev = sys.argv[1]
devices = ["cpu", dev] if dev != "cpu" else ["cpu"]
data = load_dataset("fashion-mnist")
rows = []
for d in devices:
    torch.manual_seed(0)
    model = create_model("lenet5", in_channels=1, num_classes=10, image_size=28)
    t0 = time.perf_counter()
    res = train(model, data, TrainConfig(epochs=1, batch_size=128), device=torch.device(d), progress=False)
    if d.startswith("cuda"):
        torch.cuda.synchronize()
    epoch_s = time.perf_counter() - t0
    acc = evaluate_split(model, data.test, data.info, torch.device(d))["acc"]
    with tempfile.TemporaryDirectory() as tmp:  # a checkpoint written on the device loads on the CPU, same outputs
        path = save_checkpoint(Path(tmp) / "ck", model, {"model": "lenet5", "model_kwargs": {"in_channels": 1,
                               "num_classes": 10, "image_size": 28}})
        back = load_checkpoint(path, "cpu").model
        x = data.normalize(data.test.subset(slice(0, 64)).float_images())
        same = torch.allclose(back(x), model.cpu()(x), atol=1e-5)
    cfg = load_config("smoke")
    cells = plan(cfg, load_dataset("fashion-mnist", train_limit=1500, test_limit=500).info)
    train_cell = next(c for c in cells if c.kind == "train")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        out = run_cell(train_cell.to_json(), tmp, d)
        cell_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        summary = run_study(cfg, Path(tmp) / "smoke", device=d, progress=False)
        study_s = time.perf_counter() - t0
    rows.append((d, epoch_s, res.images_per_s, acc, same, out["status"], cell_s, summary.ok, len(summary.cells), study_s))
env = numerical_env(dev)
print(f"torch {torch.__version__}  device {dev}  {env.get('gpu', env['cpu_capability'])}  threads {env['threads']}")
print(f"{'device':8s} {'epoch s':>8s} {'img/s':>9s} {'test acc':>8s} {'ckpt->cpu':>9s} {'cell':>5s} {'cell s':>7s}"
      f" {'smoke study':>12s} {'study s':>8s}")
for d, e, ips, acc, same, st, cs, ok, n, ss in rows:
    print(f"{d:8s} {e:8.2f} {ips:9.0f} {acc:8.4f} {str(same):>9s} {st:>5s} {cs:7.2f} {('ok' if ok else 'FAILED') + f' ({n})':>12s} {ss:8.1f}")
bad = [r for r in rows if not (r[4] and r[5] == "done" and r[7])]
sys.exit(1 if bad else 0)
PYEOF
