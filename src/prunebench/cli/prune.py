"""``prunebench prune``: prune a checkpoint with a registered method, optionally retrain, save."""
from __future__ import annotations

import argparse

from prunebench.cli.common import add_device, data_for, finite, key_values
from prunebench.device import resolve_device
from prunebench.outpaths import check_out_file

EXAMPLE = ("examples:\n  prunebench prune checkpoints/lenet5.safetensors --method wt --ratio 0.9 --out pruned/lenet5-wt90\n"
           "  prunebench prune parent.safetensors --method pfp --ratio 0.5 --retrain-epochs 3 --out pruned/pfp50\n"
           "  prunebench prune parent.safetensors --method ft --ratio 0.5 --option round_to=16 --latency --out pruned/ft50")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prune", help="prune a checkpoint (and retrain it)", description=__doc__, epilog=EXAMPLE,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="a .safetensors checkpoint written by prunebench (dense or already pruned)")
    p.add_argument("--method", required=True, help="pruning method (prunebench list methods)")
    p.add_argument("--ratio", type=float, required=True,
                   help="prune ratio: fraction of the prunable weights removed, in [0, 1)")
    p.add_argument("--retrain-epochs", type=int, default=0,
                   help="retrain with the checkpoint's own recipe (LR rewinding) for this many epochs")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="a method option (repeatable), e.g. round_to=16, num_samples=64, norm=l2; values are YAML; "
                        "each method's options and defaults: prunebench list methods")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="path of the pruned checkpoint")
    p.add_argument("--latency", action="store_true",
                   help="also measure CPU latency (1 thread, batch 16, median) of the model before and after, "
                        "deployed (BatchNorm folded, channels_last); structured methods add the compressed model")
    p.add_argument("--no-progress", action="store_true")
    add_device(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from prunebench.errors import UserError
    from prunebench.pruning import METHODS, check_ratio, count_params, flops, prune
    from prunebench.store import load_checkpoint, save_checkpoint
    from prunebench.training import TrainConfig, evaluate_split, train

    spec = METHODS.spec(args.method)
    finite(args.ratio, "--ratio")
    check_ratio(args.ratio)
    options = key_values(args.option, "--option")
    resolved = spec.parse_options(options).model_dump(mode="json")  # bad options: one line, before any work
    if args.retrain_epochs < 0:
        raise UserError(f"--retrain-epochs must be >= 0, got {args.retrain_epochs}")
    check_out_file(args.out, "--out", (".safetensors",))
    device = resolve_device(args.device)
    ckpt = load_checkpoint(args.checkpoint, device)
    model, meta = ckpt.model, ckpt.meta
    data = data_for(meta)
    shape = (data.info.in_channels, *data.info.image_size)
    state = ckpt.pruning_state()
    before_acc, before_flops = evaluate_split(model, data.test, data.info, device)["acc"], flops(model, shape, state)
    before_ratio = state.prune_ratio() if state else 0.0
    before_ms = _latency_ms(model, shape) if args.latency else None
    state = prune(model, args.method, args.ratio, data=data, state=state, seed=args.seed, device=device, **options)
    pruned_acc = evaluate_split(model, data.test, data.info, device)["acc"]
    history = []
    if args.retrain_epochs:
        recipe = {**meta.get("train", {}), "epochs": args.retrain_epochs, "seed": args.seed}
        recipe["milestones"] = [m for m in recipe.get("milestones", []) if m < args.retrain_epochs]
        if recipe.get("schedule") == "multistep" and not recipe["milestones"]:
            recipe["schedule"] = "constant"
        recipe["warmup_epochs"] = min(recipe.get("warmup_epochs", 0), args.retrain_epochs)
        history = train(model, data, TrainConfig(**recipe), device=device, callbacks=[state],
                        progress=not args.no_progress, desc=f"retrain {args.method}").history
    state.verify(model)
    after_acc, after_flops = evaluate_split(model, data.test, data.info, device)["acc"], flops(model, shape, state)
    params = count_params(model, state)
    pruning = list(meta.get("pruning", [])) + [{"method": args.method, "options": resolved, "ratio": args.ratio,
                                                "achieved": state.prune_ratio(),
                                                "retrain_epochs": args.retrain_epochs, "seed": args.seed}]
    new_meta = {k: v for k, v in meta.items() if k not in ("format", "version", "has_masks", "shapes", "history")}
    metrics = {"test_acc": after_acc, "prune_ratio": state.prune_ratio(), "params_nonzero": params.nonzero,
               "flops_effective": after_flops.effective}
    new_meta.update({"pruning": pruning, "metrics": metrics, "history": history})
    path = save_checkpoint(args.out, model, new_meta, state.masks)
    ratio_all = 1 - params.nonzero / params.total
    print(f"{'':24s}{'before':>12s}{'after':>12s}")
    print(f"{'prune ratio (prunable)':24s}{before_ratio:12.4f}{state.prune_ratio():12.4f}")
    print(f"{'params removed (all)':24s}{'':12s}{ratio_all:12.4f}")
    print(f"{'effective MFLOPs':24s}{before_flops.effective / 1e6:12.3f}{after_flops.effective / 1e6:12.3f}")
    print(f"{'FLOPs removed':24s}{1 - before_flops.effective / before_flops.dense:12.4f}"
          f"{1 - after_flops.effective / after_flops.dense:12.4f}")
    print(f"{'test accuracy':24s}{before_acc:12.4f}{after_acc:12.4f}"
          + (f"   (right after pruning: {pruned_acc:.4f})" if args.retrain_epochs else ""))
    if args.latency:
        print(f"{'latency ms (deployed)':24s}{before_ms:12.3f}{_latency_ms(model, shape):12.3f}")
        if spec.structured:
            from prunebench.pruning.compress import compress

            example = data.normalize(data.val.subset(slice(0, 1)).float_images()).to(device)
            print(f"{'  compressed':24s}{'':12s}{_latency_ms(compress(model, state, example), shape):12.3f}")
    print(f"checkpoint: {path}")
    return 0


def _latency_ms(model, shape: tuple[int, ...]) -> float:
    """Median CPU milliseconds per batch of 16 of a deployed copy of ``model``, 1 thread."""
    from prunebench.pruning import measure_latency, prepare_for_inference

    return 1e3 * measure_latency(prepare_for_inference(model).cpu(), (16, *shape), threads=1)
