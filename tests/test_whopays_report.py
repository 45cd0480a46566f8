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


def _pie(indices, labels, parent, pruned) -> dict:
    return {**PIES[0], "count": len(indices), "fraction": len(indices) / 500, "indices": list(indices),
            "labels": list(labels), "parent_pred": list(parent), "pruned_pred": list(pruned)}


def test_pie_tiles_put_what_pruning_broke_first() -> None:
    from prunebench.report.whopays_pies import Tile, pie_tiles

    rec = _pie([3, 5, 8, 9], [0, 1, 2, 1], [1, 1, 2, 0], [0, 2, 0, 2])
    # index 5 and 8: parent right, pruned wrong (first, in split order); 3: pruning fixed it; 9: both wrong
    tiles = pie_tiles(rec, ["zero", "one", "two"])
    assert [t.index for t in tiles] == [5, 8, 3, 9]
    assert tiles[0] == Tile(5, "one", "one", "two") and tiles[2] == Tile(3, "zero", "one", "zero")
    assert "true: one" in tiles[0].title and "pruned: two" in tiles[0].title
    assert len(pie_tiles(_pie(range(30), [0] * 30, [0] * 30, [1] * 30), ["a", "b"])) == 16


@pytest.mark.parametrize(("data", "why"), [(None, "names no dataset"), ({"name": "no-such-set"}, "no-such-set")])
def test_unloadable_dataset_gives_a_one_line_note(data, why) -> None:
    wp = WhoPays(PER_CLASS, [], [_pie([1, 2], [0, 1], [0, 1], [1, 0])], [], ("k0", "k1"), data=data)
    sec = who_pays_section(wp, "nominal", {"a": "#ff0000", "b": "#0000ff"})
    notes = [b.text for b in sec.blocks if getattr(b, "style", "") == "note"]
    assert len(notes) == 1 and "not shown" in notes[0] and why in notes[0]
    assert len(_images(sec)) == 2  # heat map and PIE fraction; no grid


def test_grid_refuses_a_test_split_with_other_labels() -> None:
    from prunebench.data import load_dataset
    from prunebench.report.whopays_pies import pie_grid_blocks

    y = load_dataset("fashion-mnist", test_limit=20).test.y.numpy()
    spec = {"name": "fashion-mnist", "test_limit": 20}
    good = WhoPays(pies=[_pie([2, 7], y[[2, 7]], y[[2, 7]], (y[[2, 7]] + 1) % 10)], classes=(), data=spec)
    blocks = pie_grid_blocks(good, "nominal")
    assert isinstance(blocks[0], Image) and blocks[1].rows[0][:2] == ["2", f"class {y[2]}"]
    bad = WhoPays(pies=[_pie([2, 7], (y[[2, 7]] + 1) % 10, y[[2, 7]], y[[2, 7]])], data=spec)
    (note,) = pie_grid_blocks(bad, "nominal")
    assert "does not carry the labels the study recorded" in note.text


def test_heat_map_of_many_classes_keeps_the_classes_that_lost_most() -> None:
    from prunebench.report.whopays_plots import HeatMatrix, top_rows

    n = 40
    vals = np.zeros((n, 2))
    vals[[3, 17, 39], 1] = [0.05, 0.02, 0.09]  # the three classes that lost
    vals[5, 0] = np.nan
    a = HeatMatrix("wt", tuple(f"c{i}" for i in range(n)), (0.5, 0.9), vals, np.zeros((n, 2), bool))
    b = HeatMatrix("ft", a.classes, (0.5,), np.full((n, 1), -0.01), np.zeros((n, 1), bool))
    kept, total = top_rows([a, b], limit=5)
    assert total == 40 and [len(m.classes) for m in kept] == [5, 5]
    assert {"c3", "c17", "c39"} <= set(kept[0].classes) and kept[0].classes == kept[1].classes
    assert list(kept[0].classes) == sorted(kept[0].classes, key=lambda c: int(c[1:]))  # class order kept
    assert kept[0].values[kept[0].classes.index("c39"), 1] == 0.09
    same, total = top_rows([a], limit=40)
    assert same[0] is a and total == 40
