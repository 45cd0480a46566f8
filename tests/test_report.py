"""The study report: self-contained HTML + Markdown from result rows, checked in a real headless browser."""
from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from prunebench.cli.main import main
from prunebench.errors import UserError
from prunebench.report import TABLE_NAME, render_report, write_report

from helpers import nested_outcomes

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
RATIOS = [0.2, 0.35, 0.5, 0.65, 0.8, 0.9]
PP = {"wt": 0.8, "sipp": 0.8, "ft": 0.5, "pfp": 0.35}  # nominal prune potential by construction
CORR = [f"{c}-{s}" for c in ("fog", "snow", "contrast") for s in range(1, 6)]
EPS = ["0", "0.1", "0.2", "0.3"]


def make_rows(reps: int = 2, pp: dict[str, float] = PP, full: bool = True) -> list[dict]:
    """Deterministic rows: a method keeps the parent's accuracy up to its PP ratio, then drops by >= 5 points;
    structured methods (ft, pfp) lose a little extra on shifted distributions (positive excess error).
    ``full=False``: nominal and corruption accuracies only (fewer figures, faster)."""
    rows = []
    for rep in range(reps):
        base = {"nominal": 0.90 + 0.002 * rep, **{d: 0.80 - 0.02 * int(d[-1]) for d in CORR},
                **{f"noise-{e}": 0.90 - float(e) for e in EPS}, "fgsm-0.01": 0.6, "fgsm-0.03": 0.3, "pgd-0.03": 0.2}

        def metrics(method: str | None, ratio: float) -> dict:
            drop = 0.0 if method is None or ratio <= pp[method] + 1e-9 else 0.05 + (ratio - pp[method])
            extra = 0.01 * ratio if method in ("ft", "pfp") else 0.0
            m = {}
            for d, a in base.items():
                ev = ("nominal" if d == "nominal" else "corruptions" if d in CORR else
                      "noise-similarity" if d.startswith("noise") else "adversarial")
                if full or ev in ("nominal", "corruptions"):
                    m[f"{ev}/acc/{d}"] = max(0.0, a - drop - (extra if d != "nominal" else 0.0))
            if not full:
                return m
            for e in EPS:
                m[f"noise-similarity/match/{e}"] = 1.0 - drop - float(e) * ratio
                m[f"noise-similarity/baseline_match/{e}"] = 0.97 - float(e) / 2
            m.update({"nominal/loss": 0.3 + drop, "calibration/ece": 0.02 + drop, "calibration/nll": 0.3 + 2 * drop,
                      "ood/auroc/msp-mnist": 0.9 - drop, "trainability/jac_cond": 10 ** (1 + 3 * ratio)})
            return m

        rows.append({"model_key": f"parent-{rep}", "kind": "parent", "method": "parent", "rep": rep, "cycle": 0,
                     "target_ratio": 0.0, "prune_ratio": 0.0, "params_total": 61706, "params_nonzero": 61706,
                     "flops_dense": 429_000, "flops_effective": 429_000, **metrics(None, 0.0)})
        for method in pp:
            for c, r in enumerate(RATIOS, 1):
                structured = method in ("ft", "pfp")
                rows.append({"model_key": f"{method}-{rep}-{c}", "kind": "pruned", "method": method, "rep": rep, "cycle": c,
                             "target_ratio": r, "prune_ratio": r, "params_total": int(61706 * (1 - r)) if structured else 61706,
                             "params_nonzero": int(61706 * (1 - r)), "flops_dense": 429_000,
                             "flops_effective": int(429_000 * (1 - r)), **metrics(method, r),
                             "structured": structured, "baseline": False})  # as the study writes them
    return rows


CONFIG = "name: synthetic\nmodel: {name: lenet5}\ndataset: {name: fashion-mnist}\ndelta: 0.005\n"


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    rows = make_rows()
    html_path, md_path = render_report(rows, out, config_text=CONFIG, n_boot=200, outcomes=nested_outcomes(rows),
                                       num_classes=10)
    return {"html": html_path, "md": md_path, "text": html_path.read_text(), "summary": md_path.read_text(), "dir": out}


