"""``prunebench report``: write report.html (self-contained) and summary.md for a study run directory,
and print the prune-potential table."""
from __future__ import annotations

import argparse

EXAMPLE = ("examples:\n  prunebench report runs/smoke\n"
           "  prunebench report runs/lenet5-study --delta 0.01")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="write report.html + summary.md for a study run", description=__doc__,
                       epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", metavar="RUN_DIR", help="the folder `prunebench run` wrote (holds results.sqlite)")
    p.add_argument("--delta", type=float, help="tolerated error increase for prune potential (default: the run's "
                                               "config, else 0.005)")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the intervals (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from prunebench.errors import UserError
    from prunebench.report import write_report

    if args.delta is not None and not 0 <= args.delta < 1:
        raise UserError(f"--delta must be in [0, 1) (a tolerated error increase, e.g. 0.005), got {args.delta}")
    if args.bootstrap < 1:
        raise UserError(f"--bootstrap must be a positive number of resamples, got {args.bootstrap}")
    html_path, md_path = write_report(args.run_dir, delta=args.delta, n_boot=args.bootstrap, seed=args.seed)
    table = _table_from(md_path)
    if table:
        print(table)
    print(f"report:  {html_path}\nsummary: {md_path}")
    return 0


def _table_from(md_path) -> str:
    """The terminal prune-potential table, written by write_report next to the summary."""
    from prunebench.report import TABLE_NAME

    txt = md_path.with_name(TABLE_NAME)
    return txt.read_text(encoding="utf-8").rstrip() if txt.is_file() else ""
