"""The study's side of user models (``model: {factory: "pkg.mod:fn" | "file.py:fn", kwargs: {...}}``).

What a user model contributes to a study, kept out of the planner so that zoo studies plan exactly as
before (their cells and keys are unchanged):

* kwargs (:func:`factory_kwargs`): ``model.kwargs`` plus the dataset geometry (``in_channels``,
  ``num_classes``, ``image_size``) and ``width`` for each of them the factory's signature names;
* the train cell's identity (:func:`model_entries`): the factory's function name and the SHA-256 of
  its source (:func:`prunebench.models.factory.source_sha256`) with those kwargs, *not* its path,
  so that editing the factory re-runs its cells while moving the project does not;
* what a worker process needs to rebuild it (``Cell.run["model"]``): the absolute spec
  (``factory``), a display name (``name``) and the kwargs. Worker processes re-import the factory
  from that spec; checkpoints record it as ``model_factory`` (:func:`checkpoint_meta`), which
  :func:`prunebench.store.load_checkpoint` reads.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from prunebench.errors import UserError
from prunebench.models.factory import accepted_geometry, build_user_model, display_name, resolve_spec, source_sha256, split_spec


def check_supported(cfg: Any) -> None:
    """What a user model or a given parent cannot be combined with (one line each)."""
    if cfg.mode == "sparse-train" and (cfg.model.factory is not None or cfg.parent is not None):
        raise UserError("mode sparse-train builds zoo models by family and depth and trains them itself; "
                        "use model.name without parent, or mode cascade / oneshot")
    if cfg.parent is not None and getattr(cfg, "scratch", None):
        raise UserError("scratch baselines are sized by the parent's training epochs, which a given parent "
                        "does not have; remove scratch (or parent)")


def factory_kwargs(cfg: Any, info: Any) -> dict[str, Any]:
    """The factory's keyword arguments: the geometry it accepts by name, then the config's kwargs."""
    spec = str(cfg.model.factory)
    geometry = {"in_channels": int(info.in_channels), "num_classes": int(info.num_classes),
                "image_size": int(info.image_size[0]), "width": float(cfg.model.width)}
    return {**accepted_geometry(spec, geometry), **cfg.model.kwargs}


def model_entries(cfg: Any, kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the train cell key's ``model`` entry, ``Cell.run["model"]``): zoo models as always
    (``{"name", "kwargs"}`` both), user models keyed by function name and source hash."""
    if cfg.model.factory is None:
        return {"name": cfg.model.name, "kwargs": kwargs}, {"name": cfg.model.name, "kwargs": kwargs}
    spec = str(cfg.model.factory)
    _, func = split_spec(spec)
    ident = {"factory": {"function": func, "sha256": source_sha256(spec)}, "kwargs": kwargs}
    return ident, {"factory": spec, "name": display_name(spec), "kwargs": kwargs}


def build_model(run_model: Mapping[str, Any]) -> nn.Module:
    """Build the model of a cell's ``run["model"]`` (zoo name or factory spec)."""
    from prunebench.models import create_model

    kwargs = dict(run_model.get("kwargs", {}))
    if run_model.get("factory"):
        return build_user_model(str(run_model["factory"]), kwargs)
    return create_model(str(run_model["name"]), **kwargs)


def checkpoint_meta(run_model: Mapping[str, Any]) -> dict[str, Any]:
    """The checkpoint metadata naming the model: ``model`` (zoo name / display name) and, for a user
    model, ``model_factory`` (the spec :func:`prunebench.store.load_checkpoint` rebuilds it from)."""
    out: dict[str, Any] = {"model": run_model["name"]}
    if run_model.get("factory"):
        out["model_factory"] = run_model["factory"]
    return out


def resolve_paths(cfg: Any, base: Path, where: str) -> Any:
    """``cfg`` with a file factory and a given ``parent`` made absolute (relative to ``base``: the
    config file's folder, or the working directory for a mapping), both checked to exist and load."""
    from prunebench.models.factory import load_factory
    from prunebench.study.given_parent import check_parent_file

    update: dict[str, Any] = {}
    if cfg.model.factory is not None:
        spec = resolve_spec(cfg.model.factory, base)
        try:
            load_factory(spec)
        except UserError as e:
            raise UserError(f"{where}: {e}") from None
        update["model"] = cfg.model.model_copy(update={"factory": spec})
    if cfg.parent is not None:
        path = Path(cfg.parent).expanduser()
        path = (path if path.is_absolute() else base / path).resolve()
        check_parent_file(path, f"{where}: parent")
        update["parent"] = str(path)
    return cfg.model_copy(update=update) if update else cfg


def check_models(cells: list[Any]) -> None:
    """Build each distinct model of the plan's train cells once (on the CPU), and fit a given parent
    to it, so that bad ``model.kwargs``, a failing factory or a parent that does not fit are refused
    before the run directory is written, not when the first cell runs."""
    import json

    from prunebench.study.given_parent import load_parent_state

    seen = set()
    for c in cells:
        spec = c.run.get("model") if c.kind == "train" else None
        if not spec:
            continue
        sig = json.dumps([spec, c.run.get("given_parent")], sort_keys=True, default=str)
        if sig in seen:
            continue
        seen.add(sig)
        try:
            model = build_model(spec)
        except UserError as e:
            raise UserError(f"config: model: {e}" if spec.get("factory") else f"config: model.kwargs: {e}") from None
        except (TypeError, ValueError, RuntimeError) as e:
            raise UserError(f"config: model.kwargs {spec.get('kwargs')} do not build model {spec['name']!r} "
                            f"({type(e).__name__}: {' '.join(str(e).split())}); fix or remove them") from None
        if c.run.get("given_parent"):
            load_parent_state(c.run["given_parent"], model)
