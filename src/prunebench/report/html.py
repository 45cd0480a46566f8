"""Render a report document as ONE self-contained HTML file: inline CSS, figures as base64 PNG data
URIs, no scripts, fonts or any other external resource (it opens offline, from an e-mail, anywhere)."""
from __future__ import annotations

import re
from html import escape

from prunebench.report.content import Code, Document, Image, Section, Table, Text

_NUMERIC = re.compile(r"^[-+]?(\d|\.\d|-$)")
CSS = """
:root { --fg: #1d2330; --muted: #5b6475; --line: #d9dde5; --accent: #1f5fae; --bg2: #f5f7fa; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 -apple-system, "Segoe UI", Roboto, "DejaVu Sans", Arial, sans-serif; color: var(--fg); }
header { background: #14213d; color: #fff; padding: 18px 32px; }
header h1 { margin: 0; font-size: 22px; font-weight: 600; }
header p { margin: 4px 0 0; color: #c9d3e6; font-size: 13px; }
nav { padding: 8px 32px; background: var(--bg2); border-bottom: 1px solid var(--line); font-size: 13px; }
nav a { color: var(--accent); text-decoration: none; margin-right: 14px; white-space: nowrap; }
main { max-width: 1280px; padding: 8px 32px 48px; }
h2 { font-size: 19px; margin: 30px 0 8px; padding-bottom: 4px; border-bottom: 2px solid var(--line); }
p { margin: 8px 0; max-width: 980px; }
p.finding { background: #eef6ee; border-left: 5px solid #2e7d32; padding: 10px 14px; font-size: 16px; }
p.finding.fails { background: #fdeeee; border-left-color: #c62828; }
p.finding.open { background: #fff7e0; border-left-color: #e0a000; }
p.note { color: var(--muted); font-size: 13px; }
p.alert { background: #fdeeee; border-left: 5px solid #c62828; padding: 10px 14px; font-size: 16px; font-weight: 600; }
section.alert h2 { color: #c62828; border-bottom-color: #c62828; }
table.wrap td { white-space: normal; max-width: 520px; overflow-wrap: break-word; }
table.wrap td, table.wrap th { text-align: left; }
tr.flagged td { color: #9aa0aa; background: #f3f3f3 !important; font-style: italic; }
figure { margin: 14px 0 18px; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; }
figcaption, .caption { color: var(--muted); font-size: 13px; margin-top: 4px; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0 4px; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid var(--line); padding: 4px 9px; text-align: right; white-space: nowrap; }
th { background: var(--bg2); font-weight: 600; }
td:first-child, th:first-child, td.t { text-align: left; }
.scroll { overflow-x: auto; max-width: 100%; }
details summary { cursor: pointer; color: var(--accent); font-size: 13px; margin: 6px 0; }
pre { background: var(--bg2); border: 1px solid var(--line); padding: 10px 14px; font-size: 12.5px; overflow-x: auto; }
footer { color: var(--muted); font-size: 12px; padding: 0 32px 24px; }
"""


def _shade(v: float) -> str:
    """Cell background for a prune potential in [0, 1]: white (0) to blue (1)."""
    v = min(max(v, 0.0), 1.0)
    return f"background: hsl(212, 70%, {97 - 32 * v:.0f}%)"


def _table(t: Table) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in t.header)
    body = []
    for i, row in enumerate(t.rows):
        cells = []
        for j, c in enumerate(row):
            style = f' style="{_shade(t.shade[(i, j)])}"' if (i, j) in t.shade else ""
            text = "" if _NUMERIC.match(c) else ' class="t"'  # words left-aligned, numbers right-aligned
            cells.append(f"<td{style}{text}>{escape(c)}</td>")
        body.append(('<tr class="flagged">' if i in t.muted else "<tr>") + "".join(cells) + "</tr>")
    cls = ' class="wrap"' if t.wrap else ""
    html = f'<div class="scroll"><table{cls}><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'
    cap = f'<div class="caption">{escape(t.caption)}</div>' if t.caption else ""
    if t.collapsed:
        return f"<details><summary>{escape(t.caption or 'table')} ({len(t.rows)} rows)</summary>{html}</details>"
    return html + cap


def _block(b: object) -> str:
    if isinstance(b, Text):
        return f'<p class="{escape(b.style)}">{escape(b.text)}</p>'
    if isinstance(b, Image):
        return f'<figure><img src="{b.uri}" alt="{escape(b.caption)}"><figcaption>{escape(b.caption)}</figcaption></figure>'
    if isinstance(b, Table):
        return _table(b)
    if isinstance(b, Code):
        cap = f'<div class="caption">{escape(b.caption)}</div>' if b.caption else ""
        return f"{cap}<pre>{escape(b.text)}</pre>"
    raise TypeError(f"unknown report block {type(b).__name__}")


def _section(s: Section) -> str:
    cls = ' class="alert"' if s.alert else ""
    body = "".join(_block(b) for b in s.blocks)
    return f'<section id="{escape(s.anchor)}"{cls}><h2>{escape(s.title)}</h2>' + body + "</section>"


def render_html(doc: Document, subtitle: str = "") -> str:
    nav = "".join(f'<a href="#{escape(s.anchor)}">{escape(s.title)}</a>' for s in doc.sections)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{escape(doc.title)}</title><style>{CSS}</style></head><body>"
            f"<header><h1>{escape(doc.title)}</h1><p>{escape(subtitle)}</p></header><nav>{nav}</nav><main>"
            + "".join(_section(s) for s in doc.sections)
            + "</main><footer>prunebench: pruned networks judged beyond test accuracy (after Liebenwein et al., "
              "Lost in Pruning, MLSys 2021).</footer></body></html>\n")
