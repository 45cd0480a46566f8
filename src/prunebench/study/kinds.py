"""The kinds of study cells (the store's ``kind`` column), torch-free so every reader can import them."""

KINDS = ("train", "prune", "sparse", "scratch", "eval")
MODEL_KINDS = ("train", "prune", "sparse", "scratch")  # cells that write a checkpoint (a result row each)
