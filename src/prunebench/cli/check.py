"""``prunebench check``: a deployment gate. Is the pruned network as good as its parent on EVERY test
distribution, not just the nominal test set?

Both checkpoints are evaluated with the same evaluators (same images, same noise draws, same seed),
and for every distribution D' the error increase Delta = err(pruned, D') - err(parent, D') is
estimated *paired*, on the same examples, with a confidence interval (default 95%, a bootstrap over
the test images; see prunebench.analysis.paired). Against Lost in Pruning's inequality
err(pruned) <= err(parent) + delta, each distribution is confidently within, confidently beyond, or
inconclusive (too few examples to tell). Exit status:

    0  PASS          every gated distribution is confidently within delta
    1  FAIL          at least one is confidently beyond delta (named)
    3  INCONCLUSIVE  none beyond, but some cannot be decided: evaluate on more examples (drop --limit)
    2  bad input

Distributions where the parent itself is near chance (e.g. a large-eps attack) are shown as
uninformative and gate nothing.

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
from typing import TYPE_CHECKING, Any

from prunebench.analysis.paired import CONFIDENCE
from prunebench.analysis.rows import DEFAULT_DELTA
from prunebench.cli.common import add_device, data_for, split_list, write_json
from prunebench.device import resolve_device

if TYPE_CHECKING:
    from prunebench.analysis.gate import GateResult

EXAMPLE = ("examples:\n  prunebench check pruned.safetensors --parent parent.safetensors\n"
           "  prunebench check pruned.safetensors --parent parent.safetensors --suite corruptions --delta 0.01\n"
           "  prunebench check pruned.safetensors --parent parent.safetensors --suite nominal --limit 2000")


def default_suite() -> dict[str, dict[str, Any]]:
    """Evaluator -> options of the default check: the evaluators that always run, then every evaluator whose
    spec gives cheap ``check_options`` (noise-similarity and adversarial among the built-in ones)."""
    from prunebench.evaluation.registry import EVALUATORS, always_run

    cheap = {s.name: dict(s.check_options) for s in EVALUATORS.specs() if s.check_options is not None}
    return {**{name: cheap.get(name, {}) for name in always_run()}, **cheap}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help="gate a pruned model: no distribution may lose more than delta vs its parent",
                       description=__doc__, epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("pruned", metavar="PRUNED", help="the pruned checkpoint (.safetensors written by prunebench)")
    p.add_argument("--parent", required=True, help="the parent (unpruned) checkpoint to compare against")
    p.add_argument("--delta", type=float, default=DEFAULT_DELTA,
                   help=f"tolerated error increase per distribution (default {DEFAULT_DELTA})")
    p.add_argument("--suite", help="comma-separated evaluators (prunebench list evaluators); default: nominal and "
                                   "the evaluators with check_options in that list, at those cheap settings")
    p.add_argument("--data", help="dataset to evaluate on (default: the one the checkpoints were trained on)")
    p.add_argument("--data-root", help="folder holding the dataset")
    p.add_argument("--limit", type=int, help="evaluate on the first N test images only")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise draws / attack starts (default 0)")
    p.add_argument("--confidence", type=float, default=CONFIDENCE,
                   help=f"confidence level of the intervals (default {CONFIDENCE})")
    p.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples (default 2000)")
    p.add_argument("--per-class", action="store_true",
                   help="also gate every class: fail (or inconclusive) when a class loses more than --class-delta")
    p.add_argument("--class-delta", type=float, help="tolerated error increase per class (default: --delta)")
    p.add_argument("--out", help="also write the verdict as JSON here")
    add_device(p)
    p.set_defaults(run=run)


def _apply_masks(ckpt: Any) -> None:
    """Re-impose stored pruning masks (pruned weights stay exactly zero)."""
    if ckpt.masks:
        from prunebench.pruning.masks import PruningState

        PruningState(ckpt.model, ckpt.masks).apply()


def _suite(text: str | None) -> tuple[list[str], dict[str, dict[str, Any]]]:
    from prunebench.evaluation.registry import always_run

    if text is None:
        default = default_suite()
        return list(default), default
    names = split_list(text)
    if not names:
        from prunebench.errors import UserError

        raise UserError("--suite is empty; name evaluators, e.g. --suite nominal,noise-similarity (prunebench list evaluators)")
    return list(dict.fromkeys([*always_run(), *names])), {}


def format_table(result: GateResult) -> str:
    """The gate's per-distribution table (percent / percentage points)."""
    lv = f"{100 * result.level:g}%"
    header = ["distribution", "examples", "parent acc [%]", "pruned acc [%]", "Delta [pp]", f"{lv} interval [pp]", "result"]
    body = [[r.distribution, str(r.n_examples), f"{100 * r.parent_acc:.2f}", f"{100 * r.pruned_acc:.2f}",
             f"{round(100 * r.delta.estimate, 2) + 0.0:+.2f}",
             f"[{round(100 * r.delta.low, 2) + 0.0:+.2f}, {round(100 * r.delta.high, 2) + 0.0:+.2f}]", r.verdict]
            for r in result.rows]
    widths = [max(len(x[i]) for x in [header, *body]) for i in range(len(header))]

    def fmt(r: list[str]) -> str:
        cells = enumerate(zip(r, widths, strict=True))
        return "  ".join(c.ljust(w) if i in (0, 6) else c.rjust(w) for i, (c, w) in cells).rstrip()

    note = (f"Delta = pruned error - parent error, paired on the same examples; within: the whole interval <= delta "
            f"({100 * result.delta:g} pp), beyond: the whole interval > delta")
    return "\n".join([fmt(header), "  ".join("-" * w for w in widths), *map(fmt, body), note])


