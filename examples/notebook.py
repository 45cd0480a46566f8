# %% [markdown]
# # A pruning study from Python (notebook style)
# Your model as a function, your data as arrays: `prunebench.run_study(config, model=..., data=...)`.
# In-memory objects cannot be sent to worker processes, so the cells run one after another in this
# process. Run as a script (`python examples/notebook.py [OUT_DIR]`) or cell by cell in Jupyter.

# %%
import sys

import numpy as np
from torch import nn

import prunebench
from prunebench.data import from_tensors, load_dataset

OUT = sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("-") else "runs/notebook"


# %% A model that is not in prunebench's zoo: defined at the top level, so that its source
# identifies it (edit it and the study re-runs its cells).
def tiny_cnn(in_channels: int, num_classes: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(in_channels, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.AdaptiveAvgPool2d(4),
        nn.Flatten(), nn.Linear(16 * 16, num_classes))


# %% Data as plain arrays (here a slice of Fashion-MNIST; any uint8 images and integer labels work).
fm = load_dataset("fashion-mnist")
x_train, y_train = fm.train.x[:800].numpy(), fm.train.y[:800].numpy()
x_test, y_test = fm.test.x[:300].numpy(), fm.test.y[:300].numpy()
data = from_tensors(x_train, y_train, x_test, y_test, classes=fm.info.classes, val_fraction=0.2)
print(f"train {len(data.train)}, val {len(data.val)}, test {len(data.test)} images, {data.info.num_classes} classes")

# %% The study: everything but the model and the data, as a mapping.
config = {
    "name": "notebook",
    "train": {"epochs": 1, "batch_size": 64, "lr": 0.05},
    "methods": ["wt", "ft"],
    "ratios": [0.5],
    "device": "cpu",
}
summary = prunebench.run_study(config, OUT, model=tiny_cnn, data=data, progress=False)
print(f"ran {len(summary.executed)} cells, reused {len(summary.reused)}; ok: {summary.ok}")

# %% One row per model (docs/STUDY.md): the parent and every pruned model with its metrics.
rows = summary.rows()
for r in rows:
    print(f"{r['method']:>6} ratio {r['prune_ratio']:.2f}  nominal acc {r['nominal/acc/nominal']:.3f}")
assert np.isfinite([r["nominal/acc/nominal"] for r in rows]).all()
