"""``prunebench train``: train a zoo model on a dataset and save a checkpoint."""
from __future__ import annotations

import argparse
import time

from prunebench.cli.common import add_device, finite, key_values, write_json
from prunebench.device import resolve_device
from prunebench.outpaths import check_out_file

EXAMPLE = "example: prunebench train --model lenet5 --data fashion-mnist --epochs 10 --out checkpoints/lenet5"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model and save a checkpoint", description=__doc__, epilog=EXAMPLE)
    p.add_argument("--model", required=True, help="zoo model name (prunebench list models)")
    p.add_argument("--data", required=True, help="dataset name (prunebench list datasets)")
    p.add_argument("--data-root", help="folder (or .npz file) holding the dataset; default: standard locations")
    p.add_argument("--data-option", action="append", default=[], metavar="KEY=VALUE",
                   help="a dataset option (repeatable), e.g. size=32 for image-folder (prunebench list datasets)")
    p.add_argument("--width", type=float, default=1.0, help="width multiplier of the model (default 1)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--optimizer", choices=["sgd", "adamw"], default="sgd")
    p.add_argument("--schedule", choices=["cosine", "multistep", "constant"], default="cosine")
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--warmup-epochs", type=float, default=0.0)
    p.add_argument("--label-smoothing", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-limit", type=int, help="use only the first N training images (quick runs)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--out", help="checkpoint path (default checkpoints/<model>-<data>-s<seed>)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_device(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from prunebench.data import load_dataset
    from prunebench.data.split import VAL_FRACTION
    from prunebench.errors import UserError
    from prunebench.models import create_model
    from prunebench.store import save_checkpoint
    from prunebench.training import TrainConfig, evaluate_split, train

    finite(args.width, "--width", positive=True)
    for flag in ("lr", "weight_decay", "warmup_epochs", "label_smoothing"):
        finite(getattr(args, flag), "--" + flag.replace("_", "-"))
    if args.train_limit is not None and args.train_limit < 1:
        raise UserError(f"--train-limit must be a positive number of images, got {args.train_limit}")
    try:
        cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer,
                          schedule=args.schedule, weight_decay=args.weight_decay, warmup_epochs=args.warmup_epochs,
                          label_smoothing=args.label_smoothing, seed=args.seed, compile=args.compile)
    except ValidationError as e:
        err = e.errors()[0]
        raise UserError(f"bad training option {'.'.join(map(str, err['loc'])) or ''}: {err['msg']}") from None
    from prunebench.data import DATASETS
    from prunebench.models import MODELS

    MODELS.get(args.model), DATASETS.get(args.data)  # fail fast on bad names, before loading anything
    out = args.out or f"checkpoints/{args.model}-{args.data}-s{args.seed}"
    check_out_file(out, "--out", (".safetensors", ".metrics.json"))
    device = resolve_device(args.device)
    data_options = key_values(args.data_option, "--data-option")
    data = load_dataset(args.data, args.data_root, train_limit=args.train_limit, options=data_options)
    kwargs = {"in_channels": data.info.in_channels, "num_classes": data.info.num_classes, "width": args.width,
              "image_size": data.info.image_size[0]}
    model = create_model(args.model, **kwargs)
    t0 = time.perf_counter()
    result = train(model, data, cfg, device=device, progress=not args.no_progress, desc=f"{args.model}/{args.data}")
    test = evaluate_split(model, data.test, data.info, device)
    wall = time.perf_counter() - t0
    metrics = {"test_acc": test["acc"], "test_loss": test["loss"], "best_val_acc": result.best_val_acc,
               "best_epoch": result.best_epoch, "train_seconds": result.seconds, "images_per_s": result.images_per_s}
    meta = {"model": args.model, "model_kwargs": kwargs, "dataset": args.data, "data_root": args.data_root,
            "val_fraction": VAL_FRACTION, "split_seed": 0, "seed": args.seed, "train": cfg.model_dump(mode="json"),
            "metrics": metrics, "history": result.history, **({"data_options": data_options} if data_options else {})}
    path = save_checkpoint(out, model, meta)
    write_json(path.with_suffix(".metrics.json"), metrics)
    print(f"test accuracy {test['acc']:.4f}  (loss {test['loss']:.4f}, best val {result.best_val_acc:.4f} at epoch "
          f"{result.best_epoch}, {result.images_per_s:.0f} img/s, wall {wall:.1f} s)")
    print(f"checkpoint: {path}")
    return 0
