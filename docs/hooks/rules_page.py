"""Render docs/data/rules.json (``release-spec simulate --rules all --json ...``) on a page.

The Phased rollout page holds ``<!-- rules:results -->``; this hook replaces it
with the command that wrote the file, the settings each rule ran with, and a
table: for every scenario and rule, the share of rollouts rolled back and the
median number of intervals until the rollback. Without the JSON file the page
says so and how to produce it, and the build still passes. The figure is drawn
from the same file by the phased-rollout notebook.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "docs" / "data" / "rules.json"
MARKER = "<!-- rules:results -->"
NAMES = {
    "argo": "Argo Rollouts",
    "flagger": "Flagger",
    "kayenta": "Kayenta",
    "sequential": "sequential",
}


def cell(result: dict[str, Any]) -> str:
    """``rolled back % · median intervals`` (a dash when nothing was rolled back).

    >>> cell({"rollback_rate": 0.0186, "median_intervals": 67.0})
    '1.9 % · 67'
    >>> cell({"rollback_rate": 0.0, "median_intervals": None})
    '0.0 % · –'
    """
    median = result["median_intervals"]
    return f"{100 * result['rollback_rate']:.1f} % · {'–' if median is None else f'{median:g}'}"


def _table(data: dict[str, Any]) -> str:
    rules = [r["name"] for r in data["rules"]]
    results = {(r["rule"], r["scenario"]): r for r in data["results"]}
    out = [
        "| scenario | " + " | ".join(NAMES.get(r, r) for r in rules) + " |",
        "|---|" + "--:|" * len(rules),
    ]
    for s in data["scenarios"]:
        label = s["label"] + (" — **a rollback is right**" if s["regression"] else "")
        cells = " | ".join(cell(results[(r, s["name"])]) for r in rules)
        out.append(f"| {label} | {cells} |")
    return "\n".join(out)


def render(path: Path = DATA) -> str:
    if not path.is_file():
        return (
            '!!! note "No rule comparison committed yet"\n\n'
            "    `docs/data/rules.json` does not exist. Run `release-spec simulate --rules all "
            "--json docs/data/rules.json`, commit the file, and rebuild the site.\n"
        )
    data = json.loads(path.read_text(encoding="utf-8"))
    s = data["settings"]
    settings = "\n".join(f"- {r['label']}." for r in data["rules"])
    return (
        f"`{data['generated']}`: {data['runs']:,} simulated rollouts per scenario (seed "
        f"{data['seed']}), each {s['intervals']} intervals of {s['requests_per_interval']:,} "
        f"requests with a canary share of {s['share']:g} (about "
        f"{s['share'] * s['requests_per_interval']:,.0f} canary requests an interval); every "
        "rule sees the same draws. Settings:\n\n"
        f"{settings}\n\n"
        "Each cell: rollouts rolled back · median intervals until the rollback (over the "
        "rollouts rolled back). Outside the regression row every rollback is a false one.\n\n"
        f"{_table(data)}\n"
    )


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if MARKER in markdown:
        markdown = markdown.replace(MARKER, render())
    return markdown
