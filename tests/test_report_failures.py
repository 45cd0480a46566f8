"""An incomplete study says so in report.html and summary.md: failed, blocked and pending cells (what,
why, what to do), first, with every message escaped; a method whose cells all failed is named; a
complete study has no such section. Real smoke runs (the shared session run, copied and changed)."""
from __future__ import annotations

import re
import shutil
from html import escape
from pathlib import Path

import pytest

from prunebench.errors import UserError
from prunebench.report import write_report
from prunebench.store import ResultStore
from prunebench.study import run_study

from helpers import SMOKE
from test_report import CHROMIUM, _chromium

FT = "<i>ft</i>"  # the failing method's label: markup that must come out escaped
# ft traced with 5-channel inputs: a valid config, but its pruning fails at run time (LeNet-5 takes 1 channel)
FAILING_FT = {"ft": {"input_shape": [5, 28, 28], "label": FT}}


def copy_of(smoke_run, dst: Path) -> Path:
    shutil.copytree(smoke_run[0], dst)
    return dst


def texts(run: Path) -> tuple[str, str]:
    html_path, md_path = write_report(run, n_boot=50)
    return html_path.read_text(), md_path.read_text()


@pytest.fixture(scope="module")
def failing(smoke_run, tmp_path_factory):
    """The smoke study with a failing ft: wt is reused from the shared run, ft's first prune fails, everything
    built on it is blocked."""
    run = copy_of(smoke_run, tmp_path_factory.mktemp("failing") / "run")
    summary = run_study({**SMOKE, "methods": ["wt", FAILING_FT]}, run, progress=False)
    assert summary.failed and summary.blocked and not summary.executed_kinds()["train"]
    html, md = texts(run)
    return {"run": run, "summary": summary, "html": html, "md": md}


def test_failed_and_blocked_cells_come_first_with_what_why_and_what_to_do(failing):
    html, md, summary, run = failing["html"], failing["md"], failing["summary"], failing["run"]
    headline = (f"Incomplete study: {len(summary.failed)} cell(s) failed, {len(summary.blocked)} blocked, "
                "0 pending.")
    assert headline in html and f"**{headline}" in md
    assert html.index('id="incomplete"') < html.index('id="overview"') < html.index('id="prune-potential"')
    assert '<section id="incomplete" class="alert">' in html and '<a href="#incomplete">' in html
    assert md.index("## Incomplete study") < md.index("## Overview")
    section = html[html.index('id="incomplete"'):html.index('id="overview"')]
    # ft 50% fails; the rest of ft's cascade (ft 80%) and every evaluation of them is blocked
    assert len(re.findall(r"<td[^>]*>failed</td>", section)) == len(summary.failed) == 1
    assert len(re.findall(r"<td[^>]*>blocked</td>", section)) == len(summary.blocked)
    for key, error in summary.failed.items():  # the error text, escaped; the key to look it up in the store
        assert "to have 1 channels" in error and escape(error) in section and f"| {error} |" in md and key in section
    assert FT not in html and escape(FT) in section  # no markup from a message or label reaches the page
    assert f'<td class="t">{escape(FT)} @ 50%</td>' in section and f"calibration of {escape(FT)} @ 80%" in section
    assert f"| prune | {FT} @ 50% | 0 | failed |" in md
    assert "fix the failed input cell" in section  # blocked cells say what to do too
    assert f"prunebench run {run}/config.yaml --out {run}" in md and "--allow-incomplete" in md


def test_a_method_whose_cells_all_failed_is_named(failing):
    html, md = failing["html"], failing["md"]
    overview = html[html.index('id="overview"'):html.index('id="decisions"')]
    assert f"methods wt (no results for {escape(FT)}: see Incomplete study)" in overview
    assert f"No results for method(s) {FT}: every cell of theirs failed" in md
    assert re.search(r"<td[^>]*>wt</td><td[^>]*>unstructured</td>", overview)  # the finished method is reported


def test_complete_study_has_no_incomplete_section(smoke_run, tmp_path):
    html, md = texts(copy_of(smoke_run, tmp_path / "run"))
    assert 'id="incomplete"' not in html and "Incomplete study" not in html + md and "no results for" not in html


def test_cells_not_run_yet_are_pending(smoke_run, tmp_path):
    """A lost record (a killed or running study) is pending: counted and explained, nothing failed."""
    run = copy_of(smoke_run, tmp_path / "run")
    lost = next(c for c in smoke_run[1].cells if c.kind == "eval")
    with ResultStore(run / "results.sqlite") as store:
        store.delete(lost.key)
    html, md = texts(run)
    assert "Incomplete study: 0 cell(s) failed, 0 blocked, 1 pending." in html
    assert "1 cell(s) have not run yet" in md and "| blocked |" not in md


def test_no_finished_rows_names_the_failure(smoke_run, tmp_path):
    """A study whose parent training failed has no rows to report: the one-line error says why."""
    from prunebench.cli.main import main

    run = tmp_path / "run"
    summary = run_study({**SMOKE, "train": {**SMOKE["train"], "lr": 1e12}}, run, progress=False)
    assert summary.failed and not summary.executed_kinds()["prune"]
    assert main(["report", str(run)]) == 2
    with pytest.raises(UserError, match=r"no finished model results: \d+ cell\(s\) failed.*learning rate"):
        write_report(run)


VISIBLE_SCRIPT = """<script>
window.addEventListener('load', function () {
  var s = document.getElementById('incomplete'), r = s.getBoundingClientRect();
  var cs = getComputedStyle(s.querySelector('p.alert'));
  var out = document.createElement('pre');
  out.textContent = 'VISCHECK top=' + Math.round(r.top) + ' height=' + Math.round(r.height) + ' vh=' + window.innerHeight
    + ' bg=' + cs.backgroundColor + ' display=' + cs.display + ' END';
  document.body.appendChild(out);
});
</script>"""


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install -y chromium chromium-driver)")
def test_incomplete_section_is_visible_on_the_first_screen_in_chromium(failing, tmp_path):
    probe = tmp_path / "probe.html"
    probe.write_text(failing["html"].replace("</body>", VISIBLE_SCRIPT + "</body>"))
    res = _chromium("--window-size=1400,900", "--virtual-time-budget=5000", "--dump-dom", probe.as_uri(),
                    user_dir=tmp_path / "ud")
    m = re.search(r"VISCHECK top=(-?\d+) height=(\d+) vh=(\d+) bg=(rgb\([^)]*\)) display=(\w+) END", res.stdout)
    assert m, (res.stdout[-2000:], res.stderr[-2000:])
    top, height, vh = (int(m.group(i)) for i in (1, 2, 3))
    assert 0 <= top < vh / 2 and height > 100  # starts in the upper half of the first screen, not collapsed
    assert m.group(4) == "rgb(253, 238, 238)" and m.group(5) == "block"  # the red alert box, shown
