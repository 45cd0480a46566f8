"""Random unstructured pruning: the uniform baseline and the layer-wise density schemes of
Liu et al., "The Unreasonable Effectiveness of Random Pruning" (ICLR 2022).

One registry entry per scheme, so every scheme is tested and listed on its own:
  * ``random``             uniform: every layer keeps the same fraction d (methods.md "Random");
  * ``random-uniform-plus`` first layer dense, last layer >= ``last_min_density`` (0.2), rest uniform;
  * ``random-er``          Erdos-Renyi densities;
  * ``random-erk``         Erdos-Renyi-Kernel densities (iterative dense set);
  * ``random-erk-plus``    ERK with the last layer at ``last_density`` (default 1.0, dense).
Each is a shorthand for :func:`prunebench.pruning.sparse.draw_masks` with criterion ``random`` and
that density scheme (the same masks as the sparse-training study draws). Inside each layer the kept
weights are chosen uniformly at random, seeded by ``ctx.seed``
(random numbers drawn on CPU: identical masks on every device). ``exact=True`` (default) keeps
exactly round(density * N_l) weights; ``exact=False`` draws Bernoulli(density) per weight as the
reference code does (realised ratio drifts; the state reports the realised one).
Cascade: weights already pruned stay pruned; a layer already sparser than its scheme density
keeps its weights and the others absorb the difference (water-filling), so the total is exact.
"""
from __future__ import annotations

from collections.abc import Callable

from pydantic import Field
from torch import Tensor, nn

from prunebench.pruning.base import PruneContext
from prunebench.pruning.masks import PruningState
from prunebench.pruning.registry import METHODS
from prunebench.pruning.sparse import draw_masks
from prunebench.registry import Options


class RandomOptions(Options):
    exact: bool = Field(True, description="keep exactly round(density * N) weights per layer; false: Bernoulli "
                                          "draws per weight as the reference code (realised ratio drifts)")


class UniformPlusOptions(RandomOptions):
    last_min_density: float = Field(0.2, ge=0.0, le=1.0, description="the last layer keeps at least this density")


class ERKPlusOptions(RandomOptions):
    last_density: float = Field(1.0, gt=0.0, le=1.0, description="density of the last layer (1 = dense)")


def _random(name: str, scheme: str, options: type[RandomOptions] = RandomOptions,
            color: str | None = None) -> Callable[..., dict[str, Tensor]]:
    scheme_keys = [k for k in options.model_fields if k not in RandomOptions.model_fields]

    def method(model: nn.Module, state: PruningState, ratio: float, ctx: PruneContext) -> dict[str, Tensor]:
        opts = ctx.opts(options)
        density = 1.0 - ratio
        if density >= 1.0:
            return {k: m.clone() for k, m in state.masks.items()}
        masks, _ = draw_masks(model, state, density, criterion="random", scheme=scheme, seed=ctx.seed, exact=opts.exact,
                              scheme_options={k: getattr(opts, k) for k in scheme_keys})
        return masks

    method.__name__ = name.replace("-", "_")
    method.__doc__ = f"Random pruning with {scheme} layer-wise densities (criterion random, scheme {scheme})."
    return METHODS.register(name, options=options, structured=False, data_informed=False, baseline=True,
                            color=color)(method)


random_uniform = _random("random", "uniform", color="#2ca02c")
random_uniform_plus = _random("random-uniform-plus", "uniform-plus", UniformPlusOptions)
random_er = _random("random-er", "er")
random_erk = _random("random-erk", "erk")
random_erk_plus = _random("random-erk-plus", "erk-plus", ERKPlusOptions)
