"""Declared comparison setups (Wang et al. 2023, "Why is the State of Neural Network Pruning so Confusing?",
Sec. 4; shared/reference/study.md), checked before any cell runs.

``setup: S3.2`` in a study declares how its pipelines are compared; :func:`check_setup` refuses a study that
violates it with one line naming the pipeline and the field. What each setup requires of the compared
pipelines (every method x retraining recipe, and the scratch baselines):

* ``S1``: same dataset, network and prune ratios; ``S2``: S1 + the same base (parent) model. A study always
  satisfies both: one dataset, one model, shared ratios, and every pipeline starts from the same parents.
* ``S3.1``: S2 + the same number of retraining epochs; ``S3.2``: S3.1 + the same retraining LR schedule
  (optimizer, initial LR, schedule, milestones, gamma, warm-up, batch size).
* ``S4.1`` / ``S4.2``: S3.1 / S3.2 + the same pruning epochs / pruning LR schedule for methods that train while
  pruning. prunebench's methods prune in one step (no pruning epochs), so these equal S3.1 / S3.2.
* ``SX-A``: the same total epochs (pretraining + pruning + retraining): pipelines retrain alike, and scratch
  baselines, if any, are the SX-A ones (same total epochs).
* ``SX-B``: the same total FLOPs: pipelines retrain alike, and scratch baselines, if any, are the SX-B ones
  (epochs = K1 x F1 / F2 + K2, so that their FLOPs equal the pruned pipeline's K1 F1 + K2 F2).
Scratch baselines of a setup other than the declared one (e.g. S3 scratch under SX-A) are refused: they would
be compared under unequal budgets.
"""
from __future__ import annotations

from typing import Any

from prunebench.errors import UserError

SETUPS = ("S1", "S2", "S3.1", "S3.2", "S4.1", "S4.2", "SX-A", "SX-B")
SCHEDULE = ("optimizer", "lr", "schedule", "milestones", "gamma", "warmup_epochs", "batch_size")
# which retraining fields must agree, and which scratch setups may be compared, under each declared setup
_RETRAIN_FIELDS = {"S1": (), "S2": (), "S3.1": ("epochs",), "S3.2": ("epochs", *SCHEDULE), "S4.1": ("epochs",),
                   "S4.2": ("epochs", *SCHEDULE), "SX-A": ("epochs",), "SX-B": ("epochs",)}
_SCRATCH_OK = {"S1": ("S3", "SX-A", "SX-B"), "S2": ("S3", "SX-A", "SX-B"), "S3.1": ("S3",), "S3.2": ("S3",),
               "S4.1": ("S3",), "S4.2": ("S3",), "SX-A": ("SX-A",), "SX-B": ("SX-B",)}


def describe(setup: str) -> str:
    """One sentence for the report: what the declared setup holds equal."""
    return {"S1": "same dataset, network and prune ratios",
            "S2": "S1 + the same base (parent) model",
            "S3.1": "S2 + the same retraining epochs",
            "S3.2": "S2 + the same retraining epochs and LR schedule",
            "S4.1": "S3.1 + the same pruning epochs (none: prunebench prunes in one step)",
            "S4.2": "S3.2 + the same pruning epochs and LR schedule (none: prunebench prunes in one step)",
            "SX-A": "the same total epochs (pretraining + retraining), scratch baselines included",
            "SX-B": "the same total FLOPs (scratch epochs = K1 F1 / F2 + K2)"}[setup]


def _value(recipe: Any, field: str) -> Any:
    v = getattr(recipe, field)
    return list(v) if isinstance(v, tuple) else v


def check_setup(cfg: Any, where: str = "config") -> None:
    """Refuse (UserError, one line naming pipeline and field) a study that violates its declared ``setup``."""
    setup = cfg.setup
    if setup is None:
        return
    if cfg.mode == "sparse-train":
        raise UserError(f"{where}: setup: comparison setups apply to prune-retrain studies (cascade / oneshot); "
                        "remove setup")
    pipes = cfg.pipelines()
    first_m, first_tag, first = pipes[0]
    for _, tag, recipe in pipes[1:]:
        for field in _RETRAIN_FIELDS[setup]:
            a, b = _value(first, field), _value(recipe, field)
            if a != b:
                raise UserError(f"{where}: setup {setup}: pipeline {tag!r} retrains with {field} = {b!r} but "
                                f"{first_tag!r} with {a!r}; {setup} requires the same retraining {field} for every "
                                "pipeline (change the recipe or declare a weaker setup)")
    bad = [s for s in (cfg.scratch or ()) if s not in _SCRATCH_OK[setup]]
    if bad:
        raise UserError(f"{where}: setup {setup}: scratch baseline {bad[0]!r} is not trained under {setup} "
                        f"(its epochs differ); use scratch: [{', '.join(_SCRATCH_OK[setup])}] or remove it")
