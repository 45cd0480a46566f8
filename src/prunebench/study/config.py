"""The study configuration schema: :class:`StudyConfig` (pydantic v2, unknown keys rejected).

Loading (YAML, bundled names, one-line messages, the checks against the registries) is
:func:`prunebench.study.loader.load_config`; this module imports nothing from it.

Shorthands accepted on input (the resolved copy saved with the results spells everything out):
``model: lenet5``, ``dataset: fashion-mnist``, ``ratios: [0.5, 0.8]``, ``methods: [wt, {ft: {norm: l2}}]``,
``evaluation: [calibration, {ood: {n_out: 2000}}]``, ``retrain: rewind``.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from itertools import pairwise
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from prunebench.analysis.rows import DEFAULT_DELTA
from prunebench.data.split import VAL_FRACTION
from prunebench.errors import UserError
from prunebench.study.sparse_config import SparseSpec
from prunebench.tolerances import INFERENCE_BATCH
from prunebench.training.config import TrainConfig

FORMAT = 1  # bump when a saved config.yaml / run directory can no longer be read by this code
RATIO_DIGITS = 6  # generated ratios are rounded so keys do not depend on the last ulp of numpy's math


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSpec(_Strict):
    name: str | None = Field(None, description="zoo model name (prunebench list models)")
    factory: str | None = Field(None, description="your own model instead: 'package.module:function' or "
                                                  "'path/to/file.py:function' (relative to the config file)")
    width: float = Field(1.0, gt=0, description="width multiplier of every hidden layer (a factory gets it if it "
                                                "takes 'width')")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="extra keyword arguments of the zoo factory "
                                                                     "or of your factory")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        return {"name": v} if isinstance(v, str) else v

    @model_validator(mode="after")
    def _one_source(self) -> ModelSpec:
        if (self.name is None) == (self.factory is None):
            raise ValueError("model: give either 'name' (a zoo model) or 'factory' (your own, "
                             "'package.module:function' or 'file.py:function'), not " + ("both" if self.name else "neither"))
        return self


class DatasetSpec(_Strict):
    name: str = Field(description="dataset name (prunebench list datasets)")
    root: str | None = Field(None, description="folder holding the files; default: the standard locations")
    val_fraction: float = Field(VAL_FRACTION, gt=0, lt=1, description="held out of train for validation / data-informed pruning")
    split_seed: int = 0
    train_limit: int | None = Field(None, gt=0, description="first N training images only (quick runs)")
    test_limit: int | None = Field(None, gt=0, description="first N test images only (quick runs)")
    options: dict[str, Any] = Field(default_factory=dict, description="the dataset's own options, e.g. image-folder's "
                                    "size: 32 (prunebench list datasets)")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        return {"name": v} if isinstance(v, str) else v

    def as_run(self) -> dict[str, Any]:
        """The spec as cells record and hash it: ``options`` only when one differs from its default, so
        a study without options keeps its keys and spelling a default out changes none."""
        out = self.model_dump(mode="json")
        opts = out.pop("options")
        if opts and not self.name.startswith("<memory>"):
            from prunebench.data import DATASETS

            opts = DATASETS.spec(self.name).non_default(opts)
        if opts:
            out["options"] = opts
        return out


class RatioSpec(_Strict):
    """Target prune ratios (fraction of prunable weights removed).

    geometric (Lost in Pruning): the *kept* fraction shrinks geometrically from 1-min to 1-max over n
    points; linear: n evenly spaced ratios from min to max; manual: ``values`` as given.
    """

    spacing: Literal["geometric", "linear", "manual"] = "geometric"
    min: float | None = Field(None, ge=0, lt=1)
    max: float | None = Field(None, ge=0, lt=1)
    n: int | None = Field(None, ge=1)
    values: tuple[float, ...] | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        if isinstance(v, (list, tuple)):
            return {"spacing": "manual", "values": list(v)}
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return {"spacing": "manual", "values": [v]}
        return v

    @field_validator("values")
    @classmethod
    def _in_range(cls, v: tuple[float, ...] | None) -> tuple[float, ...] | None:
        for x in v or ():
            if not 0.0 <= x < 1.0:
                raise ValueError(f"ratio {x} is outside [0, 1) (a prune ratio is the fraction of prunable weights "
                                 f"removed, e.g. 0.9), got {list(v or ())}")
        return v

    @model_validator(mode="after")
    def _check(self) -> RatioSpec:
        if self.spacing == "manual":
            if not self.values or any(x is not None for x in (self.min, self.max, self.n)):
                raise ValueError("spacing 'manual' takes only 'values' (a non-empty list), e.g. ratios: [0.5, 0.8, 0.9]")
        else:
            lo, hi, n = self.min, self.max, self.n
            if self.values is not None or lo is None or hi is None or n is None:
                raise ValueError(f"spacing {self.spacing!r} takes min, max and n (not values), e.g. {{spacing: "
                                 f"{self.spacing}, min: 0.3, max: 0.95, n: 8}}")
            if lo > hi or (lo == hi and n > 1):
                raise ValueError(f"min ({self.min}) must be below max ({self.max})")
        return self

    def resolve(self) -> list[float]:
        if self.spacing == "manual":
            return [float(v) for v in self.values or ()]
        n, lo, hi = int(self.n or 1), float(self.min or 0), float(self.max or 0)
        if n == 1:
            return [lo]
        if self.spacing == "linear":
            vals = [lo + (hi - lo) * i / (n - 1) for i in range(n)]
        else:  # kept fraction 1-r shrinks geometrically: (1-r_i) = (1-min) * q**i
            k0, k1 = 1.0 - lo, 1.0 - hi
            vals = [1.0 - k0 * (k1 / k0) ** (i / (n - 1)) for i in range(n)]
        vals[0], vals[-1] = lo, hi
        return [round(v, RATIO_DIGITS) for v in vals]


class MethodSpec(_Strict):
    name: str
    options: dict[str, Any] = Field(default_factory=dict)
    label: str | None = Field(None, description="row label; default the method name (needed to run one method twice)")
    retrain: dict[str, Any] | None = Field(None, description="this method's changes to the study's retraining recipe, "
                                                             "e.g. {lr: 0.01, schedule: constant} (fine-tuning)")

    @property
    def tag(self) -> str:
        return self.label or self.name


class EvaluatorSpec(_Strict):
    name: str
    options: dict[str, Any] = Field(default_factory=dict)
    max_samples: int | None = Field(None, gt=0, description="this evaluator sees the first N test images only "
                                                            "(default: evaluation.max_samples)")


class EvaluationSpec(_Strict):
    suite: tuple[EvaluatorSpec, ...] = Field((), description="evaluators besides the always-run ones (the nominal test set)")
    max_samples: int | None = Field(None, gt=0, description="evaluate on the first N test images only")
    batch_size: int = Field(INFERENCE_BATCH, ge=1, description="inference batch size (speed only; not part of cell keys)")
    seed: int = 0
    baseline: bool = Field(True, description="with >= 2 repetitions, give evaluators the next repetition's parent "
                                             "as the independently trained baseline")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        if isinstance(v, (list, tuple)):
            v = {"suite": v}
        if isinstance(v, Mapping) and "suite" in v:
            v = {**v, "suite": [_lifted(_named(e, "evaluation.suite", i), "max_samples")
                                for i, e in enumerate(v["suite"] or [])]}
        return v


def _named(entry: Any, where: str, i: int) -> Any:
    """``"wt"`` or ``{"wt": {options}}`` -> ``{"name": "wt", "options": {...}}`` (full dicts pass through)."""
    if isinstance(entry, str):
        return {"name": entry}
    if isinstance(entry, Mapping) and len(entry) == 1 and "name" not in entry:
        (name, opts), = entry.items()
        if opts is not None and not isinstance(opts, Mapping):
            raise UserError(f"{where}[{i}].{name}: options must be a mapping, got {opts!r}; "
                            f"write e.g. {{{name}: {{key: value}}}}")
        return {"name": name, "options": dict(opts or {})}
    return entry


def _lifted(entry: Any, field: str) -> Any:
    """``{ft: {norm: l2, label: ft-l2}}``: ``label`` (methods) / ``max_samples`` (evaluators) are not options."""
    if isinstance(entry, dict) and isinstance(entry.get("options"), Mapping) and field in entry["options"]:
        opts = dict(entry["options"])
        entry = {**entry, field: opts.pop(field), "options": opts}
    return entry


class StudyConfig(_Strict):
    """A whole study. See src/prunebench/configs/default.yaml for an annotated example."""

    format: int = Field(FORMAT, description="config format version (written by prunebench; leave it out)")
    prunebench_version: str | None = Field(None, description="version that wrote the resolved copy (informational)")
    name: str = "study"
    model: ModelSpec
    dataset: DatasetSpec
    train: TrainConfig = Field(default_factory=TrainConfig)
    retrain: TrainConfig | None = Field(None, description="retraining recipe; null = repeat train (LR rewinding); "
                                                          "a mapping = train with those fields changed")
    methods: tuple[MethodSpec, ...] = Field((), description="pruning methods (cascade / oneshot; at least one)")
    ratios: RatioSpec
    retrain_lrs: tuple[float, ...] | None = Field(None, description="retraining-LR axis: every method is retrained "
                                                  "at each of these initial LRs, each a pipeline <method>-lr<LR>")
    setup: str | None = Field(None, description="declared comparison setup (Wang et al. 2023): S1, S2, S3.1, S3.2, "
                                                "S4.1, S4.2, SX-A, SX-B; checked before any cell runs")
    scratch: tuple[Literal["S3", "SX-A", "SX-B"], ...] | None = Field(
        None, description="scratch baselines after every retrained prune step: the pruned architecture from a fresh "
                          "initialisation, epochs per comparison setup (S3: retraining epochs; SX-A: total epochs; "
                          "SX-B: total FLOPs)")
    cycles: int | None = Field(None, ge=0, description="how many ratios are followed by retraining (evenly spread, "
                                                       "the last always); null = all")
    mode: Literal["cascade", "oneshot", "sparse-train"] = Field("cascade", description="cascade: prune the previous "
                                                               "model further; oneshot: each ratio from the parent; "
                                                               "sparse-train: masks drawn at initialisation (sparse:)")
    sparse: SparseSpec | None = Field(None, description="runs and size axes of a sparse-train study")
    repetitions: int = Field(1, ge=1, description="independently trained parents")
    seeds: tuple[int, ...] | None = Field(None, description="one seed per repetition; default 0..repetitions-1")
    selection: dict[str, Any] = Field(default_factory=dict, description="which layers may be pruned "
                                      "(exclude_names, exclude_types, keep_first_dense, keep_last_dense)")
    evaluation: EvaluationSpec = Field(default_factory=EvaluationSpec)
    delta: float = Field(DEFAULT_DELTA, ge=0, lt=1, description="tolerated error increase for prune potential")
    device: str = Field("auto", description="cpu, cuda, cuda:N or auto")
    parent: str | None = Field(None, description="a trained parent (.safetensors: a prunebench checkpoint or a "
                               "state_dict) to prune instead of training one; repetitions then vary the pruning seed only")

    @model_validator(mode="before")
    @classmethod
    def _before(cls, v: Any) -> Any:
        if not isinstance(v, Mapping):
            return v
        v = dict(v)
        for part in ("train", "retrain"):
            if isinstance(v.get(part), Mapping) and "seed" in v[part]:
                raise UserError(f"{part}.seed: seeds are set per repetition; remove {part}.seed and use 'seeds: [..]'")
        if isinstance(v.get("methods"), (list, tuple)):
            v["methods"] = [_lifted(_lifted(_named(e, "methods", i), "label"), "retrain")
                            for i, e in enumerate(v["methods"])]
        elif isinstance(v.get("methods"), str):
            v["methods"] = [{"name": v["methods"]}]
        retrain, train = v.get("retrain"), v.get("train") or {}
        if retrain == "rewind":
            v["retrain"] = None
        elif isinstance(retrain, Mapping) and isinstance(train, Mapping):
            v["retrain"] = {**train, **retrain}  # a fine-tune recipe = the training recipe with these changes
        return v

    @field_validator("setup")
    @classmethod
    def _setup(cls, v: str | None) -> str | None:
        from prunebench.study.setups import SETUPS

        if v is not None and v not in SETUPS:
            raise ValueError(f"unknown comparison setup {v!r}; choose one of {', '.join(SETUPS)} (Wang et al. 2023)")
        return v

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not v or "/" in v or v.startswith("."):
            raise ValueError(f"name must be a plain folder-safe word, got {v!r}")
        return v

    @model_validator(mode="after")
    def _check(self) -> StudyConfig:
        if self.format != FORMAT:
            raise ValueError(f"format: config format {self.format} is not supported (this prunebench reads format {FORMAT}); "
                             "remove 'format' or regenerate the config")
        ratios = self.ratio_list()
        if self.mode == "sparse-train":
            self._check_sparse(ratios)
        elif not self.methods:
            raise ValueError("methods: list at least one pruning method, e.g. methods: [wt, ft]")
        elif self.sparse is not None:
            raise ValueError("sparse: applies to mode: sparse-train only; set mode: sparse-train or remove sparse")
        if self.mode == "cascade" and any(b <= a for a, b in pairwise(ratios)):
            raise ValueError(f"ratios: {ratios} must be strictly increasing in cascade mode (each cycle prunes further)")
        if self.mode != "cascade" and len(set(ratios)) != len(ratios):
            raise ValueError(f"ratios: {ratios} repeat a value; each ratio is one model")
        if self.cycles is not None and self.cycles > len(ratios):
            raise ValueError(f"cycles: {self.cycles} exceeds the number of ratios ({len(ratios)}); use at most {len(ratios)}")
        if self.seeds is not None:
            if len(self.seeds) != self.repetitions:
                raise ValueError(f"seeds: {len(self.seeds)} entries but repetitions is {self.repetitions}; give one seed each")
            if len(set(self.seeds)) != len(self.seeds):
                raise ValueError(f"seeds: {list(self.seeds)} repeat a value; repetitions must be independent")
        if self.retrain_lrs is not None:
            bad = [x for x in self.retrain_lrs if not x > 0]
            if not self.retrain_lrs or bad or len(set(self.retrain_lrs)) != len(self.retrain_lrs):
                raise ValueError(f"retrain_lrs: {list(self.retrain_lrs)} must be distinct positive learning rates, e.g. "
                                 "[0.001, 0.01, 0.1]" + (f"; {bad[0]} is not > 0" if bad else ""))
        tags = [m.tag for m in self.methods]
        dup = sorted({t for t in tags if tags.count(t) > 1})
        if dup:
            raise ValueError(f"methods: {dup[0]!r} is listed twice; give the second one a distinct 'label'")
        if "parent" in tags:
            raise ValueError("methods: 'parent' is reserved for the unpruned reference row; choose another label")
        names = [e.name for e in self.evaluation.suite]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"evaluation.suite: {dup[0]!r} is listed twice")
        return self

    def _check_sparse(self, ratios: list[float]) -> None:
        if self.sparse is None:
            raise ValueError("sparse: mode sparse-train needs a sparse section, e.g. sparse: {runs: [random/uniform, "
                             "random/erk]}")
        if self.methods:
            raise ValueError("methods: mode sparse-train trains masked networks from scratch (sparse.runs); remove methods")
        if any(r <= 0 for r in ratios):
            raise ValueError(f"ratios: {ratios} are sparsities in sparse-train mode and must be > 0 (the dense "
                             "reference of every size is always trained)")
        if self.scratch:
            raise ValueError("scratch: baselines of pruned models; a sparse-train study trains from scratch already")
        if self.retrain is not None or self.cycles is not None:
            raise ValueError("retrain / cycles: sparse-train mode has no retraining (every run uses the train recipe); "
                             "remove them")

    # ------------------------------------------------------------------ resolved views
    def ratio_list(self) -> list[float]:
        return self.ratios.resolve()

    def seed_list(self) -> list[int]:
        return list(self.seeds) if self.seeds is not None else list(range(self.repetitions))

    def retrain_recipe(self) -> TrainConfig:
        return self.retrain if self.retrain is not None else self.train

    def pipelines(self) -> list[tuple[MethodSpec, str, TrainConfig]]:
        """(method, row label, its retraining recipe) of every compared pipeline: each method with its own recipe
        changes, once per value of the retraining-LR axis (label ``<tag>-lr<LR>``) when there is one."""
        out = []
        for m in self.methods:
            base = self.retrain_recipe()
            if m.retrain:
                try:
                    base = TrainConfig(**{**base.model_dump(), **m.retrain})
                except ValueError as e:
                    raise UserError(f"methods ({m.tag}).retrain: {' '.join(str(e).split())[:300]}") from None
            if self.retrain_lrs is None:
                out.append((m, m.tag, base))
            else:
                out.extend((m, f"{m.tag}-lr{lr:g}", base.model_copy(update={"lr": float(lr)})) for lr in self.retrain_lrs)
        return out

    def retrain_flags(self) -> list[bool]:
        """Which ratios (by position) are followed by retraining: ``cycles`` of them, evenly spread, last included."""
        n = len(self.ratio_list())
        c = n if self.cycles is None else self.cycles
        chosen = {math.ceil((k + 1) * n / c) - 1 for k in range(c)} if c else set()
        return [i in chosen for i in range(n)]

    def suite(self) -> list[EvaluatorSpec]:
        """The evaluators to run on every model: those that always run first (the nominal test set; their
        registry spec says so), then the configured ones."""
        from prunebench.evaluation.registry import always_run

        first = always_run()
        given = {e.name: e for e in self.evaluation.suite}
        return [given.get(n, EvaluatorSpec(name=n)) for n in first] + [e for e in self.evaluation.suite if e.name not in first]

    def resolved(self) -> dict[str, Any]:
        """Everything spelled out (defaults included), loadable again with :func:`~prunebench.study.loader.load_config`."""
        from prunebench import __version__

        out = self.model_dump(mode="json")
        out["format"], out["prunebench_version"] = FORMAT, __version__
        out["seeds"] = self.seed_list()
        out["retrain"] = None if self.mode == "sparse-train" else self.retrain_recipe().model_dump(mode="json")
        for part in ("train", "retrain"):
            if out[part] is not None:
                out[part].pop("seed", None)
        out["ratios"] = {k: v for k, v in out["ratios"].items() if v is not None}
        out["model"] = {k: v for k, v in out["model"].items() if v is not None}  # name or factory
        if out.get("parent") is None:
            out.pop("parent", None)
        out["methods"] = [{k: v for k, v in m.items() if v is not None} for m in out["methods"]]
        out["evaluation"]["suite"] = [{k: v for k, v in e.items() if v is not None} for e in out["evaluation"]["suite"]]
        return out
