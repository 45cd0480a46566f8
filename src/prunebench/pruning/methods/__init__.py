from prunebench.pruning.methods import ft  # noqa: F401  (structured: filter thresholding)
from prunebench.pruning.methods import pfp  # noqa: F401  (structured: provable filter pruning)
from prunebench.pruning.methods import random_filter  # noqa: F401  (structured: random filters)
