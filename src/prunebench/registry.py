"""Named registries: one per extension point (models, datasets, methods, evaluators, corruptions).

A new model or method is one file plus one ``@REGISTRY.register("name")`` line; tests are
parametrized over ``REGISTRY.names()`` so every entry is tested for free.
"""
from __future__ import annotations

import difflib
from typing import Any, Callable, Generic, Iterator, TypeVar

from prunebench.errors import UserError

T = TypeVar("T")


class Registry(Generic[T]):
    """A name -> object mapping with a decorator for registration and friendly lookup errors."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._meta: dict[str, dict[str, Any]] = {}

    def register(self, name: str, **meta: Any) -> Callable[[T], T]:
        """Decorator: ``@MODELS.register("lenet5", family="lenet")``."""

        def deco(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = obj
            self._meta[name] = dict(meta)
            return obj

        return deco

    def get(self, name: str) -> T:
        """Look an entry up; an unknown name is a :class:`UserError` listing the choices."""
        try:
            return self._entries[name]
        except KeyError:
            close = difflib.get_close_matches(name, self._entries, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UserError(
                f"unknown {self.kind} {name!r}{hint}; choose one of: {', '.join(self.names())}"
            ) from None

    def meta(self, name: str) -> dict[str, Any]:
        self.get(name)
        return self._meta[name]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)
