"""Structured allocation apart from importance: every structured method with every allocation policy
it accepts reaches the ratio with whole channels; policies are chosen by name and pluggable."""
from __future__ import annotations

import pytest
import torch

from prunebench.errors import UserError
from prunebench.models import create_model
from prunebench.pruning import METHODS, PruneContext, PruningState
from prunebench.pruning.structured_allocation import ALLOCATIONS, ChannelScores, register_allocation, uniform

STRUCTURED = [n for n in METHODS.names() if METHODS.spec(n).structured]
FAST = {"num_samples": 8, "batch_size": 8}


def _run(method: str, data, ratio: float = 0.5, **options) -> PruningState:
    torch.manual_seed(0)
    model = create_model("lenet5", in_channels=1, image_size=28).eval()
    fast = {k: v for k, v in FAST.items() if k in METHODS.spec(method).options.model_fields}
    state = PruningState.dense(model)
    state.update(METHODS.get(method)(model, state, ratio, PruneContext(data=data, seed=1, options={**fast, **options})))
    return state


def _kept_channels(state: PruningState) -> dict[str, int]:
    return {k: int(m.reshape(m.shape[0], -1).any(1).sum()) for k, m in state.masks.items()}


@pytest.mark.parametrize("method", STRUCTURED)
def test_every_accepted_policy_reaches_the_ratio(fmnist, method: str) -> None:
    spec = METHODS.spec(method)
    default = spec.options().allocation
    assert default in ALLOCATIONS
    results = {}
    for name in sorted(ALLOCATIONS):
        try:
            spec.parse_options({"allocation": name})
        except UserError as e:  # only a method that supplies its own counts takes error-tolerance
            assert name == "error-tolerance" and "\n" not in str(e) and method in str(e)
            continue
        state = _run(method, fmnist, allocation=name)
        assert abs(state.prune_ratio() - 0.5) <= 0.0025, (name, state.prune_ratio())
        results[name] = _kept_channels(state)
    assert len(results) >= 2
    # the policies really allocate differently: per-layer channel counts differ from the default's
    assert any(results[name] != results[default] for name in results if name != default)
    with pytest.raises(UserError, match="unknown structured allocation 'nope'"):
        spec.parse_options({"allocation": "nope"})


def test_a_new_policy_is_one_function(fmnist) -> None:
    """A policy registered by name is accepted by the options and used by every structured method."""
    calls = []

    @register_allocation("test-uniform")
    def traced(prob, scores: ChannelScores, round_to: int):
        calls.append(scores.score.shape)
        return uniform(prob, scores, round_to)

    try:
        with pytest.raises(ValueError, match="registered twice"):
            register_allocation("test-uniform")(traced)
        same = _run("ft", fmnist, allocation="test-uniform")
        assert calls and same.masks.keys() == _run("ft", fmnist).masks.keys()
        assert all(torch.equal(same.masks[k], m) for k, m in _run("ft", fmnist).masks.items())
    finally:
        del ALLOCATIONS["test-uniform"]
