"""Train the example model of ``my_model.py`` briefly and save its weights as a plain safetensors
``state_dict``: the "already trained model" that ``given_parent.yaml`` prunes instead of training one.

    python examples/make_parent.py            # writes examples/my_model_parent.safetensors
    prunebench run examples/given_parent.yaml --out runs/given_parent

Any model you trained yourself works the same way: ``safetensors.torch.save_file(model.state_dict(), path)``
with the model the config's ``model.factory`` builds (same tensor names, shapes and dtypes).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(HERE / "my_model_parent.safetensors"), help="where to write the weights")
    ap.add_argument("--train-limit", type=int, default=2000, help="training images (Fashion-MNIST)")
    ap.add_argument("--epochs", type=int, default=1)
    args = ap.parse_args()

    sys.path.insert(0, str(HERE))
    from my_model import build

    from prunebench.data import load_dataset
    from prunebench.training import TrainConfig, train

    data = load_dataset("fashion-mnist", train_limit=args.train_limit)
    torch.manual_seed(0)
    model = build(in_channels=data.info.in_channels, num_classes=data.info.num_classes, channels=8)
    result = train(model, data, TrainConfig(epochs=args.epochs, batch_size=64, lr=0.05), device="cpu", progress=False)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, args.out)
    print(f"wrote {args.out} (validation accuracy {result.best_val_acc:.3f})")


if __name__ == "__main__":
    main()
