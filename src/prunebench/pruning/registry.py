"""The pruning-method registry ``METHODS``: one typed :class:`MethodSpec` per method.

A method is one file in ``prunebench/pruning/methods/`` (or a plug-in module, see
:mod:`prunebench.registry`) with an options model and one decorator line::

    class WTOptions(Options):
        ...

    @METHODS.register("wt", options=WTOptions, structured=False, data_informed=False, color="#1f77b4")
    def wt(model, state, ratio, ctx): ...

The signature is ``f(model, state, ratio, ctx) -> dict[str, Tensor]`` (see
:mod:`prunebench.pruning.base`). The registered callable validates ``ctx.options`` against the
options model before the method body runs, so the body always sees the parsed, frozen options
object (``ctx.options``), whoever called it (``prune()``, the study, a test with a plain dict);
a bad option is a one-line :class:`~prunebench.errors.UserError`.

The metadata is what the other layers ask about a method (never its name): ``structured``
(whole channels; exact ratio not promised with ``round_to``), ``data_informed`` (needs a
dataset's validation split), ``baseline`` (a random baseline, left out of the reference
findings), ``color`` / ``label`` (plots and report).
"""
from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prunebench.registry import NoOptions, Options, Registry, Spec


@dataclass(frozen=True, kw_only=True)
class MethodSpec(Spec):
    """A registered pruning method: callable, options model and typed metadata."""

    structured: bool  # removes whole channels / filters (groups of coupled channels)
    data_informed: bool  # scores need data: draws a batch from the dataset's validation split
    baseline: bool = False  # a random baseline (left out of the structured-vs-unstructured comparison)
    color: str | None = None  # plot colour (hex); None: a spare colour chosen deterministically
    label: str | None = None  # display name for a reader (listings, docs table); None: the registry name


class MethodRegistry(Registry[MethodSpec]):
    """``Registry`` whose registered callables parse their options first (see the module docstring)."""

    def register(self, name: str, *, options: type[Options] = NoOptions, **meta: Any) -> Callable[[Any], Any]:
        deco = super().register(name, options=options, **meta)

        def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
            @functools.wraps(fn)
            def method(model: Any, state: Any, ratio: float, ctx: Any) -> Any:
                if not isinstance(ctx.options, options):
                    ctx = dataclasses.replace(ctx, options=self.spec(name).parse_options(ctx.options))
                return fn(model, state, ratio, ctx)

            return deco(method)

        return wrap


METHODS = MethodRegistry("pruning method", MethodSpec, packages=("prunebench.pruning.methods",))


def structured_only_options() -> dict[str, list[str]]:
    """Option name -> the structured methods that take it, for options no unstructured method takes
    (so that such an option given to an unstructured method gets a message naming the right kind)."""
    unstructured = {k for s in METHODS.specs() if not s.structured for k in s.options.model_fields}
    out: dict[str, list[str]] = {}
    for s in METHODS.specs():
        if s.structured:
            for key in s.options.model_fields:
                if key not in unstructured:
                    out.setdefault(key, []).append(s.name)
    return out
