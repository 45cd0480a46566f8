"""The "Who pays for pruning" report section's figures: the data they show (known cases) and when they appear."""
from __future__ import annotations

import base64
import io
import subprocess
import sys

import numpy as np
import pytest

from prunebench.report.content import Image, Table
from prunebench.report.whopays import who_pays_section
from prunebench.report.whopays_plots import heat_matrix, pie_curves
from prunebench.study.whopays import WhoPays


def _rec(method: str, ratio: float, ci: int, delta: float, verdict: str = "within", dist: str = "nominal") -> dict:
    return {"method": method, "target_ratio": ratio, "distribution": dist, "class": f"k{ci}", "class_index": ci,
            "n_examples": 50, "repetitions": 1, "parent_acc": 0.9, "pruned_acc": 0.9 - delta, "delta": delta,
            "low": delta - 0.01, "high": delta + 0.01, "level": 0.95, "verdict": verdict}


PER_CLASS = [_rec("a", 0.8, 0, 0.10, "beyond"), _rec("a", 0.5, 0, 0.02), _rec("a", 0.5, 2, -0.03),
             _rec("a", 0.8, 2, 0.04), _rec("b", 0.5, 1, 0.06), _rec("a", 0.5, 1, 0.5, dist="fog-3")]
PIES = [{"method": m, "target_ratio": t, "distribution": d, "fraction": f, "count": int(500 * f), "n_examples": 500,
         "definition": "changed (one repetition)", "parent_acc_pie": 0.5, "parent_acc_rest": 0.9, "pruned_acc_pie": 0.4,
         "pruned_acc_rest": 0.9, "repetitions": 1, "indices": []}
        for m, t, d, f in [("b", 0.8, "nominal", 0.2), ("b", 0.5, "nominal", 0.1), ("a", 0.5, "nominal", 0.05),
                           ("a", 0.5, "fog-3", 0.3)]]


def test_heat_matrix_rows_are_classes_columns_ratios() -> None:
    m = heat_matrix(PER_CLASS, "nominal", "a")
    assert m is not None and m.classes == ("k0", "k1", "k2") and m.ratios == (0.5, 0.8)
    # k1 only has a record for method b: a NaN row, so every method's map has the same rows
    expect = np.array([[0.02, 0.10], [np.nan, np.nan], [-0.03, 0.04]])
    assert np.allclose(m.values, expect, equal_nan=True)
    assert m.beyond.tolist() == [[False, True], [False, False], [False, False]]
    b = heat_matrix(PER_CLASS, "nominal", "b")
    assert b is not None and b.ratios == (0.5,) and np.isnan(b.values[[0, 2], 0]).all() and b.values[1, 0] == 0.06
    assert heat_matrix(PER_CLASS, "nominal", "c") is None and heat_matrix(PER_CLASS, "gone", "a") is None


def test_pie_curves_per_distribution_and_method() -> None:
    assert pie_curves(PIES) == {"nominal": {"a": [(0.5, 0.05)], "b": [(0.5, 0.1), (0.8, 0.2)]},
                                "fog-3": {"a": [(0.5, 0.3)]}}


def test_figure_data_needs_no_torch() -> None:
    code = ("import sys; from prunebench.report.whopays_plots import heat_matrix, pie_curves; "
            "import prunebench.report.whopays; assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def _images(section) -> list[Image]:
    return [b for b in section.blocks if isinstance(b, Image)]


def test_section_has_the_figures_when_there_are_data() -> None:
    from PIL import Image as PILImage

    sec = who_pays_section(WhoPays(PER_CLASS, [], PIES, []), "nominal", {"a": "#ff0000", "b": "#0000ff"})
    imgs = _images(sec)
    assert len(imgs) == 2 and "per-class Delta" in imgs[0].caption and "PIE fraction" in imgs[1].caption
    for im in imgs:  # real PNGs with a sensible size
        png = PILImage.open(io.BytesIO(base64.b64decode(im.uri.split(",", 1)[1])))
        assert png.format == "PNG" and png.size[0] > 200 and png.size[1] > 150
    assert any(isinstance(b, Table) for b in sec.blocks)  # the tables stay


@pytest.mark.parametrize("wp", [WhoPays(), WhoPays(missing="no predictions recorded")])
def test_section_has_no_figures_without_data(wp) -> None:
    assert _images(who_pays_section(wp, "nominal")) == []
