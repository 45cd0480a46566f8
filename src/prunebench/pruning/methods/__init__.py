"""Pruning methods, one file per method (or family). ``METHODS`` (:mod:`prunebench.pruning.registry`)
imports every module of this package on its first lookup, so a new method is one new file here with
its options model and one ``@METHODS.register(...)`` line; nothing else changes.
"""
