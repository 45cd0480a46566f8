"""Render a report document as Markdown (``summary.md``): the same text and tables, no figures."""
from __future__ import annotations

import re

from prunebench.report.content import Code, Document, Image, Table, Text

_NUMERIC = re.compile(r"^[-+]?(\d|\.\d|-$)")  # numbers right-aligned, words left-aligned


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(t: Table) -> list[str]:
    out = [f"*{t.caption}*", ""] if t.caption else []
    out.append("| " + " | ".join(_cell(h) for h in t.header) + " |")
    first = t.rows[0] if t.rows else []
    numeric = [i > 0 and i < len(first) and bool(_NUMERIC.match(first[i])) for i in range(len(t.header))]
    out.append("|" + "|".join("---:" if numeric[i] else ":---" for i in range(len(t.header))) + "|")
    out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in t.rows]
    return out + [""]


def render_markdown(doc: Document, subtitle: str = "") -> str:
    lines = [f"# {doc.title}", ""]
    if subtitle:
        lines += [subtitle, ""]
    lines += ["Figures: see `report.html` next to this file (self-contained).", ""]
    for s in doc.sections:
        lines += [f"## {s.title}", ""]
        for b in s.blocks:
            if isinstance(b, Text):
                bold, italic = b.style.startswith(("finding", "alert")), b.style == "note"
                text = f"**{b.text}**" if bold else f"_{b.text}_" if italic else b.text
                lines += [text, ""]
            elif isinstance(b, Table):
                lines += _table(b)
            elif isinstance(b, Code):
                lines += [f"*{b.caption}*", "", "```yaml", b.text.rstrip("\n"), "```", ""] if b.caption else \
                    ["```yaml", b.text.rstrip("\n"), "```", ""]
            elif isinstance(b, Image):
                lines += [f"_Figure (in report.html): {b.caption}_", ""]
    return "\n".join(lines).rstrip() + "\n"
