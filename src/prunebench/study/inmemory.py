"""``run_study(config, model=factory, data=dataset)``: a study over Python objects (notebooks).

The objects are registered in this process (:func:`prunebench.models.factory.register_memory_factory`,
:func:`prunebench.data.tensors.register_memory_dataset`) and the config names them
(``model.factory: "<memory>:<qualname>"``, ``dataset.name: "<memory>:<sha16>"``). They cannot be
sent to worker processes or a Ray cluster, so such a study runs its cells one after another in
this process. Keys stay stable across sessions: the factory is identified by its source
(``inspect.getsource``; lambdas, nested functions and objects without source are refused) and
the data by the SHA-256 of its tensors, never by object identity.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from prunebench.errors import UserError


def _raw(config: Any) -> tuple[dict[str, Any], Path | None]:
    """The config as a plain mapping and the folder its relative paths are relative to."""
    from prunebench.study.config import StudyConfig
    from prunebench.study.loader import bundled, bundled_names

    if isinstance(config, StudyConfig):
        raise UserError("with model= or data=, pass the config as a mapping or a YAML path (a StudyConfig already "
                        "names its model and dataset)")
    if isinstance(config, Mapping):
        return dict(config), None
    if isinstance(config, (str, Path)):
        path = Path(config)
        if not path.is_file() and not path.suffix and path.name in bundled_names():
            path = bundled(path.name)
        if not path.is_file():
            raise UserError(f"config file not found: {path}; pass a YAML file or a mapping")
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
            raise UserError(f"{path}: cannot read it as YAML ({type(e).__name__}); fix the file") from None
        if not isinstance(raw, Mapping):
            raise UserError(f"{path}: a study config is a YAML mapping (name:, methods:, ...)")
        return dict(raw), path.resolve().parent
    raise UserError(f"config must be a mapping or a YAML path, got {type(config).__name__}")


def prepare(config: Any, model: Callable[..., Any] | None, data: Any, workers: int | str,
            executor: str) -> Any:
    """The validated :class:`StudyConfig` naming the in-memory ``model`` / ``data`` (registered here)."""
    from torch import nn

    from prunebench.data.tensors import register_memory_dataset
    from prunebench.models.factory import register_memory_factory
    from prunebench.study.loader import load_config

    if executor != "local" or workers not in (1, "auto"):
        raise UserError("a study over an in-memory model= or data= runs in this process only (they cannot be sent "
                        "to workers); leave workers at 1 and executor at 'local', or put the model in a .py file "
                        "(model.factory) and the data in an .npz")
    raw, base = _raw(config)
    if model is not None:
        if isinstance(model, nn.Module):
            raise UserError("model= must be a function that builds a new model (e.g. def build(num_classes): "
                            "return MyNet(num_classes)), not a model instance: every repetition starts from a fresh one")
        given = raw.get("model")
        if isinstance(given, Mapping) and ({"name", "factory"} & set(given)) or isinstance(given, str):
            raise UserError("model= and the config's model.name / model.factory both name a model; remove one")
        extra = dict(given) if isinstance(given, Mapping) else {}
        raw["model"] = {**extra, "factory": register_memory_factory(model)}
    if data is not None:
        if "dataset" in raw:
            raise UserError("data= and the config's dataset both name the data; remove 'dataset' from the config "
                            "(slice the tensors to limit them)")
        raw["dataset"] = {"name": register_memory_dataset(data)}
    return load_config(raw, base_dir=base)
