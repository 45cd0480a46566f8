"""Accuracy under the 19 CIFAR-10-C corruptions (Hendrycks & Dietterich 2019) at 5 severities.

Each (corruption, severity) is one distribution: ``acc/<corruption>-<severity>``. Per corruption
the mean over the evaluated severities is ``acc/<corruption>``; ``mean_acc`` averages the 15
benchmark corruptions and ``mean_acc_heldout`` the 4 held-out ones (each only when evaluated).
Corrupted test sets come from :func:`corrupted_split`, cached under ``ctx.cache_dir`` so every model
of a study sees the same images (the ``seed`` option, default 0, is independent of the model seed).
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import Field, ValidationInfo, field_validator
from torch import nn

from prunebench.errors import UserError
from prunebench.evaluation.base import EvalContext, predict_logits
from prunebench.evaluation.corruptions import (
    CORRUPTIONS,
    SEVERITIES,
    benchmark_names,
    corrupted_split,
    heldout_names,
    ordered_names,
)  # fmt: skip
from prunebench.evaluation.corruptions.cache import split_key
from prunebench.evaluation.corruptions.registry import check_severity
from prunebench.evaluation.registry import EVALUATORS
from prunebench.registry import Options


def resolve_corruptions(spec: str | Iterable[str] | None) -> list[str]:
    """None / "all" -> all 19; "benchmark" -> the 15; "heldout" -> the 4; else names (a list or a
    comma-separated string), validated against the registry."""
    if spec is None:
        return ordered_names()
    if isinstance(spec, str):
        groups = {"all": ordered_names, "benchmark": benchmark_names, "heldout": heldout_names}
        if spec in groups:
            return groups[spec]()
        spec = [s.strip() for s in spec.split(",") if s.strip()]
    names = list(spec)
    if not names:
        raise UserError("no corruptions selected; name some, or use 'all', 'benchmark' or 'heldout'")
    for n in names:
        CORRUPTIONS.get(n)
    return list(dict.fromkeys(names))


def resolve_severities(spec: int | Iterable[int] | None) -> list[int]:
    """None -> 1..5; an int or a list of ints in 1..5."""
    if spec is None:
        return list(SEVERITIES)
    sevs = [spec] if isinstance(spec, int) else list(spec)
    if not sevs:
        raise UserError("no severities selected; give some of 1, 2, 3, 4, 5")
    return sorted({check_severity(s) for s in sevs})


def _listed(v: Any) -> Any:
    """A tuple option value as a list (what the resolvers take); scalars and None unchanged."""
    return list(v) if isinstance(v, tuple) else v


class CorruptionsOptions(Options):
    corruptions: str | tuple[str, ...] | None = Field(None, description="'all' (default), 'benchmark', 'heldout', "
                                                      "or corruption names (prunebench list corruptions)")
    severities: int | tuple[int, ...] | None = Field(None, description="severities 1..5 (default all five)")
    seed: int = Field(0, description="seed of the corrupted test sets (independent of the model seed)")

    @field_validator("corruptions", "severities")
    @classmethod
    def _resolvable(cls, v: Any, info: ValidationInfo) -> Any:
        resolve = resolve_corruptions if info.field_name == "corruptions" else resolve_severities
        try:
            resolve(_listed(v))
        except UserError as e:
            raise ValueError(str(e)) from None
        return v


@EVALUATORS.register("corruptions", options=CorruptionsOptions, axis_label="severity", default_shift=r".+-3", description=(
    "Accuracy under common corruptions (CIFAR-10-C style, severities 1-5)."))
def corruptions(model: nn.Module, ctx: EvalContext, opts: CorruptionsOptions) -> dict[str, Any]:
    """Accuracy on each corrupted copy of the test split; see the module docstring for the keys."""
    names, sevs = resolve_corruptions(_listed(opts.corruptions)), resolve_severities(_listed(opts.severities))
    seed = opts.seed
    split = ctx.test_split()
    key = split_key(split.x, ctx.data.info.name)
    metrics: dict[str, float] = {}
    per_corruption: dict[str, float] = {}
    outcomes: dict[str, Any] = {}  # per-example correctness per (corruption, severity)
    for name in names:
        accs = []
        for s in sevs:
            x8 = corrupted_split(split.x, name, s, seed, ctx.cache_dir, key=key, device=ctx.device)
            logits = predict_logits(model, x8.float().div_(255), ctx.data, ctx.device, ctx.batch_size)
            correct = logits.argmax(1) == split.y.to(logits.device)
            acc = correct.float().mean().item()
            metrics[f"acc/{name}-{s}"] = acc
            outcomes[f"correct/{name}-{s}"] = correct
            accs.append(acc)
        per_corruption[name] = sum(accs) / len(accs)
        metrics[f"acc/{name}"] = per_corruption[name]
    bench = [per_corruption[n] for n in names if CORRUPTIONS.spec(n).benchmark]
    held = [per_corruption[n] for n in names if not CORRUPTIONS.spec(n).benchmark]
    if bench:
        metrics["mean_acc"] = sum(bench) / len(bench)
    if held:
        metrics["mean_acc_heldout"] = sum(held) / len(held)
    return {**metrics, **outcomes}
