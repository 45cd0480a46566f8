"""Moved to :mod:`prunebench.analysis`; this name stays for code written against it."""
from prunebench.analysis.potential import prune_potential, prune_potential_table  # noqa: F401
