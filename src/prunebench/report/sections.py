"""The sections of the study report: failed / blocked / pending cells (only for an incomplete study),
overview and finding, prune potential, accuracy, excess error, model cost, one section per evaluator
present, and the resolved configuration."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from prunebench import analysis as A
from prunebench.analysis.fairness import is_fair_study
from prunebench.analysis.sparse import is_sparse_study
from prunebench.evaluation.registry import EVALUATORS, EvaluatorSpec
from prunebench.report import plots as P
from prunebench.report.budget import budget_table
from prunebench.report.content import (
    Code,
    Document,
    Image,
    Section,
    Table,
    Text,
    acc_panels,
    baseline_level,
    cost_rows,
    cost_summary,
    curve,
    getter,
    level,
    mean_getter,
    metric_keys,
    pct,
    pp_param_panels,
    pp_table,
    signed,
)
from prunebench.report.decisions import decisions_section, finding_blocks
from prunebench.study.rundir import read_data_summary

if TYPE_CHECKING:
    from prunebench.study.rundir import CellFailure

Row = Mapping[str, Any]

MAX_METRIC_PANELS = 12


def missing_methods(failures: Sequence[CellFailure], an: A.Analysis) -> list[str]:
    """Methods with failed or blocked cells and no result row at all (absent from every table and figure)."""
    named = (str(f.labels.get("method")) for f in failures if f.labels.get("method") not in (None, "parent"))
    return [m for m in dict.fromkeys(named) if m not in an.methods]


def _failed_what(f: CellFailure) -> str:
    """'parent', 'wt @ 50%' or 'calibration of wt @ 50%' from a failed cell's labels."""
    method, ratio = str(f.labels.get("method", "?")), f.labels.get("target_ratio")
    model = method + (f" @ {100 * ratio:g}%" if isinstance(ratio, (int, float)) and method != "parent" else "")
    return f"{f.labels.get('evaluator', '?')} of {model}" if f.kind == "eval" else model


def incomplete_section(failures: Sequence[CellFailure], pending: int, run_dir: str,
                       missing: Sequence[str]) -> Section | None:
    """What did not finish, why, and what to do; None for a complete study. ``failures`` and ``pending`` are
    :func:`prunebench.study.rundir.cell_failures` and :func:`~prunebench.study.rundir.pending_cells`."""
    n_failed = sum(f.status == "failed" for f in failures)
    n_blocked = len(failures) - n_failed
    n_pending = max(pending - len(failures), 0)  # pending_cells counts failed and blocked cells too
    if not failures and not n_pending:
        return None
    blocks: list[Any] = [Text(f"Incomplete study: {n_failed} cell(s) failed, {n_blocked} blocked, {n_pending} pending. "
                              "Everything below covers the finished cells only.", "alert")]
    if missing:
        blocks.append(Text(f"No results for method(s) {', '.join(missing)}: every cell of theirs failed or is blocked, "
                           "so they appear in no table or figure below.", "alert"))
    if failures:
        body = [[f.kind, _failed_what(f), str(f.labels.get("rep", "-")), f.status, f.error, f.hint, f.key]
                for f in failures]
        blocks.append(Table(["cell", "method / ratio or evaluator", "rep", "status", "error", "what to do", "key"], body,
                            "Failed cells raised the error shown (full traceback: metrics.traceback in results.sqlite); "
                            "blocked cells did not run because an input cell failed", collapsed=len(body) > 40, wrap=True))
    if n_pending:
        blocks.append(Text(f"{n_pending} cell(s) have not run yet: the run was stopped, or is still in progress."))
    blocks.append(Text(f"What to do: fix the cause given per cell, then rerun the study into the same directory, e.g. "
                       f"`prunebench run {run_dir}/config.yaml --out {run_dir}` (or your edited config with --out "
                       f"{run_dir}): finished cells are reused; failed, blocked and pending cells run again. "
                       f"`prunebench report {run_dir}` exits 1 until the study is complete; pass --allow-incomplete "
                       "to make it exit 0."))
    return Section("incomplete", "Incomplete study", blocks, alert=True)


