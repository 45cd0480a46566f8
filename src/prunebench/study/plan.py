"""Plan a study as independent cells (docs/STUDY.md): ``train`` parents, ``prune`` (+ retrain) models, ``eval``s.

A cell's key is ``config_hash`` of its identity config with default values left out, so adding an
option later (with a default that keeps the old behaviour) keeps every existing key valid, and a
change upstream changes every key downstream (a prune cell's config holds the key it starts from;
an eval cell's config holds the key of the model it evaluates).

What is *not* in a key: labels (method label, repetition / cycle index), the device, the inference
batch size, the study name, delta. They do not change what a cell computes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prunebench.errors import UserError
from prunebench.store.hashing import config_hash
from prunebench.study.config import DatasetSpec, StudyConfig
from prunebench.study.kinds import KINDS, MODEL_KINDS  # noqa: F401  (KINDS re-exported)
from prunebench.training.config import TrainConfig


@dataclass(frozen=True)
class Cell:
    """One unit of work.

    ``config`` is the cell's identity (hashed into ``key`` minus defaults, stored in its record);
    ``deps`` are the cells whose checkpoints it reads; ``labels`` name its place in the study (the
    result row's method / rep / cycle / target_ratio); ``run`` holds execution details that follow
    from the deps but a worker needs spelled out (the dataset spec, the model constructor).
    """

    key: str
    kind: str
    config: dict[str, Any]
    deps: tuple[str, ...] = ()
    labels: dict[str, Any] = field(default_factory=dict)
    run: dict[str, Any] = field(default_factory=dict)

    @property
    def is_model(self) -> bool:
        return self.kind in MODEL_KINDS

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "kind": self.kind, "deps": list(self.deps), "labels": self.labels,
                "config": self.config, "run": self.run}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Cell:
        return cls(d["key"], d["kind"], d["config"], tuple(d.get("deps", ())), d.get("labels", {}), d.get("run", {}))

    def describe(self) -> str:
        lab = self.labels
        if self.kind == "train":
            return f"train parent rep {lab.get('rep', 0)}"
        if self.kind == "sparse":
            return f"sparse {lab.get('method')} rep {lab.get('rep')} at sparsity {lab.get('target_ratio'):.3f}"
        if self.kind == "scratch":
            return f"scratch {lab.get('method')} rep {lab.get('rep')} at {lab.get('target_ratio'):.3f}"
        if self.kind == "prune":
            return f"prune {lab.get('method')} rep {lab.get('rep')} -> {lab.get('target_ratio'):.3f}"
        return f"eval {self.config.get('evaluator')} on {lab.get('model_label', self.config.get('model'))}"


# ---------------------------------------------------------------------- defaults (left out of keys)
def _train_defaults() -> dict[str, Any]:
    return TrainConfig().model_dump(mode="json")


def _data_defaults() -> dict[str, Any]:
    d = DatasetSpec(name="x").model_dump(mode="json")
    d.pop("name"), d.pop("test_limit")
    return d


def defaults_for(kind: str, config: dict[str, Any] | None = None) -> dict[str, Any]:
    """The default values of a cell config of ``kind`` (what :func:`cell_key` leaves out)."""
    if kind == "train":
        return {"data": _data_defaults(), "train": _train_defaults(), "model": {"kwargs": {"width": 1.0}}}
    if kind == "prune":
        return {"options": {}, "selection": {}, "seed": 0, "retrain": _train_defaults()}
    if kind == "sparse":
        return {"data": _data_defaults(), "train": _train_defaults(), "criterion_options": {}, "scheme_options": {},
                "update": None, "exact": True, "selection": {}, "grad_samples": 256}
    if kind == "scratch":
        return {"train": _train_defaults()}
    if kind == "eval":  # the config holds the evaluator's non-default options only (EvaluatorSpec.non_default)
        return {"options": {}, "seed": 0, "test_limit": None, "max_samples": None}
    raise ValueError(f"unknown cell kind {kind!r}")


def cell_key(kind: str, config: dict[str, Any]) -> str:
    """The key of a cell: hash of its config without defaults (kind included, so kinds never collide)."""
    return config_hash(config, defaults_for(kind, config))


# ---------------------------------------------------------------------- planning
def model_kwargs(cfg: StudyConfig, info: Any) -> dict[str, Any]:
    """Zoo constructor arguments: the dataset's geometry, the width, then the config's extra kwargs
    (a user factory: see :func:`prunebench.study.usermodel.factory_kwargs`)."""
    if cfg.model.factory is not None:
        from prunebench.study.usermodel import factory_kwargs

        return factory_kwargs(cfg, info)
    return {"in_channels": int(info.in_channels), "num_classes": int(info.num_classes),
            "image_size": int(info.image_size[0]), "width": float(cfg.model.width), **cfg.model.kwargs}


def plan(cfg: StudyConfig, info: Any) -> list[Cell]:
    """All cells of a study, in a valid execution order (every cell after its deps).

    ``info`` is the dataset's :class:`~prunebench.data.base.DataInfo` (the model's input geometry).
    Order: per repetition the parent and its evals, then per method the pruned models, each followed
    by its evals, so that a partial run already holds complete rows.
    """
    from prunebench.study.given_parent import train_cell
    from prunebench.study.pruning_step import method_kind, non_default_options
    from prunebench.study.scratch import scratch_config
    from prunebench.study.usermodel import model_entries

    if cfg.mode == "sparse-train":
        from prunebench.study.sparse_plan import plan_sparse

        return plan_sparse(cfg, info)

    ds = cfg.dataset.as_run()
    data_id = {k: v for k, v in ds.items() if k != "test_limit"}
    kwargs = model_kwargs(cfg, info)
    model_id, run_model = model_entries(cfg, kwargs)  # zoo: {"name", "kwargs"} both
    run_common = {"data": ds, "model": run_model}
    seeds = cfg.seed_list()
    ratios, retrain_flags = cfg.ratio_list(), cfg.retrain_flags()
    cells: list[Cell] = []

    parents: list[Cell] = []
    for rep, seed in enumerate(seeds):
        conf: dict[str, Any] = {"kind": "train", "model": model_id, "data": data_id,
                "train": cfg.train.model_copy(update={"seed": seed}).model_dump(mode="json")}
        labels = {"method": "parent", "rep": rep, "cycle": 0, "target_ratio": 0.0, "retrained": True, "seed": seed}
        run = run_common
        if cfg.parent is not None:  # a given parent is loaded instead of trained (study/given_parent.py)
            conf, run = train_cell(conf, cfg.parent, seed, run_common)
            labels = {**labels, "retrained": False, "given_parent": True}
        parents.append(Cell(cell_key("train", conf), "train", conf, (), labels, run))

    def evals(model: Cell, rep: int) -> list[Cell]:
        independent = cfg.evaluation.baseline and len(parents) > 1 and cfg.parent is None  # given: all one parent
        base = parents[(rep + 1) % len(parents)] if independent else None
        return eval_cells(cfg, model, parents[rep], base, run_common)

    for rep, parent in enumerate(parents):
        cells.append(parent)
        cells.extend(evals(parent, rep))
    for rep, (parent, seed) in enumerate(zip(parents, seeds, strict=True)):
        for m, tag, retrain in cfg.pipelines():
            step_epochs = [int(f) for f in retrain_flags]  # retrained steps (x retrain.epochs each)
            prev = parent
            for step, (ratio, do_retrain) in enumerate(zip(ratios, retrain_flags, strict=True), start=1):
                start = prev if cfg.mode == "cascade" else parent
                conf = {"kind": "prune", "from": start.key, "method": m.name, "options": non_default_options(m.name, m.options),
                        "ratio": ratio, "selection": dict(cfg.selection), "seed": seed,
                        "retrain": retrain.model_copy(update={"seed": seed}).model_dump(mode="json") if do_retrain else None}
                labels = {"method": tag, "method_name": m.name, "pipeline": m.tag, "rep": rep,
                          "cycle": step if cfg.mode == "cascade" else 1,
                          "target_ratio": ratio, "retrained": do_retrain, "seed": seed, **method_kind(m.name)}
                cell = Cell(cell_key("prune", conf), "prune", conf, (start.key,), labels, run_common)
                cells.append(cell)
                cells.extend(evals(cell, rep))
                retrained = step_epochs[: step] if cfg.mode == "cascade" else step_epochs[step - 1: step]
                # one-shot masks do not depend on the retraining LR: one scratch baseline per method, not per LR
                first_lr = cfg.mode == "cascade" or not cfg.retrain_lrs or retrain.lr == cfg.retrain_lrs[0]
                for setup in (cfg.scratch or ()) if do_retrain and first_lr else ():
                    conf = scratch_config(setup, cell.key, parents[rep].config["train"], cfg.train.epochs,
                                          sum(retrained) * retrain.epochs, retrain.epochs, seed,
                                          compressed=bool(labels["structured"]))
                    name = tag if cfg.mode == "cascade" or not cfg.retrain_lrs else m.tag
                    lab = {**labels, "method": f"{name}-scratch-{setup}", "scratch": setup}
                    sc = Cell(cell_key("scratch", conf), "scratch", conf, (cell.key,), lab, run_common)
                    cells.append(sc)
                    cells.extend(evals(sc, rep))
                prev = cell
    _check_unique(cells)
    return cells


def eval_cells(cfg: StudyConfig, model: Cell, parent: Cell, baseline: Cell | None,
               run_common: dict[str, Any]) -> list[Cell]:
    """One eval cell per evaluator of the suite for ``model``; evaluators that compare with the parent get
    ``parent`` (and ``baseline``, an independently trained parent, when given)."""
    from prunebench.evaluation.registry import EVALUATORS

    out = []
    label = "parent" if model.kind == "train" else f"{model.labels['method']}@{model.labels['target_ratio']:.4g}"
    for ev in cfg.suite():
        spec = EVALUATORS.spec(ev.name)
        conf: dict[str, Any] = {"kind": "eval", "model": model.key, "evaluator": ev.name,
                                "options": spec.non_default(ev.options),
                                "test_limit": cfg.dataset.test_limit,
                                "max_samples": ev.max_samples or cfg.evaluation.max_samples,
                                "seed": cfg.evaluation.seed}
        deps = [model.key]
        if spec.needs_parent:
            conf["parent"] = parent.key
            deps.append(parent.key)
            if baseline is not None:
                conf["baseline"] = baseline.key
                deps.append(conf["baseline"])
        labels = {**model.labels, "model_label": label, "evaluator": ev.name}
        run = {**run_common, "batch_size": cfg.evaluation.batch_size}
        out.append(Cell(cell_key("eval", conf), "eval", conf, tuple(dict.fromkeys(deps)), labels, run))
    return out


def _check_unique(cells: list[Cell]) -> None:
    seen: dict[str, Cell] = {}
    for c in cells:
        if c.key in seen:
            a, b = seen[c.key].labels.get("method"), c.labels.get("method")
            raise UserError(f"methods {a!r} and {b!r} are the same method with the same options (identical cells); "
                            "remove one or change its options")
        seen[c.key] = c


def counts(cells: list[Cell]) -> dict[str, int]:
    """Number of cells per kind (for the run summary)."""
    return {k: sum(c.kind == k for c in cells) for k in KINDS}