def test_html_is_self_contained(report):
    html = report["text"]
    assert html.startswith("<!DOCTYPE html>") and "<style>" in html
    srcs = re.findall(r'\bsrc="([^"]*)"', html)
    assert len(srcs) >= 10 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert all(h.startswith("#") for h in re.findall(r'\bhref="([^"]*)"', html))
    for banned in ("<script", "<link", "<iframe", "@import", "url(", "http://", "https://"):
        assert banned not in html.lower()
    from PIL import Image

    for s in srcs:  # every figure is a real, decodable PNG of a sensible size
        im = Image.open(io.BytesIO(base64.b64decode(s.split(",", 1)[1])))
        assert im.format == "PNG" and im.width >= 300 and im.height >= 150


def test_html_has_every_section_and_the_computed_numbers(report):
    html = report["text"]
    for anchor in ("overview", "prune-potential", "accuracy", "excess-error", "cost", "ev-corruptions",
                   "ev-noise-similarity", "ev-adversarial", "ev-ood", "ev-calibration", "ev-trainability", "config"):
        assert f'id="{anchor}"' in html, anchor
    assert 'id="ev-nominal"' not in html  # nominal accuracy is the main plot, not a separate section
    # nominal PP by construction (both reps identical in PP): wt/sipp 80%, ft 50%, pfp 35%
    glance = html[html.index('id="overview"'):html.index('id="prune-potential"')]
    for method, value in (("wt", "80.0"), ("sipp", "80.0"), ("ft", "50.0"), ("pfp", "35.0")):
        assert re.search(rf"<td[^>]*>{method}</td><td[^>]*>(un)?structured</td><td[^>]*>{value}", glance), method
    assert "Verdict at 95% confidence: holds: unstructured sipp 80.0%, wt 80.0% vs structured ft 50.0%, pfp 35.0%" in html
    # intervals, per-ratio verdicts and resolution are shown
    dec = html[html.index('id="decisions"'):html.index('id="prune-potential"')]
    assert re.search(r"<td[^>]*>80\.0 \[80\.0, 80\.0\] \(\d+/\d+/\d+\)</td>", dec) and "resolution [pp]" in dec
    assert 'class="finding"' in html
    assert "name: synthetic" in html and "delta = 0.5%" in html
    assert "12.50x" not in html and "5.00x" in html  # compression vs the parent's 61706 params at ratio 0.8


def test_summary_markdown_and_terminal_table(report):
    md = report["summary"]
    assert md.startswith("# prunebench report") and "**Finding (structured)" in md
    assert "| wt | unstructured | 80.0 ± 0.0 |" in md
    assert "data:image" not in md and "```yaml" in md
    table = (report["dir"] / TABLE_NAME).read_text()
    assert table.splitlines()[1].split() == ["distribution", "ft", "pfp", "sipp", "wt"]
    nominal = next(line for line in table.splitlines() if line.startswith("nominal"))
    assert nominal.split()[1:] == ["50.0", "[50.0,", "50.0]", "35.0", "[35.0,", "35.0]", "80.0", "[80.0,", "80.0]",
                                   "80.0", "[80.0,", "80.0]"]  # point [95% interval]: exact by construction


def test_finding_that_does_not_hold_is_reported_as_such(tmp_path):
    flipped = {"wt": 0.35, "sipp": 0.5, "ft": 0.8, "pfp": 0.8}
    rows = make_rows(1, flipped, full=False)
    html_path, md_path = render_report(rows, tmp_path, n_boot=50, outcomes=nested_outcomes(rows))
    html = html_path.read_text()
    assert 'class="finding fails"' in html and "confidence: does not hold" in html
    assert "One repetition only" in html  # a single repetition is said to have no spread
    assert "**Finding (structured)" in md_path.read_text()


def test_finding_without_structured_methods_is_open(tmp_path):
    rows = [r for r in make_rows(1, full=False) if r["method"] in ("parent", "wt")]
    html = render_report(rows, tmp_path, n_boot=50, outcomes=nested_outcomes(rows))[0].read_text()
    assert 'class="finding open"' in html and "confidence: not checked: the run has no structured method" in html


def test_report_of_a_run_without_outcomes_says_intervals_are_unavailable(tmp_path):
    html = render_report(make_rows(), tmp_path, n_boot=50)[0].read_text()
    assert "intervals and verdicts unavailable" in html and "confidence: not checked" in html


