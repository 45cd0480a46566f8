"""Declared comparison setups (issue 13, item 2): each accepts a conforming study and refuses each violation."""
from __future__ import annotations

import pytest
from helpers import SMOKE

from prunebench.errors import UserError
from prunebench.study.loader import load_config
from prunebench.study.setups import SETUPS

LR = {"methods": ["wt", {"ft": {"retrain": {"lr": 0.001}}}]}  # same epochs, another LR
EPOCHS = {"methods": ["wt", {"ft": {"retrain": {"epochs": 3}}}]}  # another retraining budget
SWEEP = {"retrain_lrs": [0.001, 0.01]}


@pytest.mark.parametrize("setup, change", [
    *[(s, {}) for s in SETUPS],  # the smoke study (one recipe for both methods) conforms to every setup
    ("S1", EPOCHS), ("S2", EPOCHS), ("S3.1", LR), ("S4.1", LR), ("S3.1", SWEEP),
    ("S3.2", {"scratch": ["S3"]}), ("SX-A", {"scratch": ["SX-A"]}), ("SX-B", {"scratch": ["SX-B"]}),
    ("S2", {"scratch": ["S3", "SX-A", "SX-B"]}),
])
def test_conforming_studies_are_accepted(setup: str, change: dict) -> None:
    assert load_config({**SMOKE, "setup": setup, **change}).setup == setup


@pytest.mark.parametrize("setup, change, needle", [
    ("S3.1", EPOCHS, "setup S3.1: pipeline 'ft' retrains with epochs = 3 but 'wt' with 1"),
    ("S3.2", EPOCHS, "pipeline 'ft' retrains with epochs = 3"),
    ("S3.2", LR, "setup S3.2: pipeline 'ft' retrains with lr = 0.001 but 'wt' with 0.02"),
    ("S4.2", LR, "setup S4.2: pipeline 'ft' retrains with lr = 0.001"),
    ("S3.2", SWEEP, "setup S3.2: pipeline 'wt-lr0.01' retrains with lr = 0.01 but 'wt-lr0.001' with 0.001"),
    ("SX-A", EPOCHS, "setup SX-A: pipeline 'ft' retrains with epochs = 3"),
    ("SX-A", {"scratch": ["S3"]}, "setup SX-A: scratch baseline 'S3' is not trained under SX-A"),
    ("SX-B", {"scratch": ["SX-A"]}, "use scratch: [SX-B]"),
    ("S3.1", {"scratch": ["SX-B"]}, "scratch baseline 'SX-B' is not trained under S3.1"),
    ("S5", {}, "unknown comparison setup 'S5'; choose one of S1, S2, S3.1"),
])
def test_violations_are_refused_naming_pipeline_and_field(setup: str, change: dict, needle: str) -> None:
    with pytest.raises(UserError) as e:
        load_config({**SMOKE, "setup": setup, **change})
    assert needle in str(e.value) and "\n" not in str(e.value), str(e.value)


def test_report_states_the_setup(tmp_path) -> None:
    from prunebench.report import render_report

    rows = [{"model_key": "p", "kind": "parent", "method": "parent", "rep": 0, "target_ratio": 0.0,
             "prune_ratio": 0.0, "nominal/acc/nominal": 0.9}]
    _, md = render_report(rows, tmp_path, config_text="name: x\nsetup: S3.2\n")
    assert "Comparison setup S3.2 (Wang et al. 2023): S2 + the same retraining epochs and LR schedule" in md.read_text()
