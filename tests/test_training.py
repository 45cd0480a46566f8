"""The trainer on real Fashion-MNIST: it learns, stays deterministic, restores the best validation
epoch, calls step callbacks after every optimizer step, and stops clearly on a diverging loss."""
from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from prunebench.models import create_model
from prunebench.training import TrainConfig, TrainingDiverged, evaluate_split, train


def lenet(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_model("lenet5", in_channels=1, num_classes=10, image_size=28)


@pytest.mark.slow
def test_lenet5_learns_fashion_mnist(fmnist) -> None:
    """A broken pipeline (labels shuffled, normalization off, no optimizer step) cannot reach 85%."""
    model = lenet()
    result = train(model, fmnist, TrainConfig(epochs=8, batch_size=64, lr=0.05), progress=False)
    test = evaluate_split(model, fmnist.test, fmnist.info)
    assert test["acc"] >= 0.85, test
    assert len(result.history) == 8 and result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert result.images_per_s > 0


def test_deterministic_and_best_epoch_restored(fmnist) -> None:
    small = fmnist.__class__(fmnist.info, fmnist.train.subset(slice(0, 1000)), fmnist.val.subset(slice(0, 500)), fmnist.test)
    cfg = TrainConfig(epochs=2, batch_size=100, lr=0.05)
    a, b = lenet(), lenet()
    ra, rb = train(a, small, cfg, progress=False), train(b, small, cfg, progress=False)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    assert ra.history == [{**h, "seconds": ra.history[i]["seconds"], "images_per_s": ra.history[i]["images_per_s"]}
                          for i, h in enumerate(rb.history)]
    # The model ends at the best-validation epoch, whose val accuracy is reproduced exactly.
    assert evaluate_split(a, small.val, small.info)["acc"] == pytest.approx(ra.best_val_acc)
    assert ra.best_val_acc == max(h["val_acc"] for h in ra.history)


def test_step_callback_sees_every_step(fmnist) -> None:
    small = fmnist.__class__(fmnist.info, fmnist.train.subset(slice(0, 640)), fmnist.val.subset(slice(0, 100)), fmnist.test)
    model = lenet()
    first = next(model.parameters())

    class ZeroFirstRow:
        steps: list[int] = []
        epochs: list[int] = []

        def on_step(self, step: int) -> None:
            self.steps.append(step)
            with torch.no_grad():
                first[0].zero_()

        def on_epoch_end(self, epoch: int, metrics: dict) -> None:
            self.epochs.append(epoch)

    cb = ZeroFirstRow()
    train(model, small, TrainConfig(epochs=2, batch_size=64, lr=0.1), callbacks=[cb], progress=False)
    assert cb.steps == list(range(1, 21)) and cb.epochs == [1, 2]
    assert torch.count_nonzero(first[0]) == 0  # what the callback enforces survives to the end


def test_divergence_is_a_clear_error(fmnist) -> None:
    small = fmnist.__class__(fmnist.info, fmnist.train.subset(slice(0, 512)), fmnist.val.subset(slice(0, 100)), fmnist.test)
    with pytest.raises(TrainingDiverged, match="lower the learning rate"):
        train(lenet(), small, TrainConfig(epochs=1, batch_size=64, lr=1e6, weight_decay=0), progress=False)


def test_schedules() -> None:
    cos = TrainConfig(epochs=10, warmup_epochs=2)
    assert cos.lr_factor(1.0) == pytest.approx(0.5, rel=1e-6)
    assert cos.lr_factor(2.0) == pytest.approx(1.0) and cos.lr_factor(10.0) == pytest.approx(0.0, abs=1e-9)
    step = TrainConfig(epochs=10, schedule="multistep", milestones=(5, 8), gamma=0.1)
    assert [step.lr_factor(e) for e in (0, 4.9, 5, 8)] == pytest.approx([1, 1, 0.1, 0.01])
    assert TrainConfig(schedule="constant").lr_factor(7) == 1.0
    for bad in ({"schedule": "multistep"}, {"lr": -1}, {"epochs": 2, "warmup_epochs": 3}, {"bogus": 1},
                {"milestones": (5, 3), "schedule": "multistep"}):
        with pytest.raises(ValidationError):
            TrainConfig(**bad)
