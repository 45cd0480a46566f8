"""The study analysis (torch-free): prune potential, paired comparisons with intervals, verdicts, the gate.

``analyze(rows, outcomes)`` serves the study summary, the report and ``prunebench check`` alike:

* :mod:`~prunebench.analysis.rows`: which metrics are test distributions, parents, groups;
* :mod:`~prunebench.analysis.potential`: the point estimates of Lost in Pruning (PP per repetition,
  excess error, the terminal table);
* :mod:`~prunebench.analysis.paired`: Delta = err(pruned) - err(parent) on shared examples, joint bootstrap;
* :mod:`~prunebench.analysis.decisions`: per-ratio verdicts, PP intervals, resolution, uninformative flags;
* :mod:`~prunebench.analysis.findings`: holds / does not hold / inconclusive for each reference finding;
* :mod:`~prunebench.analysis.gate`: the deployment gate of ``prunebench check``.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from prunebench.analysis.decisions import Decisions, decide
from prunebench.analysis.findings import (
    Finding,
    agreement_finding,
    shift_finding,
    slope_intervals,
    structured_finding,
)  # fmt: skip
from prunebench.analysis.paired import CONFIDENCE, N_BOOT, Interval, check_confidence
from prunebench.analysis.potential import (
    cell_text,
    default_shifted,
    excess_error,
    excess_error_slopes,
    fit_through_origin,
    prune_potential,
    prune_potential_table,
    summarize_prune_potential,
)  # fmt: skip
from prunebench.analysis.rows import (
    DEFAULT_DELTA,
    Kind,
    Roles,
    Row,
    accuracy_keys,
    distribution_groups,
    distributions,
    method_kinds,
    methods,
    summary_distributions,
    value,
)  # fmt: skip


@dataclass
class Analysis:
    """What the report, the run summary and the gate need from a study's rows and outcomes."""

    delta: float
    level: float
    distributions: list[str]
    groups: dict[str, list[str]]
    methods: list[str]
    summaries: dict[str, list[str]]
    prune_potential: list[dict[str, Any]]  # per (method, rep, distribution): the paper's point estimate
    summary: list[dict[str, Any]]  # per (method, distribution): mean / std over repetitions
    table: str
    excess_error: list[dict[str, Any]]
    excess_slopes: dict[str, float]
    shifted: list[str]
    decisions: Decisions
    findings: list[Finding] = field(default_factory=list)
    slope_intervals: dict[str, Interval] = field(default_factory=dict)
    kinds: dict[str, Kind] = field(default_factory=dict)  # method -> (structured or None, random baseline)
    roles: Roles = field(default_factory=Roles)

    @property
    def reference(self) -> str | None:
        """The reference (nominal) distribution, if the study has it."""
        return self.roles.reference if self.roles.reference in self.distributions else None

    @property
    def reference_group(self) -> str | None:
        """The evaluator (distribution group) that reports the reference distribution."""
        ref = self.reference
        return next((g for g, ds in self.groups.items() if ref in ds), None)

    def kind(self, method: str) -> Kind:
        """(structured or None if unknown, random baseline) of ``method``, from the rows."""
        return self.kinds.get(method, (None, False))

    @property
    def finding(self) -> Finding:
        """The headline finding (structured vs unstructured)."""
        return self.findings[0]


def analyze(rows: Sequence[Row], outcomes: Mapping[str, Mapping[str, np.ndarray]] | None = None,
            delta: float = DEFAULT_DELTA, *, level: float = CONFIDENCE, n_boot: int = N_BOOT, seed: int = 0,
            num_classes: int | None = None, kinds: Mapping[str, Kind] | None = None,
            roles: Roles | None = None) -> Analysis:
    """Point estimates (as in the paper) plus paired decisions with intervals (when outcomes are given).

    ``kinds``: method -> (structured or None, random baseline); default from the rows' own fields
    (:func:`~prunebench.analysis.rows.method_kinds`), given ones take precedence.
    ``roles``: which distribution is the reference and which form the default shifted set, from the
    evaluators' specs (``prunebench.report.distribution_roles()``); without a reference, excess error and
    the findings are left out ("not checked")."""
    level = check_confidence(level)
    roles = roles or Roles()
    ref = roles.reference
    known = {**method_kinds(rows), **(kinds or {})}

    def kind(method: str) -> Kind:
        return known.get(method, (None, False))

    pp = prune_potential(rows, delta, first=ref)
    summary = summarize_prune_potential(pp, n_boot=n_boot, seed=seed, level=level)
    keys = accuracy_keys(rows, ref)
    ee: list[dict[str, Any]] = []
    shifted: list[str] = []
    if ref in keys and len(keys) > 1:
        shifted = default_shifted(rows, roles)
        ee = excess_error(rows, roles, shifted)
    dec = decide(rows, outcomes or {}, delta, level=level, n_boot=n_boot, seed=seed, num_classes=num_classes, first=ref)
    findings = [structured_finding(dec, kind, ref), shift_finding(dec, shifted, kind, ref),
                agreement_finding(dec, rows, outcomes or {}, kind, ref)]
    return Analysis(delta, level, list(keys), distribution_groups(rows, ref), methods(rows), summary_distributions(keys),
                    pp, summary, prune_potential_table(rows, delta, summary, decisions=dec), ee, excess_error_slopes(ee),
                    shifted, dec, findings, slope_intervals(dec, shifted, ref) if dec.available else {}, known, roles)


__all__ = ["Analysis", "Roles", "cell_text", "default_shifted", "distribution_groups", "distributions",
           "excess_error", "excess_error_slopes", "fit_through_origin", "Kind", "method_kinds",
           "summarize_prune_potential", "summary_distributions", "Row", "DEFAULT_DELTA", "Decisions", "Finding", "Interval",
           "accuracy_keys",
           "analyze", "check_confidence", "prune_potential", "prune_potential_table", "value"]
