"""The site hook that renders the rule comparison (docs/hooks/rules_page.py)."""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
HOOKS = ROOT / "docs" / "hooks"
PAGE = ROOT / "docs" / "strategy" / "phased-rollout.md"


@pytest.fixture(scope="module")
def hook() -> Iterator[ModuleType]:
    # MkDocs loads hooks with their directory on sys.path; do the same.
    sys.path.insert(0, str(HOOKS))
    try:
        yield importlib.import_module("rules_page")
    finally:
        sys.path.remove(str(HOOKS))


def test_page_holds_the_marker_once(hook: ModuleType) -> None:
    assert PAGE.read_text(encoding="utf-8").count(hook.MARKER) == 1


def test_committed_data_renders_one_row_per_scenario_with_its_numbers(hook: ModuleType) -> None:
    data = json.loads(hook.DATA.read_text(encoding="utf-8"))
    text = hook.render()
    assert f"`{data['generated']}`" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and "·" in line]
    assert len(rows) == len(data["scenarios"])
    for row, scenario in zip(rows, data["scenarios"], strict=True):
        assert row.startswith(f"| {scenario['label']}")
        cells = [c.strip() for c in row.strip("|").split("|")[1:]]
        expected = [
            hook.cell(next(r for r in data["results"] if (r["rule"], r["scenario"]) == key))
            for key in ((rule["name"], scenario["name"]) for rule in data["rules"])
        ]
        assert cells == expected
    for rule in data["rules"]:
        assert f"- {rule['label']}." in text


def test_marker_is_replaced_and_other_pages_are_left_alone(hook: ModuleType) -> None:
    page = f"# Title\n\n{hook.MARKER}\n\nafter\n"
    out = hook.on_page_markdown(page, None, None, None)
    assert hook.MARKER not in out
    assert "| scenario |" in out
    assert out.endswith("\nafter\n")
    assert hook.on_page_markdown("# Other\n", None, None, None) == "# Other\n"


def test_missing_file_says_how_to_produce_it(hook: ModuleType, tmp_path: Path) -> None:
    text = hook.render(tmp_path / "rules.json")
    assert "release-spec simulate --rules all --json docs/data/rules.json" in text
    assert "| scenario |" not in text
