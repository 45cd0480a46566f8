"""``prunebench check``: a deployment gate. Is the pruned network as good as its parent on EVERY test
distribution, not just the nominal test set?

Both checkpoints are evaluated with the same evaluators (same images, same noise draws, same seed);
for every distribution D' (each ``acc/<distribution>`` metric) the gate requires

    err(pruned, D') <= err(parent, D') + delta          (Lost in Pruning: prune potential, one ratio)

and exits 0 if all pass, 1 if any fails (naming them), 2 for bad input.

Default suite (cheap on a CPU; the nominal test set is always checked):
  * nominal: the whole test split (or --limit images);
  * noise-similarity with n=1000 images, draws=5, eps in {0.1, 0.2, 0.3} (uniform noise on the
    normalized input; distributions noise-0.1, noise-0.2, noise-0.3);
  * adversarial with FGSM only on the first 1000 images (one gradient per image and eps; default eps
    grid by channel count, e.g. fgsm-0.01/0.03/0.1 for 1-channel data).
An explicit --suite replaces the default and runs each evaluator with its own (full) defaults, e.g.
``--suite corruptions`` or ``--suite noise-similarity,adversarial``; ``--suite nominal`` checks
only the nominal test set. Evaluators without accuracies (calibration, ood, ...) run but gate nothing.
"""
from __future__ import annotations

import argparse
import math
from typing import Any

from prunebench.cli.common import add_device, data_for, resolve_device, split_list, write_json

EXAMPLE = ("examples:\n  prunebench check pruned.safetensors --parent parent.safetensors\n"
           "  prunebench check pruned.safetensors --parent parent.safetensors --suite corruptions --delta 0.01\n"
           "  prunebench check pruned.safetensors --parent parent.safetensors --suite nominal --limit 2000")
DEFAULT_SUITE: dict[str, dict[str, Any]] = {
    "noise-similarity": {"n": 1000, "draws": 5, "eps": [0.1, 0.2, 0.3]},
    "adversarial": {"n": 1000, "attacks": ["fgsm"]},
}
TOL = 1e-12  # floating-point slack on the inequality (an exact tie passes)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help="gate a pruned model: no distribution may lose more than delta vs its parent",
                       description=__doc__, epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("pruned", metavar="PRUNED", help="the pruned checkpoint (.safetensors written by prunebench)")
    p.add_argument("--parent", required=True, help="the parent (unpruned) checkpoint to compare against")
    p.add_argument("--delta", type=float, default=0.005, help="tolerated error increase per distribution (default 0.005)")
    p.add_argument("--suite", help="comma-separated evaluators (prunebench list evaluators); default: "
                                   + ", ".join(["nominal", *DEFAULT_SUITE]) + " (cheap settings)")
    p.add_argument("--data", help="dataset to evaluate on (default: the one the checkpoints were trained on)")
    p.add_argument("--data-root", help="folder holding the dataset")
    p.add_argument("--limit", type=int, help="evaluate on the first N test images only")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise draws / attack starts (default 0)")
    p.add_argument("--out", help="also write the verdict as JSON here")
    add_device(p)
    p.set_defaults(run=run)


def _apply_masks(ckpt: Any) -> None:
    """Re-impose stored pruning masks (pruned weights stay exactly zero)."""
    if ckpt.masks:
        from prunebench.pruning.masks import PruningState

        PruningState(ckpt.model, ckpt.masks).apply()


def _suite(text: str | None) -> tuple[list[str], dict[str, dict[str, Any]]]:
    if text is None:
        return ["nominal", *DEFAULT_SUITE], {k: dict(v) for k, v in DEFAULT_SUITE.items()}
    names = split_list(text)
    if not names:
        from prunebench.errors import UserError

        raise UserError("--suite is empty; name evaluators, e.g. --suite nominal,noise-similarity (prunebench list evaluators)")
    return list(dict.fromkeys(["nominal", *names])), {}


def compare(parent: dict[str, float], pruned: dict[str, float], delta: float) -> list[dict[str, Any]]:
    """One verdict per distribution present in both metric sets: err(pruned) <= err(parent) + delta."""
    out = []
    for key, p_acc in parent.items():
        parts = key.split("/", 2)
        if len(parts) != 3 or parts[1] != "acc" or key not in pruned:
            continue
        q_acc = pruned[key]
        margin = (1.0 - p_acc) + delta - (1.0 - q_acc)  # >= 0: within tolerance
        ok = math.isfinite(margin) and margin >= -TOL
        out.append({"distribution": parts[2], "evaluator": parts[0], "parent_acc": p_acc, "pruned_acc": q_acc,
                    "margin": margin, "passed": ok})
    return out


