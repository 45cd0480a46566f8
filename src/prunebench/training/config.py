"""The training recipe as validated data (pydantic): the same object drives training, retraining and hashing."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class TrainConfig(BaseModel):
    """A training (or retraining) recipe. Defaults are a reasonable small-CPU recipe, not a paper's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: int = Field(10, ge=0, description="passes over the training split")
    batch_size: int = Field(128, ge=1)
    optimizer: Literal["sgd", "adamw"] = "sgd"
    lr: float = Field(0.05, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = True
    weight_decay: float = Field(5e-4, ge=0)
    schedule: Literal["cosine", "multistep", "constant"] = "cosine"
    milestones: tuple[float, ...] = Field((), description="multistep: epochs at which the LR is multiplied by gamma")
    gamma: float = Field(0.1, gt=0, le=1)
    warmup_epochs: float = Field(0.0, ge=0, description="linear warm-up from 0 over this many epochs")
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    grad_clip: float | None = Field(None, gt=0, description="max gradient norm; off by default")
    augment: bool = True
    amp: bool = Field(True, description="bfloat16 autocast, used only on CUDA")
    compile: bool = Field(False, description="torch.compile the model")
    select_best: bool = Field(True, description="restore the epoch with the best validation accuracy at the end")
    seed: int = 0

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.schedule == "multistep" and not self.milestones:
            raise ValueError("schedule 'multistep' needs milestones, e.g. milestones: [5, 8]")
        if list(self.milestones) != sorted(self.milestones):
            raise ValueError(f"milestones must be increasing, got {list(self.milestones)}")
        if self.epochs and self.warmup_epochs > self.epochs:
            raise ValueError(f"warmup_epochs ({self.warmup_epochs}) exceeds epochs ({self.epochs})")
        return self

    def lr_factor(self, epoch: float) -> float:
        """LR multiplier at a (fractional) epoch: linear warm-up, then the chosen schedule."""
        import math

        if self.warmup_epochs and epoch < self.warmup_epochs:
            return (epoch + 1e-8) / self.warmup_epochs
        if self.schedule == "constant":
            return 1.0
        if self.schedule == "multistep":
            return self.gamma ** sum(epoch >= m for m in self.milestones)
        span = max(self.epochs - self.warmup_epochs, 1e-8)
        progress = min(max((epoch - self.warmup_epochs) / span, 0.0), 1.0)
        return 0.5 * (1.0 + math.cos(math.pi * progress))
