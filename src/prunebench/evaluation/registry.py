"""The EVALUATORS registry: one typed :class:`EvaluatorSpec` per evaluator, loaded on first lookup.

An evaluator is one module (in :mod:`prunebench.evaluation.evaluators`, or a plug-in named in
``$PRUNEBENCH_PLUGINS``) holding a function ``f(model, ctx, opts) -> dict`` and one decorator::

    class MyOptions(Options):
        n: int = Field(1000, gt=0, description="first test images")

    @EVALUATORS.register("mine", options=MyOptions, description="...", axis_label="eps")
    def mine(model: nn.Module, ctx: EvalContext, opts: MyOptions) -> dict[str, Any]: ...

``opts`` is the parsed options model (defaults filled in, ranges checked). The function returns
flat metrics (keys without the evaluator prefix; the caller namespaces them as
``"<evaluator>/<key>"``): floats, distribution-wise accuracies as ``"acc/<distribution>"`` (what
prune potential is computed over) and per-example outcomes as boolean tensors
(``"correct/<distribution>"``, see :mod:`prunebench.evaluation.suite`). Everything the study, the
CLI and the report need to know about an evaluator is read from its spec.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from prunebench.registry import Options, Registry, Spec

if TYPE_CHECKING:
    from torch import nn

    from prunebench.evaluation.base import EvalContext


@dataclass(frozen=True)
class ParamPlot:
    """A metric reported per parameter value as ``<metric>/<value>`` (e.g. ``match/0.1`` per noise eps),
    drawn against that value with one line per prune ratio in the evaluator's report section."""

    metric: str
    ylabel: str
    caption: str


@dataclass(frozen=True, kw_only=True)
class EvaluatorSpec(Spec):
    """Typed metadata of an evaluator.

    ``needs_parent``: compares the model with its unpruned parent (``ctx.parent`` required; the
    study passes the parent, and an independently trained baseline when there is one).
    ``description``: one paragraph on what it measures (report section, listings).
    ``axis_label``: what the number at the end of its distribution names is (``fog-3``: severity;
    ``pgd-0.03``: eps), the x-axis of its prune-potential-vs-parameter plot.
    ``panels``: which of its non-accuracy metrics get a panel in the report (exact key, or a prefix
    ending in ``/``); None: all of them (up to the report's limit); ``()``: none.
    ``param_plots``: metrics drawn against their parameter, one line per prune ratio.
    ``check_options``: the options of a cheap run that ``prunebench check`` uses by default (None:
    not in the default check suite).
    ``always``: runs on every model of every study, first (the nominal test set).
    ``reference``: the one of its distributions that is the unshifted test set every other distribution
    and delta are measured against (the analysis's reference; one evaluator has it).
    ``default_shift``: pattern (``re.fullmatch``) of its distributions that form the default shifted set
    of excess error and of the shift finding (Lost in Pruning: the corruptions at severity 3).
    """

    needs_parent: bool = False
    description: str = ""
    axis_label: str = "level"
    panels: tuple[str, ...] | None = None
    param_plots: tuple[ParamPlot, ...] = ()
    check_options: Mapping[str, Any] | None = None
    always: bool = False
    reference: str | None = None
    default_shift: str | None = None


class Evaluator(Protocol):
    def __call__(self, model: nn.Module, ctx: EvalContext, opts: Any) -> dict[str, Any]: ...


EVALUATORS: Registry[EvaluatorSpec] = Registry("evaluator", EvaluatorSpec, packages=("prunebench.evaluation.evaluators",))


def run_evaluator(name: str, model: nn.Module, ctx: EvalContext, options: Mapping[str, Any] | Options | None = None,
                  **kw: Any) -> dict[str, Any]:
    """Run evaluator ``name`` with ``options`` (a mapping or keywords, checked against its options model)."""
    spec = EVALUATORS.spec(name)
    opts = options if isinstance(options, Options) else spec.parse_options({**dict(options or {}), **kw})
    return spec.obj(model, ctx, opts)


def always_run() -> list[str]:
    """The evaluators every study runs on every model, before the configured ones."""
    return [s.name for s in EVALUATORS.specs() if s.always]


__all__ = ["EVALUATORS", "EvaluatorSpec", "ParamPlot", "always_run", "run_evaluator"]
