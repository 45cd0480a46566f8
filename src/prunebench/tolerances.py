"""Numbers several layers share, defined once (torch-free, so the analysis can import them too).

``RATIO_TOLERANCE``: an achieved prune ratio within 0.5% (relative) of its target meets it; pruning
methods may round by that much (pruning/base.py), so the analysis treats prune-potential differences
below it as ties (analysis/findings.py).
``INFERENCE_BATCH``: images per forward pass when evaluating (speed and memory only, never results).
"""
from __future__ import annotations

RATIO_TOLERANCE = 0.005
INFERENCE_BATCH = 1000

__all__ = ["INFERENCE_BATCH", "RATIO_TOLERANCE"]
