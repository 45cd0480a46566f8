"""Pruning methods: importing this package registers every method in ``METHODS``.

One file per method (or family); a new method is one file plus one import line here.
"""
from prunebench.pruning.methods import wt  # noqa: F401  (unstructured: global magnitude)
from prunebench.pruning.methods import sipp  # noqa: F401  (unstructured: deterministic SiPP)
from prunebench.pruning.methods import snip  # noqa: F401  (unstructured: SNIP criterion)
from prunebench.pruning.methods import grasp  # noqa: F401  (unstructured: GraSP criterion)
from prunebench.pruning.methods import random  # noqa: F401  (unstructured: random, uniform / ER / ERK / uniform+ / ERK+)
from prunebench.pruning.methods import random_score_ratio  # noqa: F401  (unstructured: random, SNIP-/GraSP-ratio)
from prunebench.pruning.methods import ft  # noqa: F401  (structured: filter thresholding)
from prunebench.pruning.methods import pfp  # noqa: F401  (structured: provable filter pruning)
from prunebench.pruning.methods import random_filter  # noqa: F401  (structured: random filters)
