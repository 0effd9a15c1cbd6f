"""Render docs/data/bench.json (written by ``nox -s bench``) on the Benchmarks page.

The page holds ``<!-- bench:results -->``; this hook replaces it with the
machine description, a table of the medians and ratios, and an inline SVG
figure of the headroom of each target (how many times over the target is
met; below 1 means missed). Without the JSON file the page says so and how to
produce it, and the build still passes.
"""

from __future__ import annotations

import json
import math
import re
from html import escape
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "docs" / "data" / "bench.json"
MARKER = "<!-- bench:results -->"
_BOUND = re.compile(r"^(<=|>=)\s*([0-9.eE+-]+)x")


def headroom(row: dict[str, Any]) -> float:
    """Factor by which the target is met: >= 1 met, < 1 missed."""
    m = _BOUND.match(str(row["target"]))
    if m is None:
        raise ValueError(f"benchmark target not understood: {row['target']!r}")
    bound, ratio = float(m.group(2)), float(row["ratio"])
    return bound / ratio if m.group(1) == "<=" else ratio / bound


def _table(rows: list[dict[str, Any]]) -> str:
    out = [
        "| subject | median (ms) | peer | median (ms) | ratio | target | headroom | met |",
        "|---|--:|---|--:|--:|---|--:|:-:|",
    ]
    for r in rows:
        out.append(
            f"| `{r['subject']}` | {r['subject_ms']:.3f} | `{r['peer']}` | {r['peer_ms']:.3f} "
            f"| {r['ratio']:.2f} | {r['target']} | {headroom(r):.2f}× "
            f"| {'yes' if r['met'] else '**no**'} |"
        )
    return "\n".join(out)


def figure(rows: list[dict[str, Any]]) -> str:
    """Horizontal bars of log10(headroom); the line at 1× is the target."""
    label_w, bar_w, row_h, top = 330, 360, 22, 30
    values = [headroom(r) for r in rows]
    span = max(1.0, *(abs(math.log10(v)) for v in values if v > 0))
    zero = label_w + bar_w / 2
    scale = (bar_w / 2) / span
    height = top + row_h * len(rows) + 10
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {label_w + bar_w + 80} {height}" '
        'role="img" aria-label="Headroom of each benchmark target" class="bench-figure" '
        'font-family="sans-serif" font-size="12">',
        f'<text x="{zero}" y="14" text-anchor="middle" fill="currentColor">'
        "headroom (log scale): right of the line = target met</text>",
        f'<line x1="{zero}" y1="{top - 8}" x2="{zero}" y2="{height - 6}" '
        'stroke="currentColor" stroke-dasharray="4 3"/>',
    ]
    for i, (r, v) in enumerate(zip(rows, values, strict=True)):
        y = top + i * row_h
        length = math.log10(v) * scale if v > 0 else -bar_w / 2
        x = zero if length >= 0 else zero + length
        colour = "#2e7d32" if v >= 1 else "#c62828"
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 12}" text-anchor="end" fill="currentColor">'
            f"{escape(str(r['subject']))[:48]}</text>"
            f'<rect x="{x:.1f}" y="{y}" width="{abs(length):.1f}" height="{row_h - 6}" '
            f'fill="{colour}"/>'
            f'<text x="{label_w + bar_w + 6}" y="{y + 12}" fill="currentColor">{v:.2f}×</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def render(path: Path = DATA) -> str:
    if not path.is_file():
        return (
            '!!! note "No benchmark results committed yet"\n\n'
            "    `docs/data/bench.json` does not exist. Run `python -m nox -s bench` "
            "(it writes the file), commit it, and rebuild the site to see the table "
            "and the figure here.\n"
        )
    data = json.loads(path.read_text(encoding="utf-8"))
    rows = data["rows"]
    m = data["machine"]
    missed = [r["subject"] for r in rows if not r["met"]]
    verdict = (
        f"All {len(rows)} targets met."
        if not missed
        else f"{len(missed)} of {len(rows)} targets missed: {', '.join(missed)}."
    )
    return (
        f"Results of `{data.get('generated', '?')}` on {m['cpus']} CPUs, {m['platform']}, "
        f"Python {m['python']}, NumPy {m['numpy']}; medians of {data['repeats']} runs. "
        f"{verdict}\n\n{_table(rows)}\n\n"
        f"<figure>\n{figure(rows)}\n"
        "<figcaption>Headroom per target: the factor by which the measured ratio beats "
        "its bound (below 1×: missed).</figcaption>\n</figure>\n"
    )


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if MARKER in markdown:
        markdown = markdown.replace(MARKER, render())
    return markdown
