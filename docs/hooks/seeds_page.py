"""Render docs/data/seeds.json (written by ``nox -s seeds``) on the reference-release page.

The page holds ``<!-- seeds:results -->``; this hook replaces it with the
sweep's command, plan override, per-scenario tally and one table row per seed
and scenario. Without the JSON file the page says so and how to produce it,
and the build still passes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "docs" / "data" / "seeds.json"
MARKER = "<!-- seeds:results -->"


def _accuracy(row: dict[str, Any]) -> str:
    if row["accuracy"] is None:
        return "–"
    lo, hi = row["interval"]
    return f"{row['accuracy']:.3f} [{lo:.3f}, {hi:.3f}]"


def _exposure(row: dict[str, Any]) -> str:
    e = row["exposure"]
    if e is None:
        return "–"
    return f"{e['canary_requests']:,} at step {e['step']} ({e['share']:g} %)"


def _table(rows: list[dict[str, Any]]) -> str:
    out = [
        "| seed | scenario | outcome | exit | accuracy [95 % Wilson] | failed gate | "
        "canary requests before the decision |",
        "|--:|---|---|--:|---|---|---|",
    ]
    for r in rows:
        failed = ", ".join(f"`{g}`" for g in r["failed_gates"]) or "–"
        out.append(
            f"| {r['seed']} | {r['scenario']} | {r['outcome']} | {r['exit_code']} "
            f"| {_accuracy(r)} | {failed} | {_exposure(r)} |"
        )
    return "\n".join(out)


def render(path: Path = DATA) -> str:
    if not path.is_file():
        return (
            '!!! note "No seed sweep committed yet"\n\n'
            "    `docs/data/seeds.json` does not exist. Run `python -m nox -s seeds` "
            "(it writes the file), commit it, and rebuild the site to see the table here.\n"
        )
    data = json.loads(path.read_text(encoding="utf-8"))
    n = len(data["seeds"])
    tally = "; ".join(
        f"`{s}` ended `{want}` on **{data['summary'][s]} of {n}** seeds"
        for s, want in data["expected"].items()
    )
    overrides = ", ".join(
        f"`{table}.{key} = {value}`"
        for table, values in data["plan"]["overrides"].items()
        for key, value in values.items()
    )
    problems = data["problems"]
    verdict = (
        "Every run met the claim."
        if not problems
        else "**Claims that failed**: " + "; ".join(problems) + "."
    )
    note = f" ({data['note']})" if data.get("note") else ""
    return (
        f"`{data['generated']}` ({data['seconds'] / 60:.0f} min{note}), seeds "
        f"{data['seeds'][0]}–{data['seeds'][-1]}: {tally}. The lowest target-domain test "
        f"accuracy of a released model was **{data['min_default_accuracy']:.3f}** "
        f"(claim: ≥ {data['accuracy_claim']:g}). {verdict} Plan: the embedded default with "
        f"{overrides or 'no change'} ({data['plan']['why']}).\n\n{_table(data['runs'])}\n"
    )


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if MARKER in markdown:
        markdown = markdown.replace(MARKER, render())
    return markdown
