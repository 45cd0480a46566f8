"""User model factories: an ``nn.Module`` built by your own function instead of a zoo entry.

A factory is named by a *spec* string:

* ``"package.module:function"``: an importable module (installed, or on ``PYTHONPATH``);
* ``"/abs/path/to/file.py:function"``: a Python file, imported by path under a private module name
  (the study resolves a relative path against the config file's folder before it gets here);
* ``"<memory>:<name>"``: a callable handed to :func:`prunebench.run_study` in this process
  (:func:`register_memory_factory`); it cannot be rebuilt in another process.

The *source* of a factory (the file's bytes; ``inspect.getsource`` of the module, or of the
in-memory callable) is what :func:`source_sha256` hashes, so a study can key its cells on the code
that builds the model. Code the factory imports from elsewhere is not part of that hash.

The factory is called with the keyword arguments the config gives plus, when its signature names
them, the dataset geometry ``in_channels``, ``num_classes``, ``image_size`` and ``width``
(:func:`accepted_geometry`). Anything other than an ``nn.Module`` coming back is a UserError.

This module lives with the models (the lowest layer) because :func:`prunebench.store.load_checkpoint`
rebuilds user models from the spec recorded in a checkpoint's metadata (``model_factory``).
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from torch import nn

from prunebench.errors import UserError

MEMORY = "<memory>:"  # no module or file is called that
GEOMETRY = ("in_channels", "num_classes", "image_size", "width")  # passed when the factory's signature names them
_MEMORY: dict[str, Callable[..., Any]] = {}  # in-memory factories of this process (run_study(model=...))
_FILES: dict[str, Any] = {}  # absolute file path + sha -> imported module (one import per version of a file)


def split_spec(spec: str) -> tuple[str, str]:
    """``"where:function"`` -> (where, function); a one-line UserError for anything else."""
    form = "must be 'package.module:function' or 'path/to/file.py:function'"
    if not isinstance(spec, str):
        raise UserError(f"model.factory {spec!r} {form}")
    if spec.startswith(MEMORY):
        return MEMORY, spec[len(MEMORY):]
    where, sep, func = spec.rpartition(":")
    if not sep or not where or not func.isidentifier():
        raise UserError(f"model.factory {spec!r} {form} (a function name after the last ':')")
    return where, func


def is_file_spec(spec: str) -> bool:
    where, _ = split_spec(spec)
    return where != MEMORY and where.endswith(".py")


def resolve_spec(spec: str, base: Path) -> str:
    """A file spec with its path made absolute against ``base`` (module and memory specs unchanged)."""
    if not is_file_spec(spec):
        return spec
    where, func = split_spec(spec)
    path = Path(where).expanduser()
    return f"{(path if path.is_absolute() else base / path).resolve()}:{func}"


def register_memory_factory(fn: Callable[..., Any]) -> str:
    """Make an in-memory callable buildable by spec in this process; returns its spec ``<memory>:<qualname>``."""
    if not callable(fn):
        raise UserError(f"model= must be a callable returning an nn.Module, got {type(fn).__name__}")
    name = getattr(fn, "__qualname__", "") or type(fn).__name__
    if "<lambda>" in name or "<locals>" in name:
        raise UserError(f"model= {name!r} is a lambda or a nested function, whose behaviour its source does not pin "
                        "down (closures); pass a function defined at the top level of a module or notebook cell")
    _MEMORY[name] = fn
    return MEMORY + name


def _source_of(obj: Any, what: str) -> str:
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):
        raise UserError(f"{what}: its source code is not available (inspect.getsource failed), so a change to it "
                        "could not be detected; define it as a top-level function in a module, a .py file or a "
                        "notebook cell") from None


def _import_module(where: str, spec: str) -> Any:
    try:
        return importlib.import_module(where)
    except ModuleNotFoundError as e:
        raise UserError(f"model.factory {spec!r}: cannot import module {where!r} ({e}); install it, add its folder "
                        "to PYTHONPATH, or name a file: 'path/to/file.py:function'") from None
    except Exception as e:  # noqa: BLE001  (the user's module raised while importing: report it on one line)
        raise UserError(f"model.factory {spec!r}: importing {where!r} failed ({type(e).__name__}: "
                        f"{' '.join(str(e).split())}); fix the module") from None


def _import_file(path: Path, spec: str) -> Any:
    if not path.is_file():
        raise UserError(f"model.factory {spec!r}: file not found: {path}; check the path (relative paths are "
                        "relative to the config file's folder)")
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    key = f"{path}@{digest}"
    if key in _FILES:
        return _FILES[key]
    name = f"prunebench_user_{digest[:12]}_{''.join(ch if ch.isalnum() else '_' for ch in path.stem)}"
    loader_spec = importlib.util.spec_from_file_location(name, path)
    if loader_spec is None or loader_spec.loader is None:
        raise UserError(f"model.factory {spec!r}: {path} cannot be imported as Python; name a .py file")
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[name] = module  # dataclasses and pickling-free introspection look the module up by name
    try:
        loader_spec.loader.exec_module(module)
    except Exception as e:  # noqa: BLE001  (the user's file raised while importing)
        sys.modules.pop(name, None)
        raise UserError(f"model.factory {spec!r}: importing {path} failed ({type(e).__name__}: "
                        f"{' '.join(str(e).split())}); fix the file") from None
    _FILES[key] = module
    return module


def load_factory(spec: str) -> Callable[..., Any]:
    """The callable a spec names (imported on first use); a one-line UserError when it cannot be found."""
    where, func = split_spec(spec)
    if where == MEMORY:
        if func not in _MEMORY:
            raise UserError(f"model factory {spec!r} was passed in memory to run_study in another Python process; "
                            "it can only be rebuilt there (or move it into a .py file and use model.factory)")
        return _MEMORY[func]
    module = _import_file(Path(where), spec) if where.endswith(".py") else _import_module(where, spec)
    fn = getattr(module, func, None)
    if fn is None:
        raise UserError(f"model.factory {spec!r}: {where} has no attribute {func!r}; define it or fix the name")
    if not callable(fn):
        raise UserError(f"model.factory {spec!r}: {func!r} is a {type(fn).__name__}, not a function")
    return fn


def source_sha256(spec: str) -> str:
    """SHA-256 of the factory's source: the file's bytes, the module's source, or the callable's source."""
    where, func = split_spec(spec)
    if where == MEMORY:
        return hashlib.sha256(_source_of(load_factory(spec), f"model= {func!r}").encode()).hexdigest()
    if where.endswith(".py"):
        path = Path(where)
        if not path.is_file():
            load_factory(spec)  # raises the file-not-found message
        return hashlib.sha256(path.read_bytes()).hexdigest()
    load_factory(spec)  # the module imports and has the function
    return hashlib.sha256(_source_of(sys.modules[where], f"model.factory {spec!r}").encode()).hexdigest()


def accepted_geometry(spec: str, geometry: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of ``geometry`` the factory names as parameters (``**kwargs`` does not count: a
    factory that forwards its kwargs somewhere would be handed arguments it never asked for)."""
    try:
        params = inspect.signature(load_factory(spec)).parameters
    except (TypeError, ValueError):
        return {}
    named = {n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return {k: v for k, v in geometry.items() if k in named}


def build_user_model(spec: str, kwargs: Mapping[str, Any]) -> nn.Module:
    """Call the factory with ``kwargs``; a UserError naming it when it fails or returns a non-module."""
    fn = load_factory(spec)
    try:
        model = fn(**dict(kwargs))
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001  (the user's code: one line naming the factory and its arguments)
        raise UserError(f"model factory {spec!r} raised {type(e).__name__} with kwargs {dict(kwargs)}: "
                        f"{' '.join(str(e).split())}; fix the factory or model.kwargs") from None
    if not isinstance(model, nn.Module):
        raise UserError(f"model factory {spec!r} returned a {type(model).__name__}, not a torch.nn.Module; "
                        "return the model itself")
    return model


def display_name(spec: str) -> str:
    """A short name of a factory for reports: ``file.py:function``, ``package.module:function`` or ``<memory>:name``."""
    where, func = split_spec(spec)
    if where == MEMORY:
        return spec
    return f"{Path(where).name if where.endswith('.py') else where}:{func}"