def overview(rows: Sequence[Row], an: A.Analysis, run_dir: str, config: Mapping | None,
             missing: Sequence[str] = ()) -> Section:
    parents = [r for r in rows if r.get("kind") == "parent"]
    pruned = [r for r in rows if r.get("kind") == "pruned"]
    reps = sorted({str(r.get("rep")) for r in rows})
    cfg = config or {}
    named = {k: (v.get("name") or _factory_name(v.get("factory"))) if isinstance(v, Mapping) else v
             for k, v in cfg.items() if k in ("name", "model", "dataset")}
    what = ", ".join(f"{k} {v}" for k, v in named.items() if isinstance(v, (str, int, float)))
    blocks: list[Any] = [Text(
        f"Run {run_dir}: {len(parents)} parent and {len(pruned)} pruned model(s), {len(reps)} repetition(s), "
        f"methods {', '.join(an.methods) or 'none'}"
        + (f" (no results for {', '.join(missing)}: see Incomplete study)" if missing else "")
        + f", {len(an.distributions)} test distribution(s)"
        + (f"; {what}" if what else "") + f". Prune-potential tolerance delta = {pct(an.delta)}%.")]
    if is_sparse_study(rows):
        pass  # one recipe for every run by construction
    elif cfg.get("setup"):
        from prunebench.study.setups import SETUPS, describe

        setup = str(cfg["setup"])
        blocks.append(Text(f"Comparison setup {setup} (Wang et al. 2023): "
                           f"{describe(setup) if setup in SETUPS else 'unknown to this prunebench'}; checked "
                           "before any cell ran. The compute budget of every pipeline is in 'Model size and cost'.",
                           "finding"))
    else:
        blocks.append(Text("No comparison setup declared: compare pipelines only with their compute budgets (in "
                           "'Model size and cost') in view.", "note"))
    if is_sparse_study(rows):  # the prune-retrain findings do not apply; its own verdicts lead the next section
        blocks.append(Text("A sparse-training study (mode: sparse-train): the random-pruning findings and their "
                           "verdicts are in 'Sparse training from scratch' below; prune potential below treats each "
                           "run's sparsities as prune ratios against the dense model of the same size.", "note"))
    else:
        blocks.extend(finding_blocks(an))
        if an.methods:
            blocks.append(glance_table(an))
    data = read_data_summary(Path(run_dir))
    if data:
        names = ", ".join(data.get("classes") or []) or f"{data.get('num_classes')} unnamed classes"
        size = "x".join(str(v) for v in data.get("image_size", []))
        blocks.append(Text(f"Data {data.get('name')}: {data.get('train')} training, {data.get('val')} validation "
                           f"(carved from train, used for checkpoint selection and data-informed pruning) and "
                           f"{data.get('test')} test images, {data.get('channels')} x {size}; classes: {names}."))
    if cfg.get("parent"):
        blocks.append(Text(f"Given parent {cfg['parent']}: it was loaded, not trained. Every repetition starts from "
                           "this one parent, so repetitions vary only the pruning and retraining seed; they are not "
                           "independently trained parents (no separately trained baseline), and the spread and "
                           "intervals describe this parent's pruning, not a population of parents.", "note"))
    if len(reps) < 2:
        blocks.append(Text("One repetition only: no spread over repetitions, intervals collapse to the value.", "note"))
    return Section("overview", "Overview", blocks)


def _factory_name(spec: object) -> str | None:
    """``file.py:function`` / ``package.module:function`` of a user model factory spec (torch-free)."""
    if not isinstance(spec, str):
        return None
    where, _, func = spec.rpartition(":")
    return f"{where.replace(chr(92), '/').rsplit('/', 1)[-1]}:{func}" if where.endswith(".py") else spec


