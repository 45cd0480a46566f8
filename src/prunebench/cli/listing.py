"""``prunebench list``: the entries of a registry (models, datasets, methods, evaluators, corruptions)."""
from __future__ import annotations

import argparse
import importlib

REGISTRIES = {
    "models": ("prunebench.models", "MODELS"),
    "datasets": ("prunebench.data", "DATASETS"),
    "methods": ("prunebench.pruning", "METHODS"),
    "evaluators": ("prunebench.evaluation", "EVALUATORS"),
    "corruptions": ("prunebench.evaluation.corruptions", "CORRUPTIONS"),
}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="list registered models, datasets, methods, evaluators or corruptions",
                       description=__doc__, epilog="example: prunebench list models")
    p.add_argument("what", choices=sorted(REGISTRIES))
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    module, attr = REGISTRIES[args.what]
    registry = getattr(importlib.import_module(module), attr)
    for name in registry.names():
        meta = registry.meta(name)
        extra = "  ".join(f"{k}={v}" for k, v in meta.items())
        print(f"{name:24s} {extra}".rstrip())
    return 0
