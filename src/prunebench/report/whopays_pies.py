"""The picture grid of the top PIEs in the "Who pays for pruning" section.

For the most affected method and ratio (the largest PIE fraction on the reference distribution), up to 16
test images that are PIEs, each titled with its true label and the parents' and the pruned models' modal
predictions. The images come from the test split of the dataset the study used (the plan's data spec, read
through :func:`prunebench.study.cells.get_dataset`), loaded only when the section is rendered; when it cannot
be loaded, or its labels are not the recorded ones, the section says so in one line instead.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from prunebench.errors import UserError
from prunebench.report import plots as P
from prunebench.report.content import Image, Table, Text, pct

MAX_TILES = 16


@dataclass(frozen=True)
class Tile:
    """One PIE of the grid: its index in the test split, the true class and both modal predictions (names)."""

    index: int
    true: str
    parent: str
    pruned: str

    @property
    def title(self) -> str:
        return f"#{self.index} true: {self.true}\nparent: {self.parent}\npruned: {self.pruned}"


def most_affected(pies: Sequence[Mapping[str, Any]], reference: str | None) -> Mapping[str, Any] | None:
    """The PIE record with the largest PIE fraction on ``reference`` (else on the first distribution with PIE
    records); ties go to the first in (method, ratio) order. None when no record there has a PIE."""
    dists = list(dict.fromkeys(r["distribution"] for r in pies))
    dist = reference if reference in dists else (dists[0] if dists else None)
    recs = sorted((r for r in pies if r["distribution"] == dist and r["count"] > 0 and r.get("parent_pred")),
                  key=lambda r: (r["method"], r["target_ratio"]))
    return max(recs, key=lambda r: r["fraction"]) if recs else None


def _name(names: Sequence[str], c: int) -> str:
    return names[c] if 0 <= c < len(names) else f"class {c}"


def pie_tiles(rec: Mapping[str, Any], names: Sequence[str], limit: int = MAX_TILES) -> list[Tile]:
    """Up to ``limit`` PIEs of one record: first those where the parents were right and the pruned models wrong
    (what pruning broke), then the rest, each group in test-split order."""
    rows = list(zip(rec["indices"], rec["labels"], rec["parent_pred"], rec["pruned_pred"], strict=True))
    broke = [r for r in rows if r[2] == r[1] != r[3]]
    other = [r for r in rows if not r[2] == r[1] != r[3]]
    return [Tile(int(i), _name(names, int(y)), _name(names, int(p)), _name(names, int(q)))
            for i, y, p, q in (broke + other)[:limit]]


def load_pie_images(spec: Mapping[str, Any], indices: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Images (k, H, W, C) uint8 and labels (k,) of the given test-split indices of the study's dataset."""
    from prunebench.study.cells import get_dataset

    test = get_dataset(dict(spec)).test
    idx = np.asarray(indices, np.int64)
    if len(idx) and idx.max() >= len(test):
        raise ValueError(f"PIE index {int(idx.max())} beyond the {len(test)} test images")
    return test.x[idx].permute(0, 2, 3, 1).numpy(), test.y[idx].numpy()


def tile_figure(images: np.ndarray, tiles: Sequence[Tile]) -> str:
    """A grid (4 per row) of the images, each titled with true label, parent and pruned prediction."""
    fig, axes, _, _ = P._grid(len(tiles), 4, 2.0, 2.55)
    for ax, img, t in zip(axes, images, tiles, strict=True):
        ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray" if img.shape[-1] == 1 else None,
                  vmin=0, vmax=255, interpolation="nearest")
        ax.set_title(t.title, fontsize=7, color="#c62828" if t.parent == t.true != t.pruned else "black")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("red: the parents were right, the pruned models wrong; #: index in the test split", fontsize=8)
    return P.to_data_uri(fig)


def pie_grid_blocks(wp: Any, reference: str | None) -> list[Any]:
    """The grid (an image and a table of the same tiles), a one-line note when the images cannot be shown, or
    nothing when no method has a PIE with recorded predictions."""
    rec = most_affected(wp.pies, reference)
    if rec is None:
        return []
    where = f"{rec['method']} at {pct(rec['target_ratio'], 0)}% on {rec['distribution']}"
    tiles = pie_tiles(rec, wp.classes)
    try:
        if not wp.data:
            raise ValueError("the run's plan names no dataset")
        images, labels = load_pie_images(wp.data, [t.index for t in tiles])
    except (UserError, ValueError, OSError, KeyError, TypeError, IndexError, RuntimeError) as e:
        return [Text(f"PIE images of {where} not shown: the test split could not be loaded ({e})", "note")]
    recorded = np.asarray(rec["labels"])[[rec["indices"].index(t.index) for t in tiles]]
    if not np.array_equal(labels, recorded):
        return [Text(f"PIE images of {where} not shown: the test split loaded now does not carry the labels the "
                     "study recorded (the dataset files changed)", "note")]
    caption = (f"PIEs of {where} ({rec['count']} PIEs, {pct(rec['fraction'], 2)}% of the test examples; "
               f"{rec['definition']}): up to {MAX_TILES}, first those the parents got right and pruning broke (red titles). "
               "Shown for the largest PIE fraction: this picks the examples to look at, it does not rank methods")
    table = Table(["test index", "true class", "parent (modal)", "pruned (modal)"],
                  [[str(t.index), t.true, t.parent, t.pruned] for t in tiles], f"The PIEs shown above, {where}",
                  collapsed=True)
    return [Image(tile_figure(images, tiles), caption), table]


__all__ = ["MAX_TILES", "Tile", "most_affected", "pie_grid_blocks", "pie_tiles", "load_pie_images", "tile_figure"]
