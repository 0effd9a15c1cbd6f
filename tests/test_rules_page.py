"""The macro that renders the rule comparison (docs/site_tools/macros.py, rules_results)."""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "strategy" / "phased-rollout.md"


@pytest.fixture(scope="module")
def macros() -> Iterator[ModuleType]:
    sys.path.insert(0, str(ROOT / "docs" / "site_tools"))
    try:
        yield importlib.import_module("macros")
    finally:
        sys.path.remove(str(ROOT / "docs" / "site_tools"))


def test_page_calls_the_macro_once() -> None:
    text = PAGE.read_text(encoding="utf-8")
    assert text.startswith("---\nrender_macros: true\n")
    assert text.count("{{ rules_results() }}") == 1


def test_committed_data_renders_one_row_per_scenario_with_its_numbers(macros: ModuleType) -> None:
    data = json.loads((macros.DATA / "rules.json").read_text(encoding="utf-8"))
    text = macros.rules_results()
    assert f"`{data['generated']}`" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and "·" in line]
    assert len(rows) == len(data["scenarios"])
    for row, scenario in zip(rows, data["scenarios"], strict=True):
        assert row.startswith(f"| {scenario['label']}")
        cells = [c.strip() for c in row.strip("|").split("|")[1:]]
        expected = [
            macros.rules_cell(next(r for r in data["results"] if (r["rule"], r["scenario"]) == key))
            for key in ((rule["name"], scenario["name"]) for rule in data["rules"])
        ]
        assert cells == expected
    for rule in data["rules"]:
        assert f"- {rule['label']}." in text


def test_cell_formats_rate_and_median(macros: ModuleType) -> None:
    assert macros.rules_cell({"rollback_rate": 0.0186, "median_intervals": 67.0}) == "1.9 % · 67"
    assert macros.rules_cell({"rollback_rate": 0.0, "median_intervals": None}) == "0.0 % · –"


def test_missing_file_says_how_to_produce_it(macros: ModuleType, tmp_path: Path) -> None:
    text = macros.rules_results(tmp_path / "rules.json")
    assert "release-spec simulate --rules all --json docs/data/rules.json" in text
    assert "| scenario |" not in text
