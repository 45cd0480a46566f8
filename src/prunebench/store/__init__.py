"""Persistence: checkpoints (safetensors + JSON), config hashing, and the SQLite results store."""
from prunebench.store.checkpoint import Checkpoint, load_checkpoint, read_meta, save_checkpoint
from prunebench.store.hashing import config_hash, strip_defaults
from prunebench.store.resultstore import Record, ResultStore

__all__ = ["Checkpoint", "Record", "ResultStore", "config_hash", "load_checkpoint", "read_meta", "save_checkpoint",
           "strip_defaults"]