def glance_table(an: A.Analysis) -> Table:
    """One line per method: kind, nominal PP, each group's mean / min PP, excess-error slope."""
    stats = {(s["method"], s["distribution"]): s for s in an.summary}
    aggs = list(dict.fromkeys(s["distribution"] for s in an.summary if s["aggregate"] == "mean"))
    cols = [an.reference] * (an.reference is not None) + aggs
    kind = {True: "structured", False: "unstructured", None: "?"}
    body, shade = [], {}
    for i, m in enumerate(an.methods):
        line = [m, kind[an.kind(m)[0]]]
        for j, c in enumerate(cols):
            s = stats.get((m, c))
            line.append(A.cell_text(s) if s else "-")
            if s:
                shade[(i, j + 2)] = s["mean"]
        slope = an.excess_slopes.get(m)
        body.append(line + ([signed(100 * slope) if slope is not None else "-"] if an.excess_slopes else []))
    header = ["method", "type", *cols] + (["excess-error slope"] if an.excess_slopes else [])
    caption = ("At a glance: prune potential [%] (mean ± std over repetitions) on the nominal test set"
               + (" and averaged over each evaluator's distributions (min and per distribution below)" if aggs else "")
               + ("; excess-error slope in percentage points per unit prune ratio" if an.excess_slopes else ""))
    return Table(header, body, caption, shade)


def prune_potential_section(an: A.Analysis, colors: Mapping[str, str]) -> Section:
    summ, meths = an.summary, an.methods
    dists = [d for d in an.distributions if len(an.summaries.get(d, ())) != 1]  # no single-member summaries
    aggs = [s["distribution"] for s in summ if s["aggregate"] is not None]
    aggs = list(dict.fromkeys(aggs))
    ref = [an.reference] if an.reference in dists else []
    names = dists if len(dists) <= 12 else ref + aggs
    stats = {(s["method"], s["distribution"]): s for s in summ}
    blocks: list[Any] = [Text(
        "Prune potential PP = the largest tested prune ratio whose error on a distribution stays within delta of the "
        "parent's (Lost in Pruning's definition); 0 if none qualifies. Per distribution, and per evaluator group as the "
        "mean and the min over its distributions (computed per repetition, then summarised).")]
    if names and meths:
        blocks.append(Image(P.pp_bars(names, meths, stats, colors), "Prune potential per method (bars: mean over "
                                                                      "repetitions, whiskers: std)."))
        rest = [d for d in dists if d not in ref] if len(dists) <= 12 else []
        blocks.append(pp_table(summ, ref + aggs + rest, meths,
                               "Prune potential [%]: mean ± std [95% bootstrap interval] over repetitions"
                               + ("; every distribution in the evaluator sections" if not rest else "")))
    else:
        blocks.append(Text("No pruned rows with accuracies: nothing to compare.", "note"))
    return Section("prune-potential", "Prune potential", blocks)


def accuracy_section(rows: Sequence[Row], an: A.Analysis, colors: Mapping[str, str]) -> Section:
    keys = A.accuracy_keys(rows)
    meths, delta = an.methods, an.delta
    blocks: list[Any] = []
    if an.reference in keys:
        fn = getter(keys[an.reference])
        panel = P.Panel("nominal test accuracy", {m: curve(rows, m, fn) for m in meths}, parent=level(rows, fn), band=delta)
        blocks.append(Image(P.curve_grid([panel], colors, ylabel="accuracy [%]", percent_y=True, size=(7.0, 3.8)),
                            "Nominal test accuracy vs achieved prune ratio (mean over repetitions, ±std shaded); "
                            "dashed: parent, grey band: parent ± delta."))
    groups = {g: ds for g, ds in an.groups.items() if g != an.reference_group}
    if groups:
        panels = [P.Panel(f"{g} (mean of {len(ds)})", {m: curve(rows, m, mean_getter([keys[d] for d in ds])) for m in meths},
                          parent=level(rows, mean_getter([keys[d] for d in ds])), band=delta) for g, ds in groups.items()]
        blocks.append(Image(P.curve_grid(panels, colors, ylabel="accuracy [%]", percent_y=True),
                            "Mean accuracy over each evaluator's distributions; per-distribution plots in the "
                            "evaluator sections below."))
    return Section("accuracy", "Accuracy vs prune ratio", blocks)


