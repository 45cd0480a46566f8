"""A PNG picture of every corruption at every severity, for eyeballing them on real images."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from prunebench.atomic import atomic_path
from prunebench.errors import UserError
from prunebench.evaluation.corruptions.registry import SEVERITIES, corrupt, ordered_names


def _as_float_batch(images: torch.Tensor) -> torch.Tensor:
    if not isinstance(images, torch.Tensor):
        raise UserError(f"corruption_grid takes a tensor of images, got {type(images).__name__}")
    x = images.detach().cpu()
    if x.ndim == 3:  # (N, H, W) grey
        x = x.unsqueeze(1)
    if x.ndim == 4 and x.shape[1] not in (1, 3) and x.shape[-1] in (1, 3):  # (N, H, W, C)
        x = x.permute(0, 3, 1, 2)
    if x.dtype == torch.uint8:
        x = x.float() / 255
    return x.float()


def corruption_grid(images_uint8_or_01: torch.Tensor, out_path: str | Path, seed: int = 0, *,
                    n_images: int = 4, names: Sequence[str] | None = None, dpi: int = 100) -> Path:
    """Write a PNG grid: one row per corruption, columns clean + severities 1..5, each cell the
    first ``n_images`` images side by side. Images: uint8 or float [0, 1], (N, C, H, W), (N, H, W)
    or (N, H, W, C). Uses matplotlib's Agg canvas directly (no global backend switch)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    x = _as_float_batch(images_uint8_or_01)[:n_images]
    if len(x) == 0:
        raise UserError("corruption_grid needs at least one image")
    names = list(names) if names is not None else ordered_names()
    k, c, h, w = x.shape
    sep = torch.full((c, h, 1), 0.5)

    def strip(batch: torch.Tensor) -> torch.Tensor:  # (k, C, H, W) -> (H, k*W + k-1, C)
        parts = []
        for i, img in enumerate(batch):
            parts += [img] if i == 0 else [sep, img]
        return torch.cat(parts, -1).permute(1, 2, 0)

    cols = ["clean"] + [f"severity {s}" for s in SEVERITIES]
    cell_w = (k * w + k - 1) / 28 * 0.55
    fig = Figure(figsize=(0.9 + cell_w * len(cols), 0.25 + 0.6 * h / 28 * len(names)))
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(names), len(cols), squeeze=False, gridspec_kw={"wspace": 0.04, "hspace": 0.08})
    for r, name in enumerate(names):
        cells = [x] + [corrupt(x, name, s, seed) for s in SEVERITIES]
        for col, cell in enumerate(cells):
            ax = axes[r][col]
            img = strip(cell).numpy()
            if c == 1:
                ax.imshow(img[..., 0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            else:
                ax.imshow(img.clip(0, 1), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(cols[col], fontsize=8)
            if col == 0:
                ax.set_ylabel(name, fontsize=7, rotation=0, ha="right", va="center")
    out = Path(out_path)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
    return out
