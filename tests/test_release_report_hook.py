"""The site hook that embeds a real reference-release run (docs/hooks/release_report.py)."""

from __future__ import annotations

import doctest
import importlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from mkdocs.exceptions import PluginError

from release_spec.strategy.plan import load_plan

ROOT = Path(__file__).resolve().parents[1]
HOOKS = ROOT / "docs" / "hooks"

REPORT_MD = """# Release report: released

Scenario `default`, seed 0.

## Stages

### pretrain: passed

| gate | result |
|---|---|
| `pretrain.accuracy` | pass |

## Figures

![training curves](training_curves.png)
![gate summary](gate_summary.png)
"""


@pytest.fixture(scope="module")
def hook() -> Iterator[ModuleType]:
    # MkDocs loads hooks with their directory on sys.path; do the same.
    sys.path.insert(0, str(HOOKS))
    try:
        yield importlib.import_module("release_report")
    finally:
        sys.path.remove(str(HOOKS))


# Stands in for `python -m release_spec run ... --out OUT`: writes what a released run writes.
FAKE_RUN = """
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
out.mkdir(parents=True)
(out / "report.md").write_text("# Release report: released\\n")
(out / "report.json").write_text(json.dumps({"outcome": "released", "figures": ["g.png"]}))
(out / "g.png").write_bytes(b"PNG")
(out / "store").mkdir()
(out / "store" / "model.keras").write_bytes(b"weights")
print("outcome: released")
sys.exit(int(sys.argv[2]))
"""


def _fake_command(code: int, calls: list[Path]) -> Any:
    def command(out: Path, plan: Path) -> list[str]:
        calls.append(out)
        return [sys.executable, "-c", FAKE_RUN, str(out), str(code)]

    return command


def test_embed_nests_headings_and_points_figures_at_the_run_dir(hook: ModuleType) -> None:
    text = hook.embed(REPORT_MD)
    headings = [line for line in text.splitlines() if line.startswith("#")]
    assert headings == [
        "### Release report: released",
        "#### Stages",
        "##### pretrain: passed",
        "#### Figures",
    ]
    assert "![training curves](run/training_curves.png)" in text
    assert "![gate summary](run/gate_summary.png)" in text
    # Everything else is the report unchanged.
    assert "| `pretrain.accuracy` | pass |" in text
    assert "Scenario `default`, seed 0." in text


def test_embed_docstring_example(hook: ModuleType) -> None:
    result = doctest.testmod(hook, verbose=False)
    assert result.attempted >= 1
    assert result.failed == 0


def test_embed_refuses_what_it_cannot_shift_safely(hook: ModuleType) -> None:
    with pytest.raises(PluginError, match="code fence"):
        hook.embed("# R\n\n```text\n# not a heading\n```\n")
    with pytest.raises(PluginError, match="below h6"):
        hook.embed("##### too deep\n")


def test_run_key_follows_the_plan(hook: ModuleType, tmp_path: Path) -> None:
    plan = tmp_path / "plan.toml"
    plan.write_text("[pretrain]\nepochs = 8\n")
    first = hook.run_key(plan)
    assert first == hook.run_key(plan)
    assert len(first) == 20
    plan.write_text("[pretrain]\nepochs = 9\n")
    assert hook.run_key(plan) != first


def test_run_happens_once_and_keeps_no_store(
    hook: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Path] = []
    monkeypatch.setattr(hook, "run_command", _fake_command(0, calls))
    cache = tmp_path / "cache"
    first = hook.Run(cache, hook.PLAN).wait()
    assert first == cache / hook.run_key(hook.PLAN)
    assert sorted(p.name for p in first.iterdir()) == ["g.png", "report.json", "report.md"]
    assert hook.figures(first) == ["g.png"]
    assert hook.Run(cache, hook.PLAN).wait() == first
    assert len(calls) == 1
    assert [p.name for p in cache.iterdir()] == [first.name]  # the temporary directory is gone


@pytest.mark.parametrize("code", [1, 3])
def test_run_that_does_not_release_fails_and_leaves_no_cache_entry(
    hook: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    monkeypatch.setattr(hook, "run_command", _fake_command(code, []))
    cache = tmp_path / "cache"
    run = hook.Run(cache, hook.PLAN)
    with pytest.raises(PluginError, match=rf"exited with {code}, expected 0") as info:
        run.wait()
    assert "outcome: released" in str(info.value)  # the run's last lines are shown
    assert list(cache.iterdir()) == []


def test_cancel_stops_the_run_and_cleans_up(
    hook: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        hook, "run_command", lambda out, plan: [sys.executable, "-c", "import time; time.sleep(60)"]
    )
    cache = tmp_path / "cache"
    run = hook.Run(cache, hook.PLAN)
    run.cancel()
    assert list(cache.iterdir()) == []


def test_missing_figure_fails_the_build(hook: ModuleType, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "report.json").write_text(json.dumps({"figures": ["gate_summary.png"]}))
    with pytest.raises(PluginError, match=r"figures missing .*gate_summary\.png"):
        hook.figures(run_dir)


def test_a_run_that_does_not_release_fails_the_build(hook: ModuleType, tmp_path: Path) -> None:
    # A plan error exits 2 before any training: the quickest non-zero exit of the real command.
    plan = tmp_path / "bad.toml"
    plan.write_text("[pretrain]\nepochs = 0\n")
    with pytest.raises(PluginError, match=r"exited with 2, expected 0 \(released\)") as info:
        hook.Run(tmp_path / "cache", plan).wait()
    assert "pretrain.epochs" in str(info.value)


def test_quick_plan_is_valid_and_quick() -> None:
    quick = load_plan(ROOT / "docs" / "release" / "quick-plan.toml")
    default = load_plan()
    assert quick.pretrain.epochs < default.pretrain.epochs
    assert quick.finetune.epochs < default.finetune.epochs
    assert quick.release.soak_seconds < default.release.soak_seconds
    assert quick.seed == default.seed


def test_page_has_the_placeholder_once(hook: ModuleType) -> None:
    page = (ROOT / "docs" / hook.PAGE).read_text("utf-8")
    assert page.count(hook.PLACEHOLDER) == 1


@pytest.mark.slow
def test_real_run_is_released_with_its_figures(hook: ModuleType, tmp_path: Path) -> None:
    run_dir = hook.Run(tmp_path / "cache", hook.PLAN).wait()
    report = json.loads((run_dir / "report.json").read_text())
    assert report["outcome"] == "released"
    assert report["failed_gates"] == []
    names = hook.figures(run_dir)
    assert {"training_curves.png", "confusion_matrices.png", "gate_summary.png"} <= set(names)
    assert not (run_dir / "store").exists()
    embedded = hook.embed((run_dir / "report.md").read_text())
    assert "### Release report: released" in embedded
    assert all(f"(run/{name})" in embedded for name in names)
