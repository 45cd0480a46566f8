"""Loading a study config: YAML (a path, a bundled name or a mapping) in, a validated
:class:`~prunebench.study.config.StudyConfig` out, or ONE line naming the key path, the bad value and
what is allowed (:class:`~prunebench.errors.UserError`; the CLI prints it and exits 2).

Besides the schema (:mod:`prunebench.study.config`, which imports nothing from here) the loader checks
what needs the registries (model, dataset, method and evaluator names and options) before any file is
written. The bundled studies are the YAML files of ``prunebench/configs/`` (``bundled_names()``).
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from prunebench.data.tensors import MEMORY
from prunebench.errors import UserError
from prunebench.study.config import StudyConfig
from prunebench.study.usermodel import check_supported, resolve_paths
from prunebench.training.config import TrainConfig

CONFIGS_DIR = Path(__file__).resolve().parents[1] / "configs"  # the bundled study configs, shipped with the package


def format_error(e: ValidationError, raw: Any) -> str:
    """The first pydantic error as one line: key path, problem, bad value, allowed values."""
    err = e.errors(include_url=False)[0]
    loc = [p for p in err["loc"] if not (isinstance(p, str) and p.startswith(("function-", "tagged-union")))]
    path = _path(loc)
    if err["type"] == "extra_forbidden":
        parent = _path(loc[:-1])
        allowed = _allowed_keys(loc[:-1])
        scope = f" in {parent!r}" if parent else ""
        return (f"unknown key {loc[-1]!r}{scope}" + (f"; allowed keys: {', '.join(allowed)}" if allowed else ""))
    if err["type"] == "missing":
        return f"missing required key {path!r}"
    msg = str(err["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if err["type"] in ("value_error", "assertion_error") or "input" not in err:
        return f"{path or 'config'}: {msg}" if path else msg
    return f"{path}: {msg}, got {err['input']!r}"


def _path(loc: list[Any]) -> str:
    out = ""
    for p in loc:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _allowed_keys(loc: list[Any]) -> list[str]:
    """Field names of the model at ``loc`` (walking StudyConfig's nested models; indices skip)."""
    cls: Any = StudyConfig
    for p in loc:
        if isinstance(p, int):
            continue
        field = getattr(cls, "model_fields", {}).get(p)
        if field is None:
            return []
        cls = _model_in(field.annotation)
        if cls is None:
            return []
    hidden = {"seed"} if cls is TrainConfig else set()  # the study sets recipe seeds itself
    return sorted(set(getattr(cls, "model_fields", {})) - hidden)


def _model_in(annotation: Any) -> Any:
    import typing

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def check_names(cfg: StudyConfig, where: str = "config") -> None:
    """Registry names and method/evaluator options that are impossible, each as one line with its key."""
    from prunebench.data import DATASETS
    from prunebench.evaluation.registry import EVALUATORS
    from prunebench.models import MODELS
    from prunebench.pruning.registry import METHODS
    from prunebench.study.pruning_step import check_method_options

    def need(registry: Any, name: str, key: str) -> None:
        if name not in registry:
            try:
                registry.get(name)
            except UserError as e:
                raise UserError(f"{where}: {key}: {e}") from None

    bad = first_non_finite(cfg.model_dump(mode="python"))
    if bad is not None:
        raise UserError(f"{where}: {bad[0]}: {bad[1]} is not a finite number; give a finite value")
    if cfg.model.name is not None:  # a factory is checked by resolve_paths (study/usermodel.py)
        need(MODELS, cfg.model.name, "model.name")
    if not cfg.dataset.name.startswith(MEMORY):  # a Dataset handed to run_study(data=...)
        need(DATASETS, cfg.dataset.name, "dataset.name")
        try:
            DATASETS.spec(cfg.dataset.name).parse_options(cfg.dataset.options)
        except UserError as bad_options:
            raise UserError(f"{where}: dataset.options: {bad_options}") from None
    try:
        check_supported(cfg)  # a factory / given parent with sparse-train or scratch baselines
    except UserError as err:
        raise UserError(f"{where}: {err}") from None
    for i, m in enumerate(cfg.methods):
        if m.retrain and "seed" in m.retrain:
            raise UserError(f"{where}: methods[{i}].retrain.seed: seeds are set per repetition; remove it")
    try:
        cfg.pipelines()
    except UserError as err:
        raise UserError(f"{where}: {err}") from None
    from prunebench.study.setups import check_setup

    check_setup(cfg, where)
    for i, m in enumerate(cfg.methods):
        need(METHODS, m.name, f"methods[{i}].name")
        problem = check_method_options(m.name, m.options)
        if problem:
            raise UserError(f"{where}: methods[{i}] ({m.name}): {problem}")
    if cfg.sparse is not None:
        from prunebench.study.sparse_plan import check_sparse

        check_sparse(cfg, where)
    for i, e in enumerate(cfg.evaluation.suite):
        need(EVALUATORS, e.name, f"evaluation.suite[{i}].name")
        try:
            EVALUATORS.spec(e.name).parse_options(e.options)
        except UserError as err:
            raise UserError(f"{where}: evaluation.suite[{i}]: {err}") from None
    if cfg.selection:
        from prunebench.pruning.selection import Selection

        try:
            Selection.from_dict(dict(cfg.selection))
        except (UserError, TypeError) as e:
            raise UserError(f"{where}: selection: {e}") from None


def first_non_finite(obj: Any, path: str = "") -> tuple[str, float] | None:
    """The first (key path, value) holding NaN or +-inf in a nested config, else None."""
    import math

    if isinstance(obj, float) and not math.isfinite(obj):
        return path or "config", obj
    items = obj.items() if isinstance(obj, Mapping) else enumerate(obj) if isinstance(obj, (list, tuple)) else ()
    for k, v in items:
        sub = f"{path}[{k}]" if isinstance(k, int) else (f"{path}.{k}" if path else str(k))
        found = first_non_finite(v, sub)
        if found is not None:
            return found
    return None


def load_config(source: str | Path | Mapping[str, Any] | None = None, *, base_dir: str | Path | None = None) -> StudyConfig:
    """Parse and validate a study config (a YAML path, a mapping, or None for the bundled default).

    Relative paths in it (``model.factory`` files, ``parent``) are made absolute against ``base_dir``,
    by default the config file's folder (the working directory for a mapping)."""
    if source is None:
        source = bundled("default")
    where = "config"
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            hint = "; bundled studies: " + ", ".join(bundled_names()) if not path.suffix else ""
            if not path.suffix and path.name in bundled_names():
                path = bundled(path.name)
            else:
                raise UserError(f"config file not found: {path}; pass a YAML file{hint}")
        where = str(path)
        base = Path(base_dir) if base_dir is not None else path.resolve().parent
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            raise UserError(f"{where}: not a text file (not UTF-8); pass a YAML study config") from None
        except OSError as e:
            raise UserError(f"{where}: cannot read it ({e.strerror or e}); pass a readable YAML file") from None
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            at = f" at line {mark.line + 1}" if mark is not None else ""
            problem = getattr(e, "problem", None) or str(e).splitlines()[0]
            raise UserError(f"{where}: not valid YAML{at} ({problem}); fix the syntax") from None
    else:
        raw = source
    if not isinstance(raw, Mapping):
        raise UserError(f"{where}: a study config is a YAML mapping (name:, model:, dataset:, ...), got {type(raw).__name__}")
    try:
        cfg = StudyConfig.model_validate(dict(raw))
    except UserError as e:
        raise UserError(f"{where}: {e}") from None
    except ValidationError as e:
        raise UserError(f"{where}: {format_error(e, raw)}") from None
    check_names(cfg, where)
    return resolve_paths(cfg, base, where)


def bundled(name: str) -> Path:
    """The file of bundled study ``name`` (``prunebench run NAME``)."""
    return CONFIGS_DIR / f"{name}.yaml"


def bundled_names() -> list[str]:
    """The names of the bundled studies (``prunebench/configs/*.yaml``)."""
    return sorted(p.stem for p in CONFIGS_DIR.glob("*.yaml"))
