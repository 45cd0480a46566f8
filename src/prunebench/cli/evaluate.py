"""``prunebench evaluate``: test accuracy/loss of a checkpoint, plus any evaluators, as JSON."""
from __future__ import annotations

import argparse
import json

from prunebench.cli.common import add_device, data_for, split_list, write_json
from prunebench.device import resolve_device
from prunebench.outpaths import check_out_file

EXAMPLE = ("examples:\n  prunebench evaluate checkpoints/lenet5.safetensors\n"
           "  prunebench evaluate pruned.safetensors --parent parent.safetensors --suite calibration,ood --out eval.json")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="evaluate a checkpoint (JSON out)", description=__doc__, epilog=EXAMPLE,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="a .safetensors checkpoint written by prunebench")
    p.add_argument("--data", help="dataset to evaluate on (default: the one it was trained on)")
    p.add_argument("--data-root", help="folder holding the dataset")
    p.add_argument("--suite", help="comma-separated evaluators (prunebench list evaluators); default: test accuracy only")
    p.add_argument("--parent", help="parent checkpoint, for evaluators that compare with it")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, help="evaluate on the first N test images only")
    p.add_argument("--out", help="write the metrics JSON here (also printed)")
    add_device(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from prunebench.errors import UserError
    from prunebench.evaluation.base import EvalContext
    from prunebench.evaluation.registry import EVALUATORS
    from prunebench.evaluation.suite import run_suite
    from prunebench.store import load_checkpoint
    from prunebench.training import evaluate_split

    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit must be a positive number of test images, got {args.limit}; leave it out to "
                        "evaluate on the whole test set")
    if args.out:
        check_out_file(args.out, "--out")
    names = split_list(args.suite)
    for name in names:  # bad names and a missing --parent fail before any checkpoint is read
        if EVALUATORS.spec(name).needs_parent and not args.parent:
            raise UserError(f"evaluator {name!r} compares with the parent model; pass --parent PARENT.safetensors")
    device = resolve_device(args.device)
    ckpt = load_checkpoint(args.checkpoint, device)
    data = data_for(ckpt.meta, args.data, args.data_root)
    test = data.test.subset(slice(0, args.limit)) if args.limit else data.test
    result = evaluate_split(ckpt.model, test, data.info, device)
    metrics = {"test_acc": result["acc"], "test_loss": result["loss"]}
    if names:
        parent = load_checkpoint(args.parent, device).model if args.parent else None
        ctx = EvalContext(data=data, device=device, parent=parent, seed=args.seed, max_samples=args.limit)
        metrics.update(run_suite(ckpt.model, ctx, names))
    if args.out:
        write_json(args.out, metrics)
    print(json.dumps(metrics, indent=2))
    return 0
