"""Plan and check a ``mode: sparse-train`` study (Liu et al., "The Unreasonable Effectiveness of Random
Pruning", ICLR 2022): per model size and seed a dense reference (an ordinary ``train`` cell, so its key is
shared with any other study of the same recipe), per run x sparsity a ``sparse`` cell that draws the mask at
initialisation and trains it with the same recipe and seed, and the evaluation suite on every model.

Sizes (``sparse.widths`` x ``sparse.depths``) become repetitions: repetition = size index x seeds + seed
index, so every generic analysis pairs a sparse model with the dense model of its own size and seed; the
row's ``method`` is ``<run>@<size>`` when there are several sizes, and ``run`` / ``size`` say which.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from prunebench.errors import UserError
from prunebench.study.config import StudyConfig
from prunebench.study.plan import Cell, cell_key, eval_cells, model_kwargs
from prunebench.study.sparse_config import SparseRunSpec


@dataclass(frozen=True)
class Size:
    """One model size of the study: zoo name and width, and its short label (``w2``, ``resnet56``, ``resnet56-w2``)."""

    model: str
    width: float
    label: str


def sizes(cfg: StudyConfig) -> list[Size]:
    """The model sizes of a sparse-train study: depths (zoo models of the family) x widths."""
    assert cfg.sparse is not None and cfg.model.name is not None  # a factory is refused here (usermodel.check_supported)
    names = depth_models(cfg.model.name, cfg.sparse.depths) if cfg.sparse.depths else [cfg.model.name]
    widths = list(cfg.sparse.widths) if cfg.sparse.widths else [cfg.model.width]
    out = []
    for name in names:
        for w in widths:
            parts = ([name] if len(names) > 1 else []) + ([f"w{w:g}"] if len(widths) > 1 else [])
            out.append(Size(name, float(w), "-".join(parts)))
    return out


def depth_models(model: str, depths: tuple[int, ...] | list[int]) -> list[str]:
    """The zoo models of ``model``'s family with these depths (from the registry's ``family`` / ``depth``)."""
    from prunebench.models import MODELS

    fam = MODELS.spec(model).family
    by_depth: dict[int, str] = {int(s.depth): s.name for s in MODELS.specs() if s.family == fam and s.depth}
    if not by_depth:
        raise UserError(f"sparse.depths: model family {fam!r} ({model}) has no depth variants in the zoo; "
                        "remove depths or use a resnet model (depths 20, 32, 56, 110)")
    missing = [d for d in depths if d not in by_depth]
    if missing:
        raise UserError(f"sparse.depths: {fam} has no depth {missing[0]}; choose from {sorted(by_depth)}")
    return [by_depth[d] for d in depths]


def check_sparse(cfg: StudyConfig, where: str) -> None:
    """Registry names and options of every run, and the size axes, each problem one line naming its key."""
    from prunebench.pruning.sparse import CRITERIA, SCHEMES, UPDATES

    assert cfg.sparse is not None
    for i, run in enumerate(cfg.sparse.runs):
        for registry, name, opts, field in ((CRITERIA, run.criterion, run.criterion_options, "criterion"),
                                            (SCHEMES, run.scheme, run.scheme_options, "scheme"),
                                            (UPDATES, run.update, run.update_options, "update")):
            if name is None:
                if opts:
                    raise UserError(f"{where}: sparse.runs[{i}].{field}_options: given without {field}; remove them")
                continue
            try:
                registry.spec(name).parse_options(opts)
            except UserError as e:
                raise UserError(f"{where}: sparse.runs[{i}].{field}: {e}") from None
        if not run.exact and run.criterion != "random":
            raise UserError(f"{where}: sparse.runs[{i}].exact: false (Bernoulli draws) applies to the random "
                            f"criterion only, not {run.criterion!r}; remove exact")
    try:
        sizes(cfg)
    except UserError as e:
        raise UserError(f"{where}: {e}") from None


def check_feasible(cells: Sequence[Cell]) -> None:
    """Every shape-only density scheme of the plan reaches its density on its model (built once on the CPU), so
    that e.g. ERK+ with a dense classifier larger than the whole budget is refused before anything is written.
    Score-based schemes (SNIP- / GraSP-ratio) are a global top-k and always reach the density."""
    from prunebench.models import create_model
    from prunebench.pruning import PruningState, Selection
    from prunebench.pruning.sparse import SCHEMES, scheme_densities

    seen: dict[str, Any] = {}
    for c in cells:
        conf = c.config
        if c.kind != "sparse" or SCHEMES.spec(conf["scheme"]).data_informed:
            continue
        key = json.dumps([c.run["model"], conf["scheme"], conf["scheme_options"], conf["density"], conf["selection"]],
                         sort_keys=True)
        if key in seen:
            continue
        sig = json.dumps([c.run["model"], conf["selection"]], sort_keys=True)
        if sig not in seen:
            model = create_model(c.run["model"]["name"], **c.run["model"]["kwargs"])
            sel = Selection.from_dict(dict(conf["selection"])) if conf["selection"] else None
            seen[sig] = (model, PruningState.dense(model, sel))
        model, state = seen[sig]
        try:
            scheme_densities(model, state, conf["density"], conf["scheme"], options=conf["scheme_options"])
        except UserError as e:
            raise UserError(f"config: sparse.runs ({c.labels.get('run')}) at sparsity {c.labels.get('target_ratio')} on "
                            f"{c.run['model']['name']}: {e}") from None
        seen[key] = True


def _non_default(registry: Any, name: str | None, opts: dict[str, Any]) -> dict[str, Any]:
    return registry.spec(name).non_default(opts) if name is not None else {}


def sparse_config(run: SparseRunSpec, density: float, train: dict[str, Any], model: dict[str, Any],
                  data: dict[str, Any], selection: dict[str, Any], grad_samples: int) -> dict[str, Any]:
    """The identity config of one sparse cell (defaults left out of its key by ``defaults_for("sparse")``)."""
    from prunebench.pruning.sparse import CRITERIA, SCHEMES, UPDATES

    update = None
    if run.update is not None:
        update = {"rule": run.update, "options": _non_default(UPDATES, run.update, run.update_options)}
    return {"kind": "sparse", "model": model, "data": data, "train": train, "density": density,
            "criterion": run.criterion, "criterion_options": _non_default(CRITERIA, run.criterion, run.criterion_options),
            "scheme": run.scheme, "scheme_options": _non_default(SCHEMES, run.scheme, run.scheme_options),
            "update": update, "exact": run.exact, "selection": selection, "grad_samples": grad_samples}


def plan_sparse(cfg: StudyConfig, info: Any) -> list[Cell]:
    """All cells of a sparse-train study, each after its deps: per size and seed the dense reference and its
    evals, then every run x sparsity and its evals."""
    assert cfg.sparse is not None
    ds = cfg.dataset.as_run()
    data_id = {k: v for k, v in ds.items() if k != "test_limit"}
    seeds = cfg.seed_list()
    all_sizes = sizes(cfg)
    several = len(all_sizes) > 1
    cells: list[Cell] = []
    for si, size in enumerate(all_sizes):
        kwargs = {**model_kwargs(cfg, info), "width": size.width}
        model = {"name": size.model, "kwargs": kwargs}
        run_common = {"data": ds, "model": model}
        parents = []
        for j, seed in enumerate(seeds):
            train = cfg.train.model_copy(update={"seed": seed}).model_dump(mode="json")
            conf: dict[str, Any] = {"kind": "train", "model": model, "data": data_id, "train": train}
            labels = {"method": "parent", "rep": si * len(seeds) + j, "cycle": 0, "target_ratio": 0.0,
                      "retrained": True, "seed": seed, "size": size.label, "run": "dense"}
            parents.append(Cell(cell_key("train", conf), "train", conf, (), labels, run_common))

        def baseline(j: int, parents: list[Cell] = parents) -> Cell | None:
            return parents[(j + 1) % len(parents)] if cfg.evaluation.baseline and len(parents) > 1 else None

        for j, parent in enumerate(parents):
            cells.append(parent)
            cells.extend(eval_cells(cfg, parent, parent, baseline(j), run_common))
        for j, (parent, seed) in enumerate(zip(parents, seeds, strict=True)):
            for run in cfg.sparse.runs:
                for ratio in cfg.ratio_list():
                    conf = sparse_config(run, round(1.0 - ratio, 9), parent.config["train"], model, data_id,
                                         dict(cfg.selection), cfg.sparse.grad_samples)
                    labels = {"method": f"{run.tag}@{size.label}" if several else run.tag, "method_name": run.tag,
                              "rep": si * len(seeds) + j, "cycle": 1, "target_ratio": ratio, "retrained": True,
                              "seed": seed, "structured": False, "baseline": run.criterion == "random",
                              "size": size.label, "run": run.tag, "criterion": run.criterion, "scheme": run.scheme,
                              "update": run.update}
                    cell = Cell(cell_key("sparse", conf), "sparse", conf, (), labels, run_common)
                    cells.append(cell)
                    cells.extend(eval_cells(cfg, cell, parent, baseline(j), run_common))
    seen: set[str] = set()
    for c in cells:
        if c.key in seen:
            raise UserError(f"sparse.runs: {c.labels.get('method')!r} repeats another run's cells (same criterion, "
                            "scheme, update and options); remove one")
        seen.add(c.key)
    return cells
