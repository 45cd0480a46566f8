"""What one cell does: train a parent, prune (+ retrain) a model, or run one evaluator on a checkpoint.

:func:`run_cell` is a plain top-level function over JSON-able arguments so that a worker process
(``concurrent.futures``, spawn) can run it. It writes the cell's checkpoint (atomically) and
returns an outcome dict; the caller writes the store record *after* the checkpoint exists, so a
killed run leaves no record and the cell restarts cleanly.

Determinism: the model is built right after seeding the RNG with the cell's seed; the trainer,
the pruning call and the evaluators are seeded from the config. A cell's checkpoint is therefore
a function of its config on a given device; its SHA-256 is recorded so dependents can tell.
"""
from __future__ import annotations

import hashlib
import json
import time
import traceback
from pathlib import Path
from typing import Any

import torch

from prunebench.data.split import VAL_FRACTION
from prunebench.data.tensors import MEMORY, memory_dataset
from prunebench.study.compute import no_training, stage
from prunebench.study.rundir import CACHE, checkpoint_path
from prunebench.study.trainability import jacobian_stats, trainability_accuracy
from prunebench.study.usermodel import build_model, checkpoint_meta
from prunebench.tolerances import INFERENCE_BATCH

_DATA: dict[str, Any] = {}  # per-process dataset cache (spec JSON -> Dataset)


def get_dataset(spec: dict[str, Any]):
    """The dataset for a spec (name, root, val_fraction, split_seed, train_limit, test_limit), cached per process."""
    from prunebench.data import load_dataset

    if spec["name"].startswith(MEMORY):  # handed to run_study(data=...) in this process
        return memory_dataset(spec["name"])
    key = json.dumps(spec, sort_keys=True)
    if key not in _DATA:
        _DATA[key] = load_dataset(spec["name"], spec.get("root"), val_fraction=spec.get("val_fraction", VAL_FRACTION),
                                  split_seed=spec.get("split_seed", 0), train_limit=spec.get("train_limit"),
                                  test_limit=spec.get("test_limit"), options=spec.get("options"))
    return _DATA[key]


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def run_cell(cell: dict[str, Any], run_dir: str, device: str, progress: bool = False) -> dict[str, Any]:
    """Execute one cell (as :meth:`Cell.to_json`); never raises for a failing cell (status "failed")."""
    from prunebench.study.plan import Cell

    c = Cell.from_json(cell)
    t0 = time.perf_counter()
    try:
        work = {"train": _train, "prune": _prune, "sparse": _sparse, "scratch": _scratch, "eval": _eval}[c.kind]
        metrics = work(c, Path(run_dir), torch.device(device), progress)
        return {"key": c.key, "status": "done", "metrics": metrics, "seconds": time.perf_counter() - t0}
    except Exception as e:  # noqa: BLE001  (a failed cell is recorded; independent cells go on)
        msg = " ".join(str(e).split()) or type(e).__name__
        return {"key": c.key, "status": "failed", "error": f"{type(e).__name__}: {msg}",
                "traceback": traceback.format_exc(limit=20), "seconds": time.perf_counter() - t0}


# ---------------------------------------------------------------------- the three kinds
def _train_summary(result: Any) -> dict[str, Any]:
    hist = result.history
    last = hist[-1] if hist else {}
    return {"epochs": len(hist), "best_epoch": result.best_epoch, "best_val_acc": result.best_val_acc,
            "final_train_loss": last.get("train_loss"), "final_train_acc": last.get("train_acc"),
            "final_val_acc": last.get("val_acc"), "seconds": result.seconds, "images_per_s": result.images_per_s}


