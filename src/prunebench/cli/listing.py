"""``prunebench list``: the entries of a registry (models, datasets, methods, evaluators, corruptions, and the
sparse-training criteria, density schemes and mask-update rules)."""
from __future__ import annotations

import argparse
import importlib
from dataclasses import fields, is_dataclass
from typing import Any

REGISTRIES = {
    "models": ("prunebench.models", "MODELS"),
    "datasets": ("prunebench.data", "DATASETS"),
    "methods": ("prunebench.pruning", "METHODS"),
    "evaluators": ("prunebench.evaluation", "EVALUATORS"),
    "corruptions": ("prunebench.evaluation.corruptions", "CORRUPTIONS"),
    "criteria": ("prunebench.pruning.sparse", "CRITERIA"),
    "schemes": ("prunebench.pruning.sparse", "SCHEMES"),
    "updates": ("prunebench.pruning.sparse", "UPDATES"),
    "formats": ("prunebench.export", "FORMATS"),
}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="list registered models, datasets, methods, evaluators, corruptions, "
                       "criteria, schemes, updates or export formats",
                       description=__doc__, epilog="example: prunebench list models")
    p.add_argument("what", choices=sorted(REGISTRIES))
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    module, attr = REGISTRIES[args.what]
    registry = getattr(importlib.import_module(module), attr)
    for spec in registry.specs():
        meta = {k: v for k, v in spec.metadata().items() if v is not None and v != ()}
        prose = {k: meta.pop(k) for k in list(meta) if isinstance(meta[k], str) and " " in meta[k]}
        extra = "  ".join(f"{k}={_show(v)}" for k, v in meta.items())
        opts = spec.options_help()
        print(f"{spec.name:24s} {extra}".rstrip() + (f"\n{'':24s} options: {opts}" if opts != "none" else ""))
        for key, text in prose.items():  # descriptions: on their own line
            print(f"{'':24s} {key}: {text}")
    return 0


def _show(value: Any) -> str:
    """A metadata value in one short word: a dataclass by its first field, a list comma-separated."""
    if is_dataclass(value):
        return _show(getattr(value, fields(value)[0].name))
    if isinstance(value, (tuple, list)):
        return ",".join(_show(v) for v in value)
    return str(value)
