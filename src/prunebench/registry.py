"""Named registries of typed specs: one per extension point (models, datasets, methods, evaluators,
corruptions), each defined in ``<package>/registry.py``.

An extension is one file. It registers its callable with one decorator that also declares

* an **options model** (a subclass of :class:`Options`: pydantic, with defaults, ranges and help
  text), the one source of truth for option checks in the CLI and the study config, for the
  defaults-left-out config hashes and for the listings and docs table; and
* **typed metadata**: the fields of the registry's spec class (a frozen dataclass deriving from
  :class:`Spec`, e.g. ``structured`` for pruning methods). An unknown metadata key is an error at
  import time, so a typo never becomes a silently ignored flag.

Registries load themselves: the first lookup imports every module of the registry's packages, then
the user's plug-ins (below), once. No caller imports a package for its registration side effect.

Plug-ins (a method, evaluator, dataset, model or corruption outside prunebench): a module that
registers entries the same way, named in the environment variable ``PRUNEBENCH_PLUGINS``
(comma-separated importable module names, or paths to ``.py`` files), or declared by an installed
package under the entry-point group ``prunebench.plugins``. Every registry loads all plug-ins, so
one plug-in file may register in several registries.
"""
from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import pkgutil
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from importlib import metadata
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from prunebench.errors import UserError

PLUGINS_ENV = "PRUNEBENCH_PLUGINS"
PLUGIN_GROUP = "prunebench.plugins"


class Options(BaseModel):
    """Base of every entry's options model: unknown keys are rejected, values are frozen.

    Declare each option as a field with its default and ``Field(description=...)``; ranges with
    ``ge``/``le``/``gt``/``lt`` or a ``Literal`` of the allowed values.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoOptions(Options):
    """The options model of an entry that takes none."""


@dataclass(frozen=True, kw_only=True)
class Spec:
    """One registry entry: its name, the registered callable and its options model. Registries
    subclass it (frozen dataclass) to add typed metadata fields."""

    name: str
    obj: Callable[..., Any]
    options: type[Options] = NoOptions
    kind: str = field(default="entry", repr=False, compare=False)  # the registry's kind, for messages

    @property
    def summary(self) -> str:
        """First line of the callable's docstring (listings, docs table)."""
        doc = (getattr(self.obj, "__doc__", None) or "").strip()
        return doc.splitlines()[0].strip() if doc else ""

    def metadata(self) -> dict[str, Any]:
        """The typed metadata as a dict (every field but name, obj and options)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in _BASE_FIELDS}

    def parse_options(self, given: Mapping[str, Any] | None) -> Options:
        """Validate ``given`` against the options model; any problem is ONE-line :class:`UserError`
        naming the entry, the option, the bad value and what it accepts."""
        given = dict(given or {})
        try:
            return self.options(**given)
        except ValidationError as e:
            err = e.errors()[0]
            key = ".".join(str(p) for p in err["loc"]) or "?"
            if err["type"] == "extra_forbidden":
                problem = f"unknown option {key!r}"
            else:
                problem = f"option {key}={given.get(str(err['loc'][0]) if err['loc'] else key)!r}: {err['msg']}"
            raise UserError(f"{self.kind} {self.name!r}: {problem}; it accepts: {self.options_help()}") from None
        except TypeError as e:  # a non-string key (YAML `1: x`)
            raise UserError(f"{self.kind} {self.name!r}: bad options {given!r} ({e}); option names are strings") from None

    def options_help(self) -> str:
        """``name=default (description)`` for every option, or ``none``."""
        parts = []
        for key, f in self.options.model_fields.items():
            default = "required" if f.is_required() else repr(f.get_default(call_default_factory=True))
            parts.append(f"{key}={default}" + (f" ({f.description})" if f.description else ""))
        return ", ".join(parts) or "none"

    def non_default(self, opts: Options | Mapping[str, Any]) -> dict[str, Any]:
        """The options that differ from their defaults (JSON-ready): what a config hash includes, so
        that spelling a default out changes no key."""
        parsed = opts if isinstance(opts, Options) else self.parse_options(opts)
        return parsed.model_dump(mode="json", exclude_defaults=True)


_BASE_FIELDS = frozenset({"name", "obj", "options", "kind"})
S = TypeVar("S", bound=Spec)
_plugins_loaded = False
_plugins_loading = False
# One lock for all loading (every registry's packages and the plug-ins): a plug-in may register in several
# registries, and two locks taken in different orders by two threads could deadlock.
_LOAD_LOCK = threading.RLock()
# Registrations made while a module is being imported (registry, name): undone when that import fails, so a
# module that registered an entry and then raised can be imported again on the next lookup (as Python retries
# a failed import) instead of colliding with its own first, half-imported registration.
_journal: list[list[tuple[Registry[Any], str]]] = []


def _import_rolling_back(name: str) -> None:
    """``importlib.import_module(name)``, undoing the module's registrations if it fails."""
    _journal.append([])
    try:
        importlib.import_module(name)
    except BaseException:
        for registry, entry in _journal[-1]:
            registry._specs.pop(entry, None)
        raise
    finally:
        made = _journal.pop()
        if _journal:  # a module imported by another: its registrations belong to the outer import too
            _journal[-1].extend(made)


