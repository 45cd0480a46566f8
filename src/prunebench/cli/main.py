"""The ``prunebench`` command: one sub-command module per verb, errors as one line and exit 2."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from prunebench.errors import UserError

COMMANDS = ("train", "prune", "evaluate", "run", "report", "check", "corrupt", "export", "listing")


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(
        prog="prunebench", description="Prune PyTorch classifiers and judge them beyond test accuracy.",
        epilog="example: prunebench train --model lenet5 --data fashion-mnist --epochs 10")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"prunebench.cli.{name}").add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except UserError as e:
        if args.debug:
            raise
        print(f"prunebench: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("prunebench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
