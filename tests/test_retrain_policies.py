"""Retraining policies and the retraining-LR axis (issue 13, item 3): per-method recipe changes, one pipeline per LR."""
from __future__ import annotations

import pytest
from helpers import SMOKE

from prunebench.errors import UserError
from prunebench.study.loader import load_config
from prunebench.study.plan import plan


class Info:
    in_channels, num_classes, image_size = 1, 10, (28, 28)


def _prunes(cfg: dict) -> list:
    return [c for c in plan(load_config(cfg), Info()) if c.kind == "prune"]


def test_lr_axis_makes_one_pipeline_per_learning_rate() -> None:
    cells = _prunes({**SMOKE, "retrain_lrs": [0.001, 0.01, 0.1]})
    by = {}
    for c in cells:
        by.setdefault(c.labels["method"], []).append(c)
    assert sorted(by) == sorted(f"{m}-lr{lr}" for m in ("wt", "ft") for lr in ("0.001", "0.01", "0.1"))
    for label, cs in by.items():
        lr = float(label.rsplit("-lr", 1)[1])
        assert all(c.config["retrain"]["lr"] == lr and c.config["retrain"]["epochs"] == 1 for c in cs)
        assert [c.labels["method_name"] for c in cs] == [label.split("-lr")[0]] * len(cs)
    assert len({c.key for c in cells}) == len(cells)  # every pipeline its own cells


def test_default_keys_unchanged_and_a_method_may_change_its_own_recipe() -> None:
    base = {c.labels["method"]: c.key for c in _prunes(SMOKE) if c.labels["cycle"] == 1}
    cells = _prunes({**SMOKE, "methods": ["wt", {"ft": {"retrain": {"lr": 0.001, "schedule": "constant"}}}]})
    first = {c.labels["method"]: c for c in cells if c.labels["cycle"] == 1}
    assert first["wt"].key == base["wt"]  # untouched method: same key as before
    assert first["ft"].key != base["ft"]
    assert first["ft"].config["retrain"]["lr"] == 0.001 and first["ft"].config["retrain"]["schedule"] == "constant"
    assert first["ft"].config["retrain"]["epochs"] == 1  # the study's retraining recipe otherwise


@pytest.mark.parametrize("change, needle", [
    ({"retrain_lrs": [0.0, 0.1]}, "retrain_lrs: [0.0, 0.1] must be distinct positive learning rates"),
    ({"retrain_lrs": [0.1, 0.1]}, "must be distinct positive"),
    ({"methods": [{"wt": {"retrain": {"lr": -1}}}]}, "methods (wt).retrain"),
    ({"methods": [{"wt": {"retrain": {"seed": 3}}}]}, "methods[0].retrain.seed"),
])
def test_bad_lr_axis_or_recipe_change_is_one_line(change: dict, needle: str) -> None:
    with pytest.raises(UserError) as e:
        load_config({**SMOKE, **change})
    assert needle in str(e.value) and "\n" not in str(e.value)