def _meta(c: Cell, kwargs: dict[str, Any], data_spec: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """Checkpoint metadata: enough for ``load_checkpoint`` and ``prunebench evaluate`` to use the file alone."""
    return {**checkpoint_meta(c.run["model"]), "model_kwargs": kwargs, "dataset": data_spec["name"],
            "data_root": data_spec.get("root"), "val_fraction": data_spec.get("val_fraction", VAL_FRACTION),
            "split_seed": data_spec.get("split_seed", 0), "train_limit": data_spec.get("train_limit"),
            **({"data_options": data_spec["options"]} if data_spec.get("options") else {}),
            "cell": c.key, "kind": c.kind, "config": c.config, **extra}


def _train(c: Cell, run_dir: Path, device: torch.device, progress: bool) -> dict[str, Any]:
    from prunebench.pruning.sparse.gradflow import gradient_norm
    from prunebench.store import save_checkpoint
    from prunebench.study.pruning_step import efficiency
    from prunebench.training import TrainConfig, train

    data = get_dataset(c.run["data"])
    kwargs = c.run["model"]["kwargs"]
    if c.run.get("given_parent"):  # loaded, not trained (study/given_parent.py)
        from prunebench.study.given_parent import load_given_parent

        model = load_given_parent(c.run["given_parent"], build_model(c.run["model"]))
        meta = _meta(c, kwargs, c.run["data"], seed=c.config["seed"], given_parent=c.run["given_parent"], history=[])
        path = save_checkpoint(checkpoint_path(run_dir, c.key), model, meta)
        return {"prune_ratio": 0.0, **efficiency(model, None, data.info, device), "train": None,
                "grad_norm_init": None, "compute": None, "sha256": file_sha256(path)}  # its training cost: unknown
    recipe = TrainConfig(**c.config["train"])
    torch.manual_seed(recipe.seed)  # the initialisation is part of what the seed fixes
    model = build_model(c.run["model"]).to(device)
    grad0 = gradient_norm(model, data, seed=recipe.seed) if len(data.val) >= 2 else None
    result = train(model, data, recipe, device=device, progress=progress, desc=c.describe())
    meta = _meta(c, kwargs, c.run["data"], seed=recipe.seed, train=c.config["train"], history=result.history)
    path = save_checkpoint(checkpoint_path(run_dir, c.key), model, meta)
    eff = efficiency(model, None, data.info, device)
    return {"prune_ratio": 0.0, **eff, "train": _train_summary(result), "grad_norm_init": grad0,
            "compute": stage("train", result, recipe, eff["flops_dense"]), "sha256": file_sha256(path)}


def _prune(c: Cell, run_dir: Path, device: torch.device, progress: bool) -> dict[str, Any]:
    from prunebench.store import load_checkpoint, save_checkpoint
    from prunebench.study.pruning_step import efficiency, prune_model
    from prunebench.training import TrainConfig, train

    conf = c.config
    data = get_dataset(c.run["data"])
    src = load_checkpoint(checkpoint_path(run_dir, conf["from"]), device)
    model = src.model
    torch.manual_seed(conf["seed"])
    state = prune_model(model, conf["method"], conf["ratio"], data=data, masks=src.masks or None,
                        selection=conf["selection"], seed=conf["seed"], device=device, options=conf["options"])
    before = state.prune_ratio()
    summary = None
    history: list[dict[str, float]] = []
    compute = no_training("retrain")
    trainability: dict[str, Any] = {"jacobian_pruned": jacobian_stats(model, data, device)}
    if conf["retrain"] is not None:
        recipe = TrainConfig(**conf["retrain"])
        flops_during = efficiency(model, state, data.info, device)["flops_effective"]  # the pruned network
        result = train(model, data, recipe, device=device, callbacks=[state], progress=progress, desc=c.describe())
        summary, history = _train_summary(result), result.history
        compute = stage("retrain", result, recipe, flops_during)
        trainability.update(trainability_acc=trainability_accuracy(history, recipe),
                            jacobian_retrained=jacobian_stats(model, data, device))
    state.apply()
    state.verify(model)
    meta = _meta(c, src.meta.get("model_kwargs", {}), c.run["data"], seed=conf["seed"], method=conf["method"],
                 ratio=conf["ratio"], parent_cell=conf["from"], history=history)
    path = save_checkpoint(checkpoint_path(run_dir, c.key), model, meta, masks=dict(state.masks))
    return {"prune_ratio": state.prune_ratio(), "prune_ratio_before_retrain": before,
            **efficiency(model, state, data.info, device), "train": summary, "compute": compute,
            "trainability": trainability, "sha256": file_sha256(path)}


def _sparse(c: Cell, run_dir: Path, device: torch.device, progress: bool) -> dict[str, Any]:
    """Sparse training from scratch: the dense reference's initialisation (same seed), a mask drawn by the
    run's criterion at its scheme's densities, trained with the same recipe; static masks are enforced after
    every step, dynamic ones rewired on schedule; verified before saving."""
    from prunebench.pruning import Selection
    from prunebench.pruning.sparse import sparse_init
    from prunebench.pruning.sparse.dynamic import DynamicSparsity
    from prunebench.pruning.sparse.gradflow import gradient_norm
    from prunebench.store import save_checkpoint
    from prunebench.study.pruning_step import efficiency
    from prunebench.training import TrainConfig, train

    conf = c.config
    data = get_dataset(c.run["data"])
    recipe = TrainConfig(**conf["train"])
    kwargs = c.run["model"]["kwargs"]
    torch.manual_seed(recipe.seed)  # the same initial weights as the dense reference of this seed
    model = build_model(c.run["model"]).to(device)
    sel = Selection.from_dict(dict(conf["selection"])) if conf.get("selection") else None
    state, scheme_dens = sparse_init(model, conf["density"], criterion=conf["criterion"], scheme=conf["scheme"],
                                     data=data, selection=sel, seed=recipe.seed, exact=conf.get("exact", True),
                                     criterion_options=conf.get("criterion_options"),
                                     scheme_options=conf.get("scheme_options"))
    grad0 = gradient_norm(model, data, state=state, n=conf.get("grad_samples", 256), seed=recipe.seed)
    initial = state.layer_densities()
    flops_during = efficiency(model, state, data.info, device)["flops_effective"]  # the masked network
    update = conf.get("update")
    callback: Any = state
    if update is not None:
        callback = DynamicSparsity(state, update["rule"], seed=recipe.seed, options=update.get("options"))
    result = train(model, data, recipe, device=device, callbacks=[callback], progress=progress, desc=c.describe())
    state.apply()
    state.verify(model)
    meta = _meta(c, kwargs, c.run["data"], seed=recipe.seed, train=conf["train"], history=result.history,
                 density=conf["density"], criterion=conf["criterion"], scheme=conf["scheme"], update=update)
    path = save_checkpoint(checkpoint_path(run_dir, c.key), model, meta, masks=dict(state.masks))
    dst = getattr(callback, "history", None)
    return {"prune_ratio": state.prune_ratio(), **efficiency(model, state, data.info, device),
            "train": _train_summary(result), "grad_norm_init": grad0, "scheme_densities": scheme_dens,
            "layer_densities": state.layer_densities(), "initial_layer_densities": initial,
            "mask_updates": None if dst is None else {"updates": len(dst), "moved": sum(h["moved"] for h in dst)},
            "compute": stage("sparse-train", result, recipe, flops_during), "sha256": file_sha256(path)}


def _scratch(c: Cell, run_dir: Path, device: torch.device, progress: bool) -> dict[str, Any]:
    from prunebench.study.scratch import run_scratch

    return run_scratch(c, run_dir, device, progress)


def _eval(c: Cell, run_dir: Path, device: torch.device, progress: bool) -> dict[str, Any]:
    from prunebench.analysis.outcomes import OUTCOMES_KEY, PREDICTIONS_KEY, pack, pack_labels
    from prunebench.evaluation.base import EvalContext
    from prunebench.evaluation.suite import evaluate_suite
    from prunebench.store import load_checkpoint

    conf = c.config
    data = get_dataset(c.run["data"])
    model = load_checkpoint(checkpoint_path(run_dir, conf["model"]), device).model
    parent = load_checkpoint(checkpoint_path(run_dir, conf["parent"]), device).model if conf.get("parent") else None
    baseline = load_checkpoint(checkpoint_path(run_dir, conf["baseline"]), device).model if conf.get("baseline") else None
    ctx = EvalContext(data=data, device=device, parent=parent, baseline=baseline, seed=conf.get("seed", 0),
                      batch_size=c.run.get("batch_size", INFERENCE_BATCH), max_samples=conf.get("max_samples"),
                      cache_dir=run_dir / CACHE)
    name = conf["evaluator"]
    res = evaluate_suite(model, ctx, [name], {name: dict(conf.get("options") or {})})
    out = {**res.metrics, OUTCOMES_KEY: {tag: pack(v) for tag, v in res.outcomes.items()}}
    if res.labels:
        out[PREDICTIONS_KEY] = {tag: pack_labels(v) for tag, v in res.labels.items()}
    return out


from prunebench.study.plan import Cell  # noqa: E402  (type used in signatures; plan imports nothing from here)
