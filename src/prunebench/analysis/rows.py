"""Rows and keys of a study's results: which accuracy metrics are test distributions, their groups, parents.

Input rows follow docs/STUDY.md: one dict per model cell (``kind`` "parent" or "pruned", ``method``,
``rep``, ``prune_ratio`` (achieved), ...) with evaluator metrics merged in as ``<evaluator>/<key>``.
A pruned row may carry ``structured`` / ``baseline`` (the method's kind, see :func:`method_kinds`).
Every ``<evaluator>/acc/<distribution>`` metric is an accuracy on a test distribution; error =
1 - accuracy. Missing values (a failed or not yet finished eval cell) are skipped, never treated as 0.
"""
from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prunebench.errors import UserError

DEFAULT_DELTA = 0.005
Row = Mapping[str, Any]


@dataclass(frozen=True)
class Roles:
    """What a study's test distributions are for; read from the evaluators' specs by the caller
    (``prunebench.report.distribution_roles``), so the analysis never names an evaluator.

    ``reference``: the unshifted test distribution that delta, excess error and the findings are
    measured against (None: the study has none; those parts are then left out).
    ``shift``: evaluator -> pattern (``re.fullmatch``) of its distributions that form the default
    shifted set of excess error and of the shift finding (e.g. the corruptions at severity 3)."""

    reference: str | None = None
    shift: Mapping[str, str] = field(default_factory=dict)


def _natural(text: str) -> list[Any]:
    """Sort key that orders 'noise-0.05' before 'noise-0.1' and 'fog-2' before 'fog-10'."""
    key: list[Any] = []
    for part in re.split(r"(\d+(?:\.\d+)?)", text):
        if part:
            key.append((0, float(part), "") if re.fullmatch(r"\d+(?:\.\d+)?", part) else (1, 0.0, part))
    return key


def value(row: Row, key: str) -> float | None:
    """A finite float metric of a row, or None when it is absent, None or NaN."""
    v = row.get(key)
    if v is None or isinstance(v, (str, bytes, bool)):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def accuracy_keys(rows: Iterable[Row], first: str | None = None) -> dict[str, str]:
    """``distribution -> "<evaluator>/acc/<distribution>"`` over all rows: distribution ``first`` (the
    reference) and its evaluator's others, then by evaluator, then in natural order."""
    found: dict[str, str] = {}
    for row in rows:
        for key in row:
            parts = key.split("/", 2)
            if len(parts) == 3 and parts[1] == "acc" and parts[0] and parts[2]:
                prev = found.setdefault(parts[2], key)
                if prev != key:
                    raise UserError(f"distribution {parts[2]!r} is reported by two evaluators ({prev}, {key}); "
                                    "distribution ids must be unique across evaluators (docs/STUDY.md)")
    lead = evaluator_of(found[first]) if first in found else None
    order = sorted(found, key=lambda d: (d != first, evaluator_of(found[d]) != lead, evaluator_of(found[d]), _natural(d)))
    return {d: found[d] for d in order}


def evaluator_of(metric_key: str) -> str:
    return metric_key.split("/", 1)[0]


def distributions(rows: Iterable[Row], first: str | None = None) -> list[str]:
    """Every test distribution in the rows (from ``<evaluator>/acc/<dist>`` keys), ``first`` first."""
    return list(accuracy_keys(rows, first))


def summary_distributions(keys: Mapping[str, str]) -> dict[str, list[str]]:
    """Distributions that summarise others of the same evaluator: ``fog`` when ``fog-1`` .. ``fog-5`` exist
    (the corruptions evaluator reports a corruption's mean over its severities as ``acc/<corruption>``).
    They keep their own prune potential but are left out of group means / minima (no double counting)."""
    out: dict[str, list[str]] = {}
    for d, k in keys.items():
        pat = re.compile(re.escape(d) + r"-\d+(?:\.\d+)?")
        leaves = [e for e, ek in keys.items() if evaluator_of(ek) == evaluator_of(k) and pat.fullmatch(e)]
        if leaves:
            out[d] = leaves
    return out


def distribution_groups(rows: Iterable[Row], first: str | None = None) -> dict[str, list[str]]:
    """``evaluator -> its distributions`` (the groups prune potential is averaged / minimised over);
    summary distributions (see :func:`summary_distributions`) are left out."""
    keys = accuracy_keys(rows, first)
    summ = summary_distributions(keys)
    groups: dict[str, list[str]] = {}
    for dist, key in keys.items():
        if dist not in summ:
            groups.setdefault(evaluator_of(key), []).append(dist)
    return groups


def methods(rows: Iterable[Row]) -> list[str]:
    """The pruning methods of the pruned rows, sorted."""
    return sorted({str(r["method"]) for r in rows if r.get("kind") == "pruned"})


def parents_by_rep(rows: Iterable[Row]) -> dict[Any, Row]:
    """The parent row of every repetition (a UserError if a repetition has two)."""
    out: dict[Any, Row] = {}
    for row in rows:
        if row.get("kind") == "parent":
            rep = row.get("rep", 0)
            if rep in out:
                raise UserError(f"two parent rows for repetition {rep!r} ({out[rep].get('model_key')}, {row.get('model_key')}); "
                                "each repetition needs exactly one parent")
            out[rep] = row
    return out


def pruned_rows(rows: Iterable[Row]) -> list[Row]:
    return [r for r in rows if r.get("kind") == "pruned"]


Kind = tuple[bool | None, bool]  # (structured, or None if unknown; is a random baseline)


def method_kinds(rows: Iterable[Row]) -> dict[str, Kind]:
    """Per method of the pruned rows: (structured or None if unknown, random baseline), read from the
    rows' ``structured`` / ``baseline`` fields (the study writes them from the method's registry entry;
    the analysis never looks a method up by name). A row without them leaves the method unknown."""
    out: dict[str, Kind] = {}
    for r in pruned_rows(rows):
        s, b = r.get("structured"), r.get("baseline")
        prev = out.get(str(r["method"]), (None, False))
        out[str(r["method"])] = (prev[0] if s is None else bool(s), prev[1] or bool(b))
    return out


