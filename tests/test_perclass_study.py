"""Who pays, on a real (smoke) study: predictions recorded per eval cell, per-class tables, PIEs, old runs."""
from __future__ import annotations

import json
import shutil
import sqlite3

import numpy as np
import pytest

from prunebench.data import load_dataset
from prunebench.study import load_outcomes, load_predictions, load_results, who_pays


def test_smoke_study_records_predictions_consistent_with_outcomes(smoke_run):
    run, _, rows = smoke_run
    preds, outcomes = load_predictions(run), load_outcomes(run)
    test_y = load_dataset("fashion-mnist", test_limit=500).test.y.numpy()
    assert set(preds) == {r["model_key"] for r in rows}
    for key, tags in preds.items():
        assert np.array_equal(tags["label/nominal"], test_y)
        assert np.array_equal(tags["pred/nominal"] == test_y, outcomes[key]["correct/nominal"])


def test_who_pays_tables(smoke_run):
    run, _, rows = smoke_run
    wp = who_pays(run, n_boot=200)
    assert wp.missing is None and wp.classes[1] == "trouser"
    pruned = {(r["method"], r["target_ratio"]) for r in rows if r["kind"] == "pruned"}
    nominal = [r for r in wp.per_class if r["distribution"] == "nominal"]
    assert {(r["method"], r["target_ratio"]) for r in nominal} == pruned
    assert len(nominal) == 10 * len(pruned)
    preds = load_predictions(run)
    parent = next(r["model_key"] for r in rows if r["kind"] == "parent")
    y = preds[parent]["label/nominal"]
    for (method, ratio) in pruned:
        key = next(r["model_key"] for r in rows if (r["method"], r["target_ratio"]) == (method, ratio))
        p, q = preds[parent]["pred/nominal"], preds[key]["pred/nominal"]
        recs = {r["class_index"]: r for r in nominal if (r["method"], r["target_ratio"]) == (method, ratio)}
        for c, rec in recs.items():  # Delta_c by hand: error on class c, pruned minus parent
            sel = y == c
            assert rec["delta"] == pytest.approx(float((q[sel] != c).mean() - (p[sel] != c).mean()))
            assert rec["low"] <= rec["delta"] <= rec["high"]
        pie = next(r for r in wp.pies if (r["method"], r["target_ratio"], r["distribution"]) == (method, ratio, "nominal"))
        assert pie["indices"] == np.flatnonzero(p != q).tolist() and pie["definition"].startswith("changed")
        idx = pie["indices"]  # one repetition: the modal predictions are the two models' own
        assert pie["parent_pred"] == p[idx].tolist() and pie["pruned_pred"] == q[idx].tolist()
        assert pie["labels"] == y[idx].tolist()
        pay = next(r for r in wp.classes_that_pay if (r["method"], r["target_ratio"]) == (method, ratio)
                   and r["distribution"] == "nominal")
        worst = max(recs.values(), key=lambda r: r["delta"])
        assert pay["worst_delta"] == pytest.approx(worst["delta"])
        assert pay["disparity"] == pytest.approx(worst["delta"] - pay["overall_delta"])
    assert {(o["method_a"], o["method_b"]) for o in wp.pie_overlap} == {("ft", "wt")}
    json.dumps([wp.per_class, wp.pies, wp.pie_overlap])  # plain records


def test_run_without_predictions_stays_readable(smoke_run, tmp_path):
    run, _, rows = smoke_run
    old = tmp_path / "old"
    shutil.copytree(run, old, ignore=shutil.ignore_patterns(".lock"))
    with sqlite3.connect(old / "results.sqlite") as db:
        for key, metrics in db.execute("SELECT key, metrics FROM results").fetchall():
            m = json.loads(metrics)
            m.pop("predictions", None)
            db.execute("UPDATE results SET metrics = ? WHERE key = ?", (json.dumps(m), key))
    assert load_predictions(old) == {} and len(load_results(old)) == len(rows)
    wp = who_pays(old)
    assert wp.per_class == [] and wp.pies == [] and wp.missing is not None and "--out" in wp.missing
    from prunebench.report import write_report

    write_report(old)  # the report says what is missing instead of failing
    assert "rerun the study into a new --out" in (old / "summary.md").read_text()