def format_table(rows: list[dict[str, Any]], delta: float) -> str:
    header = ["distribution", "parent acc [%]", "pruned acc [%]", "margin [pp]", "result"]
    body = [[r["distribution"], f"{100 * r['parent_acc']:.2f}", f"{100 * r['pruned_acc']:.2f}", f"{round(100 * r['margin'], 2) + 0.0:+.2f}",
             "PASS" if r["passed"] else "FAIL"] for r in rows]
    widths = [max(len(x[i]) for x in [header, *body]) for i in range(len(header))]

    def fmt(r: list[str]) -> str:
        return "  ".join(c.ljust(w) if i in (0, 4) else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()

    note = f"margin = parent error + delta ({100 * delta:g} pp) - pruned error; FAIL when negative"
    return "\n".join([fmt(header), "  ".join("-" * w for w in widths), *map(fmt, body), note])


def run(args: argparse.Namespace) -> int:
    from prunebench.errors import UserError
    from prunebench.evaluation.base import EvalContext
    from prunebench.evaluation.suite import run_suite
    from prunebench.store import load_checkpoint

    if not (math.isfinite(args.delta) and 0 <= args.delta < 1):
        raise UserError(f"--delta must be in [0, 1) (a tolerated error increase, e.g. 0.005), got {args.delta}")
    if args.limit is not None and args.limit <= 0:
        raise UserError(f"--limit must be a positive number of test images, got {args.limit}")
    names, options = _suite(args.suite)
    device = resolve_device(args.device)
    pruned, parent = load_checkpoint(args.pruned, device), load_checkpoint(args.parent, device)
    for ck in (pruned, parent):
        _apply_masks(ck)
    ds_pruned, ds_parent = pruned.meta.get("dataset"), parent.meta.get("dataset")
    if not args.data and ds_pruned and ds_parent and ds_pruned != ds_parent:
        raise UserError(f"the checkpoints were trained on different datasets ({ds_pruned} vs {ds_parent}); "
                        "compare a pruned model with its own parent, or force one with --data NAME")
    nc = [ck.meta.get("model_kwargs", {}).get("num_classes") for ck in (pruned, parent)]
    if None not in nc and nc[0] != nc[1]:
        raise UserError(f"the checkpoints predict different numbers of classes ({nc[0]} vs {nc[1]}); "
                        "compare a pruned model with its own parent")
    data = data_for(pruned.meta if ds_pruned else parent.meta, args.data, args.data_root)

    def evaluate(model: Any) -> dict[str, float]:
        ctx = EvalContext(data=data, device=device, parent=parent.model, seed=args.seed, max_samples=args.limit)
        return run_suite(model, ctx, names, options)

    m_parent, m_pruned = evaluate(parent.model), evaluate(pruned.model)
    rows = compare(m_parent, m_pruned, args.delta)
    if not rows:
        raise UserError(f"the suite {', '.join(names)} reported no accuracies to compare; include nominal or an "
                        "evaluator with acc/<distribution> metrics")
    failed = [r["distribution"] for r in rows if not r["passed"]]
    n_test = min(len(data.test), args.limit) if args.limit else len(data.test)
    print(f"check {args.pruned} against parent {args.parent}: {data.info.name}, {n_test} test images, "
          f"evaluators {', '.join(names)}, delta = {100 * args.delta:g}%")
    print(format_table(rows, args.delta))
    if args.out:
        write_json(args.out, {"pruned": str(args.pruned), "parent": str(args.parent), "delta": args.delta,
                              "suite": names, "passed": not failed, "failed": failed, "distributions": rows,
                              "metrics": {"parent": m_parent, "pruned": m_pruned}})
    if failed:
        print(f"FAIL: {len(failed)} of {len(rows)} distributions lose more than delta against the parent: {', '.join(failed)}")
        return 1
    print(f"PASS: all {len(rows)} distributions within delta of the parent")
    return 0


__all__ = ["DEFAULT_SUITE", "compare", "format_table"]