def excess_section(an: A.Analysis, colors: Mapping[str, str]) -> Section:
    recs, slopes, shifted = an.excess_error, an.excess_slopes, an.shifted
    if not recs:
        return Section("excess-error", "Excess error", [Text(
            "Needs the nominal accuracy and at least one shifted distribution for the parent and pruned models.", "note")])
    label = ", ".join(shifted) if len(shifted) <= 4 else f"mean of {len(shifted)} distributions"
    blocks: list[Any] = [
        Text("Excess error e = [err(pruned, D') - err(pruned, D)] - [err(parent, D') - err(parent, D)], D nominal, "
             f"D' the mean over {', '.join(shifted)} (Lost in Pruning). e > 0: pruning costs more accuracy "
             "on the shifted data than on the nominal data. Lines: least-squares fits through the origin."),
        Image(P.excess_plot(recs, slopes, colors, label), "Excess error per pruned model [percentage points]."),
        Table(["method", "slope [pp per unit prune ratio]", "models", "mean e [pp]"],
              [[m, signed(100 * b), str(sum(r["method"] == m for r in recs)),
                signed(100 * float(np.mean([r['excess_error'] for r in recs if r['method'] == m])))] for m, b in slopes.items()],
              "Through-origin slope of excess error vs prune ratio per method")]
    return Section("excess-error", "Excess error", blocks)


def _param_panels(rows: Sequence[Row], ev: str, name: str, meths: Sequence[str]) -> list:
    """Per method: ``<ev>/<name>/<param>`` against the parameter, one line per prune ratio (-1: the baseline)."""
    panels = []
    keys = sorted({k for r in rows for k in r if k.startswith(f"{ev}/{name}/")}, key=lambda k: float(k.rsplit("/", 1)[1]))
    for m in meths:
        by: dict[float, list[tuple[float, float]]] = {}
        for k in keys:
            eps = float(k.rsplit("/", 1)[1])
            for x, y, _ in curve(rows, m, getter(k)):
                by.setdefault(round(x, 3), []).append((eps, y))
            b = baseline_level(rows, k)
            if b is not None:
                by.setdefault(-1.0, []).append((eps, b))
        panels.append((m, by))
    return panels


def _spec(ev: str) -> EvaluatorSpec | None:
    """The registered spec of an evaluator, None for one this process does not know (a plug-in not loaded)."""
    return EVALUATORS.spec(ev) if ev in EVALUATORS else None


def _metric_choice(spec: EvaluatorSpec | None, keys: Sequence[str]) -> list[str]:
    """The non-accuracy metrics that get a panel: the spec's ``panels`` (exact key or ``prefix/``), else all."""
    own = [k for k in keys if not k.split("/", 1)[1].startswith(("acc/", "baseline_", "parent_"))]
    if spec is not None and spec.panels is not None:
        want = spec.panels
        own = [k for k in own if any(k.split("/", 1)[1] == w or (w.endswith("/") and k.split("/", 1)[1].startswith(w))
                                     for w in want)]
    return own[:MAX_METRIC_PANELS]


