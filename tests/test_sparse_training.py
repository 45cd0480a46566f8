"""Sparse training: static masks never move (optimizer steps, save / load); SET and RigL keep every layer's
active count and follow their drop / grow rules exactly."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from prunebench.models import create_model
from prunebench.pruning import PruningState
from prunebench.pruning.sparse import UPDATES, sparse_init
from prunebench.pruning.sparse.dynamic import DynamicSparsity
from prunebench.pruning.sparse.gradflow import gradient_norm
from prunebench.store import load_checkpoint, save_checkpoint
from prunebench.training import TrainConfig, train

RECIPE = TrainConfig(epochs=1, batch_size=128, lr=0.05, momentum=0.9)


def _masked_lenet(density: float = 0.1, seed: int = 0):
    torch.manual_seed(seed)
    model = create_model("lenet5", in_channels=1, num_classes=10, image_size=28)
    state, _ = sparse_init(model, density, criterion="random", scheme="erk", seed=seed)
    return model, state


def test_static_mask_is_fixed_through_training_and_save_load(fmnist, tmp_path) -> None:
    model, state = _masked_lenet()
    before = {k: m.clone() for k, m in state.masks.items()}
    w0 = {k: w.detach().clone() for k, w in state.weights().items()}
    train(model, fmnist, RECIPE, callbacks=[state], progress=False)
    state.verify(model)  # every masked weight is exactly zero after real optimizer steps
    for k, m in state.masks.items():
        assert torch.equal(m, before[k]), k
        w = dict(model.named_parameters())[k].detach()
        assert int(w[~m].count_nonzero()) == 0
        assert not torch.equal(w[m], w0[k][m])  # the kept weights did train
    path = save_checkpoint(tmp_path / "m.safetensors", model, {"model": "lenet5", "model_kwargs":
                           {"in_channels": 1, "num_classes": 10, "image_size": 28}}, masks=dict(state.masks))
    ck = load_checkpoint(path)
    for k, m in before.items():
        assert torch.equal(ck.masks[k].bool(), m)
        assert int(dict(ck.model.named_parameters())[k].detach()[~m].count_nonzero()) == 0


class CountingDST(DynamicSparsity):
    """Records every layer's active count right after each update (the property under test)."""

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.counts: list[dict[str, int]] = []

    def update(self, step: int) -> int:
        moved = super().update(step)
        self.counts.append({k: int(m.sum()) for k, m in self.state.masks.items()})
        return moved


@pytest.mark.parametrize("rule", UPDATES.names())
def test_dynamic_rules_keep_the_exact_active_count_at_every_update(rule: str, fmnist) -> None:
    model, state = _masked_lenet()
    start = {k: int(m.sum()) for k, m in state.masks.items()}
    first = {k: m.clone() for k, m in state.masks.items()}
    cb = CountingDST(state, rule, seed=0, options={"update_every": 4, "fraction": 0.3})
    train(model, fmnist, RECIPE, callbacks=[cb], progress=False)
    steps = cb.total_steps  # from the trainer's on_start
    assert steps == len(fmnist.train) // RECIPE.batch_size
    assert len(cb.counts) == len([s for s in range(1, steps + 1) if s % 4 == 0 and s < 0.75 * steps])
    assert all(c == start for c in cb.counts)
    assert sum(h["moved"] for h in cb.history) > 0
    assert any(not torch.equal(first[k], state.masks[k]) for k in first)  # the mask did move
    state.verify(model)


def test_update_fraction_decays_as_a_cosine_to_t_end() -> None:
    model, state = _masked_lenet()
    cb = DynamicSparsity(state, "set", options={"fraction": 0.4, "end": 0.5})
    cb.on_start(torch.optim.SGD(model.parameters(), lr=0.1), 1000)
    assert cb.fraction(0) == pytest.approx(0.4)
    assert cb.fraction(250) == pytest.approx(0.2)  # alpha/2 (1 + cos(pi/2))
    assert cb.fraction(499) > 0 and cb.fraction(500) == 0.0


def test_rigl_drops_smallest_magnitude_and_regrows_largest_gradient_by_hand() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 2, bias=False))
    w = model[0].weight
    with torch.no_grad():
        w.copy_(torch.tensor([[0.5, -0.1, 0.0, 0.0], [0.0, 0.3, -0.2, 0.0]]))
    mask = torch.tensor([[True, True, False, False], [False, True, True, False]])
    state = PruningState(model, {"0.weight": mask})
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    w.grad = torch.tensor([[0.0, 0.0, 0.7, -0.9], [0.05, 0.0, 0.0, 0.8]])
    opt.step()  # creates a momentum buffer to be reset where connections grow
    with torch.no_grad():
        w.copy_(torch.tensor([[0.5, -0.1, 0.0, 0.0], [0.0, 0.3, -0.2, 0.0]]))  # keep the hand-set weights
    cb = DynamicSparsity(state, "rigl", options={"fraction": 0.5, "decay": "constant", "update_every": 1})
    cb.on_start(opt, 10)
    moved = cb.update(1)
    # 4 active -> k = 0.5 * 4 = 2: drop |w| = 0.1 and 0.2 ((0,1) and (1,2)); grow the two largest |grad| among the
    # inactive (0,2) 0.7, (0,3) 0.9, (1,0) 0.05, (1,3) 0.8: (0,3) and (1,3)
    want = torch.tensor([[True, False, False, True], [False, True, False, True]])
    assert moved == 2
    assert torch.equal(state.masks["0.weight"], want)
    assert float(w.detach()[0, 3]) == 0.0 and float(w.detach()[1, 3]) == 0.0  # grown weights start at zero
    buf = opt.state[w]["momentum_buffer"]
    assert float(buf[0, 3]) == 0.0 and float(buf[1, 3]) == 0.0 and float(buf[0, 2]) != 0.0  # reset where grown only


def test_set_regrows_only_among_previously_inactive_connections() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(50, 40, bias=False))
    state, _ = sparse_init(model, 0.2, scheme="uniform", seed=0)
    before = state.masks["0.weight"].clone()
    w = model[0].weight
    small = w.detach().abs().masked_fill(~before, float("inf")).flatten().argsort()[: int(0.3 * int(before.sum()))]
    cb = DynamicSparsity(state, "set", options={"fraction": 0.3, "decay": "constant"})
    cb.on_start(torch.optim.SGD(model.parameters(), lr=0.1), 100)
    cb.update(1)
    after = state.masks["0.weight"]
    grown = after & ~before
    dropped = before & ~after
    assert int(grown.sum()) == int(dropped.sum()) == len(small)
    assert set(dropped.flatten().nonzero().flatten().tolist()) == set(small.tolist())  # the smallest |w| went
    assert not (grown & before).any()  # nothing dropped now was regrown now


def test_gradient_norm_at_init_counts_only_unmasked_weights(fmnist) -> None:
    model, state = _masked_lenet(0.1)
    masked = gradient_norm(model, fmnist, state=state, n=64)
    whole = gradient_norm(model, fmnist, n=64)
    assert 0 < masked < whole  # masked connections' gradients are discarded
    assert gradient_norm(model, fmnist, state=state, n=64) == masked  # seeded: the same batch