def load_plugins() -> None:
    """Import the modules named in ``$PRUNEBENCH_PLUGINS`` and the ``prunebench.plugins`` entry
    points, once per process. A plug-in that fails to import is a UserError naming it."""
    global _plugins_loaded, _plugins_loading
    if _plugins_loaded:
        return
    with _LOAD_LOCK:
        if _plugins_loaded or _plugins_loading:  # done, or re-entered by a plug-in that looks a registry up
            return
        _plugins_loading = True
        try:
            names = [n.strip() for n in os.environ.get(PLUGINS_ENV, "").split(",") if n.strip()]
            for ep in metadata.entry_points(group=PLUGIN_GROUP):
                names.append(ep.value.split(":")[0])
            for name in names:
                _import_plugin(name)
            _plugins_loaded = True  # only when all imported: a failure is raised again on the next lookup
        finally:
            _plugins_loading = False


@contextmanager
def _path_finder(mod_name: str, path: Path) -> Iterator[None]:
    """Make ``import <mod_name>`` load the file ``path`` (a ``.py`` plug-in) while inside the block."""

    class Finder(importlib.abc.MetaPathFinder):
        def find_spec(self, fullname: str, _path: Any, _target: Any = None) -> importlib.machinery.ModuleSpec | None:
            return importlib.util.spec_from_file_location(mod_name, path) if fullname == mod_name else None

    finder = Finder()
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)


def _import_plugin(name: str) -> None:
    try:
        if name.endswith(".py"):
            path = Path(name).expanduser().resolve()
            digest = hashlib.sha1(str(path).encode()).hexdigest()[:8]  # two plugin.py in two folders: two modules
            mod_name = f"prunebench_plugin_{path.stem}_{digest}"
            if mod_name in sys.modules:
                return
            if not path.is_file():
                raise FileNotFoundError(path)
            with _path_finder(mod_name, path):
                _import_rolling_back(mod_name)
        else:
            _import_rolling_back(name)
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001  (any import failure of user code is the user's to fix)
        raise UserError(f"plug-in {name!r} (from ${PLUGINS_ENV} or the {PLUGIN_GROUP!r} entry points) failed to "
                        f"import: {type(e).__name__}: {e}; fix it or remove it from {PLUGINS_ENV}") from None


class Registry(Generic[S]):
    """A name -> spec mapping with a registering decorator, self-loading on first lookup.

    ``packages``: dotted names of packages whose every (non-underscore) module is imported on first
    lookup, so that their ``@REGISTRY.register`` lines run.
    """

    def __init__(self, kind: str, spec_type: type[S], packages: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self.spec_type: type[S] = spec_type
        self.packages = packages
        self._specs: dict[str, S] = {}
        self._loaded = False
        self._loading = False

    # -- registration
    def register(self, name: str, *, options: type[Options] = NoOptions, **meta: Any) -> Callable[[Any], Any]:
        """Decorator: ``@METHODS.register("ft", options=FTOptions, structured=True)``."""
        if not (isinstance(options, type) and issubclass(options, Options)):
            raise TypeError(f"{self.kind} {name!r}: options must be a subclass of prunebench.registry.Options")
        known = {f.name for f in fields(self.spec_type)} - _BASE_FIELDS
        unknown = sorted(set(meta) - known)
        if unknown:
            raise TypeError(f"{self.kind} {name!r}: unknown metadata {unknown}; {self.spec_type.__name__} has {sorted(known)}")

        def deco(obj: Any) -> Any:
            with _LOAD_LOCK:
                if name in self._specs:
                    first = getattr(self._specs[name].obj, "__module__", "?")
                    raise UserError(f"{self.kind} {name!r} is registered twice (by {first} and "
                                    f"{getattr(obj, '__module__', '?')}); rename one of them")
                self._specs[name] = self.spec_type(name=name, obj=obj, options=options, kind=self.kind, **meta)
                if _journal:
                    _journal[-1].append((self, name))
            return obj

        return deco

    def _load(self) -> None:
        if self._loaded:
            return
        with _LOAD_LOCK:  # another thread waits here until the registry is whole
            if self._loaded or self._loading:  # done, or re-entered by a module being imported below
                return
            self._loading = True
            try:
                for pkg_name in self.packages:
                    pkg = importlib.import_module(pkg_name)
                    for mod in pkgutil.iter_modules(getattr(pkg, "__path__", [])):
                        if not mod.name.startswith("_"):
                            _import_rolling_back(f"{pkg_name}.{mod.name}")
                load_plugins()
                self._loaded = True  # only when whole: a failed import is raised again on the next lookup
            finally:
                self._loading = False

    # -- lookup
    def spec(self, name: str) -> S:
        """The spec of ``name``; an unknown name is a :class:`UserError` listing the choices."""
        self._load()
        try:
            return self._specs[name]
        except (KeyError, TypeError):
            close = difflib.get_close_matches(str(name), list(self._specs), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UserError(f"unknown {self.kind} {name!r}{hint}; choose one of: {', '.join(self.names())}") from None

    def get(self, name: str) -> Any:
        """The registered callable of ``name``."""
        return self.spec(name).obj

    def meta(self, name: str) -> dict[str, Any]:
        """The typed metadata of ``name`` as a dict (prefer ``spec(name).field``)."""
        return self.spec(name).metadata()

    def specs(self) -> list[S]:
        self._load()
        return [self._specs[n] for n in sorted(self._specs)]

    def names(self) -> list[str]:
        self._load()
        return sorted(self._specs)

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._specs

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        self._load()
        return len(self._specs)