def test_not_a_run_dir(tmp_path, capsys):
    with pytest.raises(UserError, match="not a prunebench run directory"):
        write_report(tmp_path)
    assert main(["report", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert "not a prunebench run directory" in err and len(err.strip().splitlines()) == 1


def _chromium(*args: str, user_dir: Path) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={user_dir}", "--hide-scrollbars"]
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=180)


CHECK_SCRIPT = """<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; });
  var out = document.createElement('pre'); out.id = 'img-check';
  out.textContent = 'IMGCHECK images=' + imgs.length + ' loaded=' + ok.length + ' END';
  document.body.appendChild(out);
});
</script>"""


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """A real smoke study (bundled config: lenet5 on 1500 Fashion-MNIST images, wt + ft at 0.5 / 0.8, calibration),
    run by `prunebench run`, then reported by `prunebench report`."""
    run_dir = tmp_path_factory.mktemp("smoke") / "run"
    assert main(["run", "smoke", "--out", str(run_dir), "--quiet", "--no-report"]) == 0
    assert not (run_dir / "report.html").exists()
    return run_dir


def test_report_command_on_a_real_smoke_run(smoke_run, capsys):
    from prunebench.analysis import prune_potential
    from prunebench.study.results import load_results

    capsys.readouterr()
    assert main(["report", str(smoke_run)]) == 0
    out = capsys.readouterr().out
    assert "prune potential [%] at delta = 0.5%" in out and str(smoke_run / "report.html") in out
    html = (smoke_run / "report.html").read_text()
    md = (smoke_run / "summary.md").read_text()
    rows = load_results(smoke_run)
    assert {r["method"] for r in rows} == {"parent", "wt", "ft"} and len(rows) == 5
    pp = {r["method"]: r["prune_potential"] for r in prune_potential(rows, 0.005) if r["distribution"] == "nominal"}
    for method, value in pp.items():  # the numbers in the report are the analysis of the stored rows
        assert f"| {method} | {'structured' if method == 'ft' else 'unstructured'} | {100 * value:.1f} |" in md
    assert 'id="ev-calibration"' in html and "name: smoke" in html and "calibration/ece" not in md
    assert all(s.startswith("data:image/png;base64,") for s in re.findall(r'\bsrc="([^"]*)"', html))
    # a verdict computed from the run, whichever way it comes out (500 test images, one repetition)
    assert re.search(r"Verdict at 95% confidence: (holds|does not hold|inconclusive|not checked)", html)
    assert 'id="decisions"' in html and "resolution [pp]" in html


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install -y chromium chromium-driver)")
@pytest.mark.parametrize("which", ["synthetic", "smoke"])
def test_report_renders_in_headless_chromium(which, request, tmp_path):
    """Every <img> decodes in a real browser (naturalWidth > 0); a screenshot is taken for a human to look at."""
    if which == "synthetic":
        report = request.getfixturevalue("report")
    else:
        run_dir = request.getfixturevalue("smoke_run")
        html_path, _ = write_report(run_dir, n_boot=100)
        report = {"html": html_path, "text": html_path.read_text(), "dir": run_dir}
    probe = tmp_path / "probe.html"
    probe.write_text(report["text"].replace("</body>", CHECK_SCRIPT + "</body>"))
    res = _chromium("--virtual-time-budget=15000", "--dump-dom", probe.as_uri(), user_dir=tmp_path / "ud1")
    m = re.search(r"IMGCHECK images=(\d+) loaded=(\d+) END", res.stdout)
    assert m, (res.stdout[-2000:], res.stderr[-2000:])
    n_img = len(re.findall(r"<img ", report["text"]))
    assert int(m.group(1)) == n_img >= (10 if which == "synthetic" else 3) and int(m.group(2)) == n_img
    shot = report["dir"] / "report.png"
    res = _chromium("--window-size=1400,6000", f"--screenshot={shot}", report["html"].as_uri(), user_dir=tmp_path / "ud2")
    from PIL import Image

    im = Image.open(shot)
    assert im.size == (1400, 6000), res.stderr[-2000:]
    colors = im.convert("RGB").resize((140, 600)).getcolors(maxcolors=100_000)
    assert colors is not None and len(colors) > 50  # not a blank page
