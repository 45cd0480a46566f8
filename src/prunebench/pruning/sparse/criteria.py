"""The criteria of sparse initialisation: which weights a layer keeps (the top scores), at initialisation.

* ``random``: uniform noise, drawn on CPU from the seed (the random-pruning study; identical on every device);
* ``magnitude``: |w| of the initial weights;
* ``snip``: |w * dL/dw| on a validation batch (Lee et al., ICLR 2019, Eq. 6), BatchNorm batch statistics;
* ``grasp``: minus the GraSP score -theta * (H g) (Wang et al., ICLR 2020, Eq. 8): GraSP removes the
  highest scores, so the kept ones are the lowest.
"""
from __future__ import annotations

from pydantic import Field
from torch import Tensor, nn

from prunebench.pruning.allocation import random_scores
from prunebench.pruning.base import PruneContext
from prunebench.pruning.masks import PruningState
from prunebench.pruning.methods.grasp import GraspOptions, grasp_layer_scores
from prunebench.pruning.methods.snip import SnipOptions, snip_scores
from prunebench.pruning.sparse.registry import CRITERIA

AT_INIT = Field(True, description="score with BatchNorm batch statistics (default at initialisation)")


class SnipInitOptions(SnipOptions):
    train_mode: bool = AT_INIT


class GraspInitOptions(GraspOptions):
    train_mode: bool = AT_INIT


@CRITERIA.register("random", label="random")
def random(model: nn.Module, state: PruningState, ctx: PruneContext) -> dict[str, Tensor]:
    """Uniform random scores: every weight of a layer is equally likely to be kept."""
    return random_scores(state.masks, ctx.generator("cpu"))


@CRITERIA.register("magnitude", label="magnitude")
def magnitude(model: nn.Module, state: PruningState, ctx: PruneContext) -> dict[str, Tensor]:
    """|w| at initialisation: keep the largest initial weights."""
    return {k: w.detach().abs() for k, w in state.weights().items()}


@CRITERIA.register("snip", options=SnipInitOptions, data_informed=True, label="SNIP")
def snip(model: nn.Module, state: PruningState, ctx: PruneContext) -> dict[str, Tensor]:
    """Connection sensitivity |w * dL/dw| at initialisation."""
    return snip_scores(model, state, ctx, "snip criterion")


@CRITERIA.register("grasp", options=GraspInitOptions, data_informed=True, label="GraSP")
def grasp(model: nn.Module, state: PruningState, ctx: PruneContext) -> dict[str, Tensor]:
    """Gradient-flow preservation: keep the lowest GraSP scores (score = their negation)."""
    return {k: -s for k, s in grasp_layer_scores(model, state, ctx, "grasp criterion").items()}
