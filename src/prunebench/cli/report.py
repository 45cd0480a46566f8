"""``prunebench report``: write report.html (self-contained) and summary.md for a study run directory,
and print the prune-potential table."""
from __future__ import annotations

import argparse

from prunebench.analysis.paired import CONFIDENCE, N_BOOT
from prunebench.analysis.rows import DEFAULT_DELTA

EXAMPLE = ("examples:\n  prunebench report runs/smoke\n"
           "  prunebench report runs/lenet5-study --delta 0.01 --confidence 0.9")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="write report.html + summary.md for a study run", description=__doc__,
                       epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", metavar="RUN_DIR", help="the folder `prunebench run` wrote (holds results.sqlite)")
    p.add_argument("--delta", type=float, help="tolerated error increase for prune potential (default: the run's "
                                               f"config, else {DEFAULT_DELTA})")
    p.add_argument("--bootstrap", type=int, default=N_BOOT, help=f"bootstrap resamples for the intervals (default {N_BOOT})")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--confidence", type=float, default=CONFIDENCE,
                   help=f"confidence level of every interval and verdict (default {CONFIDENCE})")
    p.add_argument("--allow-incomplete", action="store_true",
                   help="exit 0 even when cells failed, are blocked or have not run yet (default: exit 1)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from prunebench.analysis.paired import check_confidence
    from prunebench.errors import UserError
    from prunebench.report import read_table, write_report

    if args.delta is not None and not 0 <= args.delta < 1:
        raise UserError(f"--delta must be in [0, 1) (a tolerated error increase, e.g. 0.005), got {args.delta}")
    if args.bootstrap < 1:
        raise UserError(f"--bootstrap must be a positive number of resamples, got {args.bootstrap}")
    level = check_confidence(args.confidence)
    import sys
    from pathlib import Path

    from prunebench.study.lock import describe, running
    from prunebench.study.rundir import cell_failures, pending_cells

    holder = running(args.run_dir) if Path(args.run_dir).is_dir() else None
    if holder is not None:
        print(f"note: a run is in progress in {args.run_dir} ({describe(holder)}); the report covers the cells "
              "finished so far", file=sys.stderr)
    html_path, md_path = write_report(args.run_dir, delta=args.delta, n_boot=args.bootstrap, seed=args.seed,
                                      confidence=level)
    table = read_table(md_path)
    if table:
        print(table)
    print(f"report:  {html_path}\nsummary: {md_path}")
    failures, pending = cell_failures(args.run_dir), pending_cells(args.run_dir)
    if failures:
        from prunebench.cli.run import print_failures

        print_failures(failures, sum(f.status == "failed" for f in failures), sum(f.status == "blocked" for f in failures))
    if (pending or holder is not None) and not args.allow_incomplete:
        why = "a run is in progress" if holder is not None and not pending else f"{pending} cell(s) not finished"
        print(f"prunebench: the study is incomplete ({why}); exit 1 (--allow-incomplete to exit 0)", file=sys.stderr)
        return 1
    return 0

