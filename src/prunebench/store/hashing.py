"""Stable identities for units of work: a hash of the resolved config with default values left out.

Leaving defaults out (open_lth's habit) means adding a new option later, with a default that
reproduces the old behaviour, does not change any existing hash, so existing results stay valid.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any


def strip_defaults(config: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """``config`` without the entries equal to ``defaults`` (recursively for nested dicts)."""
    out = {}
    for key, value in config.items():
        default = defaults.get(key, _MISSING)
        if isinstance(value, dict) and isinstance(default, dict):
            sub = strip_defaults(value, default)
            if sub:
                out[key] = sub
        elif not _equal(value, default):
            out[key] = value
    return out


def config_hash(config: dict[str, Any], defaults: dict[str, Any] | None = None, length: int = 16) -> str:
    """Hex digest of the canonical JSON of ``config`` minus its defaults."""
    body = strip_defaults(config, defaults or {})
    canon = json.dumps(body, sort_keys=True, separators=(",", ":"), default=_jsonable)
    return hashlib.sha256(canon.encode()).hexdigest()[:length]


_MISSING = object()


def _equal(a: Any, b: Any) -> bool:
    if b is _MISSING:
        return False
    norm = lambda v: list(v) if isinstance(v, tuple) else v  # noqa: E731  (tuples and lists hash alike)
    return norm(a) == norm(b)


def _jsonable(v: Any) -> Any:
    if isinstance(v, (set, frozenset)):
        return sorted(v)
    if isinstance(v, tuple):
        return list(v)
    raise TypeError(f"cannot hash a value of type {type(v).__name__}: {v!r}")