def run(args: argparse.Namespace) -> int:
    from prunebench.analysis.gate import gate
    from prunebench.analysis.paired import check_confidence
    from prunebench.errors import UserError
    from prunebench.evaluation.base import EvalContext
    from prunebench.evaluation.suite import SuiteResult, evaluate_suite
    from prunebench.store import load_checkpoint

    if not (math.isfinite(args.delta) and 0 <= args.delta < 1):
        raise UserError(f"--delta must be in [0, 1) (a tolerated error increase, e.g. 0.005), got {args.delta}")
    if args.limit is not None and args.limit <= 0:
        raise UserError(f"--limit must be a positive number of test images, got {args.limit}")
    level = check_confidence(args.confidence)
    if args.bootstrap < 100:
        raise UserError(f"--bootstrap must be at least 100 resamples for a {100 * level:g}% interval, got {args.bootstrap}")
    class_delta = args.delta if args.class_delta is None else args.class_delta
    if not (math.isfinite(class_delta) and 0 <= class_delta < 1):
        raise UserError(f"--class-delta must be in [0, 1) (a tolerated error increase per class), got {class_delta}")
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

    def evaluate(model: Any) -> SuiteResult:
        ctx = EvalContext(data=data, device=device, parent=parent.model, seed=args.seed, max_samples=args.limit)
        return evaluate_suite(model, ctx, names, options)

    m_parent, m_pruned = evaluate(parent.model), evaluate(pruned.model)
    result = gate(m_parent.outcomes, m_pruned.outcomes, args.delta, level=level, n_boot=args.bootstrap, seed=args.seed,
                  num_classes=data.info.num_classes)
    if not result.rows:
        raise UserError(f"the suite {', '.join(names)} reported no accuracies to compare; include nominal or an "
                        "evaluator with acc/<distribution> metrics")
    n_test = min(len(data.test), args.limit) if args.limit else len(data.test)
    print(f"check {args.pruned} against parent {args.parent}: {data.info.name}, {n_test} test images, "
          f"evaluators {', '.join(names)}, delta = {100 * args.delta:g}%, confidence {100 * level:g}%")
    print(format_table(result))
    failed, open_, unin = result.named("beyond"), result.named("inconclusive"), result.named("uninformative")
    status, exit_code, classes = result.status, result.exit_code, None
    if args.per_class:
        from prunebench.analysis.gate import EXIT
        from prunebench.cli.check_classes import class_gate, format_classes, named

        classes = class_gate(result, m_parent, m_pruned, data.info.num_classes, data.info.classes, class_delta,
                             level, args.bootstrap, args.seed)
        print(format_classes(classes, class_delta))
        c_failed, c_open = named(classes, "beyond"), named(classes, "inconclusive")
        if c_failed:
            print(f"FAIL (per class): {len(c_failed)} classes lose confidently more than {100 * class_delta:g} pp: "
                  f"{', '.join(c_failed)}")
            status = "FAIL"
        elif c_open and status == "PASS":
            status = "INCONCLUSIVE"
        if c_open:
            print(f"INCONCLUSIVE (per class): {', '.join(c_open)}")
        exit_code = EXIT[status]
    if args.out:
        write_json(args.out, {
            "pruned": str(args.pruned), "parent": str(args.parent), "delta": args.delta, "confidence": level,
            "suite": names, "status": result.status, "passed": result.status == "PASS", "failed": failed,
            "inconclusive": open_, "uninformative": unin,
            "distributions": [{"distribution": r.distribution, "examples": r.n_examples, "parent_acc": r.parent_acc,
                               "pruned_acc": r.pruned_acc, "delta": r.delta.estimate, "low": r.delta.low,
                               "high": r.delta.high, "verdict": r.verdict} for r in result.rows],
            "metrics": {"parent": m_parent.metrics, "pruned": m_pruned.metrics},
            **({"per_class": {"class_delta": class_delta, "status": status, "classes": [
                {"distribution": d, "class": r.name, "examples": r.n_examples, "parent_acc": r.parent_acc,
                 "pruned_acc": r.pruned_acc, "delta": r.delta.estimate, "low": r.delta.low, "high": r.delta.high,
                 "verdict": r.verdict} for d, rows in classes.items() for r in rows]}} if classes is not None else {})})
    gated = len(result.rows) - len(unin)
    skipped = f" ({len(unin)} uninformative, not gated: {', '.join(unin)})" if unin else ""
    if result.status == "FAIL":
        print(f"FAIL: {len(failed)} of {gated} distributions lose confidently more than delta: {', '.join(failed)}{skipped}")
    elif result.status == "INCONCLUSIVE":
        print(f"INCONCLUSIVE: {len(open_)} of {gated} distributions cannot be decided at {100 * level:g}% confidence: "
              f"{', '.join(open_) or 'none gated'}{skipped}; evaluate on more examples (drop --limit, raise n)")
    else:
        print(f"PASS: all {gated} distributions confidently within delta of the parent{skipped}")
    return exit_code


__all__ = ["default_suite", "format_table"]
