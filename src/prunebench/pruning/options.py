"""Method options: defaults plus a friendly error for names a method does not know."""
from __future__ import annotations

from typing import Any, Mapping

from prunebench.errors import UserError


def method_options(method: str, given: Mapping[str, Any], **defaults: Any) -> dict[str, Any]:
    """``defaults`` updated with ``given``; an unknown option is a UserError listing the known ones.

    A method declares the same names in its registration (``options=(...)``) so configs can be
    checked before anything runs.
    """
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        known = ", ".join(sorted(defaults)) or "none"
        raise UserError(f"unknown option(s) {unknown} for pruning method {method!r}; it accepts: {known}")
    out = dict(defaults)
    out.update(given)
    return out