def evaluator_section(ev: str, rows: Sequence[Row], an: A.Analysis, keys: Sequence[str], colors: Mapping[str, str]) -> Section:
    meths, delta = an.methods, an.delta
    dists = an.groups.get(ev, [])
    spec = _spec(ev)
    blocks: list[Any] = [Text(spec.description if spec and spec.description else f"Metrics of evaluator {ev!r}.")]
    if dists:
        panels, note = acc_panels(rows, dists, A.accuracy_keys(rows), meths, delta)
        blocks.append(Image(P.curve_grid(panels, colors, ylabel="accuracy [%]", percent_y=True),
                            f"Accuracy vs prune ratio per distribution; grey band: parent ± delta{note}."))
        pp_panels = pp_param_panels(an.summary, dists, meths)
        if pp_panels:
            xlabel = spec.axis_label if spec else "level"
            blocks.append(Image(P.param_lines(pp_panels, colors, xlabel),
                                f"Prune potential vs {xlabel} (mean over repetitions, whiskers: std)."))
        aggs = [s["distribution"] for s in an.summary if s["group"] == ev and s["aggregate"]]
        own = [s["distribution"] for s in an.summary if s["group"] == ev and not s["aggregate"] and s["leaves"] != 1]
        blocks.append(pp_table(an.summary, list(dict.fromkeys(aggs + own)), meths,
                               f"Prune potential [%] on the {ev} distributions"))
    for plot in spec.param_plots if spec else ():
        if spec is not None and any(f"/{plot.metric}/" in k for k in keys):
            blocks.append(Image(P.ratio_family(_param_panels(rows, ev, plot.metric, meths), spec.axis_label, plot.ylabel),
                                plot.caption))
    chosen = _metric_choice(spec, keys)
    if chosen:
        panels = []
        for k in chosen:
            fn = getter(k)
            panels.append(P.Panel(k.split("/", 1)[1], {m: curve(rows, m, fn) for m in meths}, parent=level(rows, fn),
                                  baseline=baseline_level(rows, k)))
        for k, p in zip(chosen, panels, strict=True):  # condition numbers etc. spanning decades: log axis
            vals = [v for r in rows if (v := A.value(r, k)) is not None]
            p.logy = bool(vals) and min(vals) > 0 and max(vals) / min(vals) > 100
        blocks.append(Image(P.curve_grid(panels, colors, ylabel="value"),
                            f"{ev} metrics vs prune ratio (dashed: parent" + (", dotted: baseline" if any(
                                p.baseline is not None for p in panels) else "") + ")."))
    return Section(f"ev-{ev}", f"Evaluator: {ev}", blocks)


def config_section(config_text: str | None) -> Section:
    if not config_text:
        return Section("config", "Configuration", [Text("No config.yaml in the run directory.", "note")])
    return Section("config", "Configuration", [Code(config_text, "config.yaml (the resolved study configuration)")])


def build_document(rows: Sequence[Row], an: A.Analysis, run_dir: str, config: Mapping | None, config_text: str | None,
                   failures: Sequence[CellFailure] = (), pending: int = 0, who: Any = None) -> Document:
    """All sections; an incomplete study (failed / blocked / pending cells) gets the "Incomplete study" one first."""
    colors = P.method_colors(an.methods)
    missing = missing_methods(failures, an)
    incomplete = incomplete_section(failures, pending, run_dir, missing)
    sections = [incomplete] if incomplete else []
    sections.append(overview(rows, an, run_dir, config, missing))
    if is_sparse_study(rows):  # mode: sparse-train (docs/STUDY.md): its own section leads
        from prunebench.report.sparse import sparse_section

        sections.append(sparse_section(rows, an))
    elif is_fair_study(rows):  # a retraining-LR sweep or scratch baselines (Wang et al. 2023)
        from prunebench.report.fairness import fairness_section

        sections.append(fairness_section(rows, an))
    sections += [decisions_section(an), prune_potential_section(an, colors),
                accuracy_section(rows, an, colors), excess_section(an, colors),
                Section("cost", "Model size and cost", [cost_summary(rows, an.reference), cost_rows(rows, an.reference),
                                                        *filter(None, [budget_table(rows)])])]
    from prunebench.report.trainability import trainability_section

    sections.extend(filter(None, [trainability_section(rows, colors)]))
    if who is not None:  # a WhoPays of the run (per-class Delta, PIEs)
        from prunebench.report.whopays import who_pays_section

        sections.append(who_pays_section(who, an.reference, colors))
    for ev, keys in metric_keys(rows).items():
        if ev == an.reference_group:  # its accuracy is the main plot above
            continue
        sections.append(evaluator_section(ev, rows, an, keys, colors))
    sections.append(config_section(config_text))
    return Document(f"prunebench report: {run_dir}", sections)


__all__ = ["build_document"]