def test_report_shows_who_pays_with_the_tables_numbers(smoke_run, tmp_path):
    """The report's section carries the worst class and its interval of each method x ratio, the per-class
    heat table of the reference distribution and the PIE counts, as computed by who_pays."""
    from prunebench.report import write_report

    run, _, _ = smoke_run
    copy = tmp_path / "rep"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns(".lock"))
    write_report(copy)
    md = (copy / "summary.md").read_text()
    section = md.split("## Who pays for pruning", 1)[1].split("\n## ", 1)[0]
    wp = who_pays(copy)
    assert wp.classes_that_pay and wp.pies
    for r in wp.classes_that_pay:
        line = next(ln for ln in section.splitlines() if ln.startswith(f"| {r['method']} | {100 * r['target_ratio']:.0f} |"))
        assert r["worst_class"] in line and f"{100 * r['worst_delta']:+.2f} [{100 * r['worst_low']:+.2f}" in line
    assert "per-class Delta" in section and all(f"| {p['count']} |" in section for p in wp.pies)
    heat = {ln.split("|")[1].strip(): ln for ln in section.splitlines() if ln.startswith("| ") and ln.count("|") > 4}
    for r in (r for r in wp.per_class if r["distribution"] == "nominal"):  # each class's Delta in its heat-table row
        assert f"{100 * r['delta']:+.1f}" in heat[r["class"]], r
    html = (copy / "report.html").read_text()
    who = html.split('id="who-pays"', 1)[1].split("<section", 1)[0]
    assert who.count("data:image/png;base64,") == 3  # per-class heat map, PIE fraction, the PIE picture grid


def test_report_pie_grid_shows_the_most_affected_pies_with_their_labels(smoke_run, tmp_path):
    """The grid's tiles, read back from summary.md, are PIEs of the method x ratio with the largest PIE
    fraction, and their true class / parent / pruned names are the recorded labels and predictions."""
    from prunebench.report import write_report

    run, _, rows = smoke_run
    copy = tmp_path / "grid"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns(".lock"))
    write_report(copy)
    wp = who_pays(copy)
    top = max(sorted(wp.pies, key=lambda r: (r["method"], r["target_ratio"])), key=lambda r: r["fraction"])
    md = (copy / "summary.md").read_text()
    where = f"{top['method']} at {100 * top['target_ratio']:.0f}% on nominal"
    assert f"PIEs of {where}" in md
    table = md.split(f"*The PIEs shown above, {where}*", 1)[1].split("\n\n", 2)[1]
    tiles = [[c.strip() for c in ln.strip("|").split("|")] for ln in table.splitlines()[2:]]
    assert 1 <= len(tiles) <= 16
    preds = load_predictions(copy)
    parent = next(r["model_key"] for r in rows if r["kind"] == "parent")
    key = next(r["model_key"] for r in rows if (r["method"], r["target_ratio"]) == (top["method"], top["target_ratio"]))
    p, q, y = preds[parent]["pred/nominal"], preds[key]["pred/nominal"], preds[parent]["label/nominal"]
    test_y = load_dataset("fashion-mnist", test_limit=500).test.y.numpy()
    for index, true, par, pru in tiles:
        i = int(index)
        assert p[i] != q[i] and test_y[i] == y[i]  # a PIE, and the image shown is the recorded test example
        assert (true, par, pru) == (wp.classes[y[i]], wp.classes[p[i]], wp.classes[q[i]])
    broke = [t for t in tiles if t[1] == t[2] != t[3]]
    assert tiles[:len(broke)] == broke  # what pruning broke comes first


def test_report_reads_the_store_once_and_who_pays_takes_what_it_read(smoke_run, tmp_path, monkeypatch):
    from prunebench.report import write_report
    from prunebench.study import results
    from prunebench.study.results import load_study_predictions

    run, _, _ = smoke_run
    copy = tmp_path / "once"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns(".lock"))
    rows, outcomes, preds = load_study_predictions(copy)
    alone = load_predictions(copy)  # the same arrays as the separate reader's
    assert {k: set(v) for k, v in preds.items()} == {k: set(v) for k, v in alone.items()} and preds
    assert all(np.array_equal(preds[k][t], v) for k, tags in alone.items() for t, v in tags.items())
    given, read = who_pays(copy, n_boot=200, study=(rows, outcomes, preds)), who_pays(copy, n_boot=200)
    assert given.per_class == read.per_class and given.classes_that_pay == read.classes_that_pay
    assert given.pies == read.pies and given.data == read.data == {**given.data, "name": "fashion-mnist"}
    calls = []
    real = results._read
    monkeypatch.setattr(results, "_read", lambda r: calls.append(r) or real(r))
    write_report(copy)
    assert len(calls) == 1  # rows, outcomes and predictions for every section from one pass over the store
