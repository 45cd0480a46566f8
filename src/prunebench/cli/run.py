"""``prunebench run``: run (or resume) a pruning study from a YAML config; ends with the prune-potential table.

Without CONFIG the bundled default study runs (Fashion-MNIST, LeNet-5, two repetitions of four methods at
four ratios in cascade, under ten minutes on an idle 2-core CPU). Rerunning the same command skips finished cells;
changing only the evaluation suite re-evaluates the saved checkpoints without retraining.
A run directory belongs to one study (its name, model and dataset) and to one run at a time: a
second run on it is refused while the first holds it; another study needs a new --out (or --extend).
"""
from __future__ import annotations

import argparse
import sys

EXAMPLE = ("examples:\n  prunebench run                                  # the bundled default study\n"
           "  prunebench run smoke --out runs/smoke           # a bundled study by name (under a minute)\n"
           "  prunebench run study.yaml --workers 2 --device cpu\n"
           "  prunebench run cifar10_resnet20 --executor ray --ray-address auto   # on a Ray cluster")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run a pruning study (train, prune+retrain, evaluate, report)", description=__doc__,
                       epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", nargs="?", help="study YAML (or a bundled name: default, smoke, cifar10_resnet20, ...); "
                                             "default: the bundled default")
    p.add_argument("--out", help="run directory (default runs/<name>); rerun into it to resume")
    p.add_argument("--workers", type=_workers, default="auto",
                   help="run independent cells in N processes; auto (default): one single-threaded process per "
                        "CPU core, one on a GPU")
    p.add_argument("--executor", choices=["local", "ray"], default="local",
                   help="local: this machine (--workers processes); ray: Ray tasks on a cluster (pip install "
                        "'prunebench[ray]'; the run directory must be on storage every node mounts)")
    p.add_argument("--ray-address", default=None,
                   help="Ray cluster address (auto = the cluster `ray start` made here; default: a local instance)")
    p.add_argument("--device", help="cpu, cuda, cuda:N or auto (default: the config's device)")
    p.add_argument("--quiet", action="store_true", help="no progress bars; only the final summary")
    p.add_argument("--no-report", action="store_true", help="skip report.html / summary.md")
    p.add_argument("--extend", action="store_true",
                   help="add this study to a run directory that holds another one (every earlier row stays visible)")
    p.add_argument("--recompute-env", action="store_true",
                   help="re-run finished cells computed under another numerical environment (torch version, "
                        "device, CPU capability, threads, dtype) instead of reusing them")
    p.set_defaults(run=run)


def _workers(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)  # the range is checked by run_study
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number or 'auto', got {text!r}") from None


def run(args: argparse.Namespace) -> int:
    from prunebench.report import read_table, study_table, write_report
    from prunebench.study.loader import load_config
    from prunebench.study.plan import counts
    from prunebench.study.rundir import cell_failures
    from prunebench.study.runner import run_study

    cfg = load_config(args.config)
    summary = run_study(cfg, args.out, workers=args.workers, device=args.device, progress=not args.quiet,
                        executor=args.executor, ray_address=args.ray_address, extend=args.extend,
                        recompute_env=args.recompute_env)
    n = counts(summary.cells)
    done = summary.executed_kinds()
    shown = [k for k in n if n[k] or k in ("train", "prune", "eval")]  # kinds of this plan (+ the usual three)

    def kinds(c: dict[str, int]) -> str:
        return ", ".join(f"{c[k]} {k}" for k in shown)

    print(f"study {cfg.name!r} in {summary.run_dir}: {len(summary.cells)} cells ({kinds(n)}); ran "
          f"{len(summary.executed)} ({kinds(done)}), reused {len(summary.reused)}, {summary.seconds:.1f} s")
    print()
    if not summary.models_done:
        print("no model finished: nothing to tabulate")
    elif args.no_report:
        print(study_table(summary.run_dir, delta=cfg.delta))
    else:
        html, md = write_report(summary.run_dir, delta=cfg.delta)
        print(read_table(md))
        print(f"\nreport: {html}\nsummary: {md}")
    if summary.env_changed:
        first = next(iter(summary.env_changed.values()))
        verb = "were recomputed" if args.recompute_env else "were reused (pass --recompute-env to recompute them)"
        print(f"\nnote: {len(summary.env_changed)} finished cell(s) were computed under another numerical "
              f"environment ({first}); they {verb}", file=sys.stderr)
    if not summary.ok:
        print_failures(cell_failures(summary.run_dir), len(summary.failed), len(summary.blocked))
        return 1
    return 0


def print_failures(failures, n_failed: int, n_blocked: int) -> None:
    """The failed and blocked cells: what, why, what to do (stderr)."""
    print(f"\n{n_failed} cell(s) failed, {n_blocked} blocked by them (rerun the same command to retry; "
          "details in results.sqlite):", file=sys.stderr)
    for f in failures:
        print(f"  {f.status}: {f.describe()}: {f.error}\n    -> {f.hint}", file=sys.stderr)
