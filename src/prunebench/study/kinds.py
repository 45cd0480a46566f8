"""The kinds of study cells (the store's ``kind`` column), torch-free so every reader can import them."""

KINDS = ("train", "prune", "sparse", "eval")
MODEL_KINDS = ("train", "prune", "sparse")  # cells that write a checkpoint (a result row each)
