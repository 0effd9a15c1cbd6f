"""The build hook that runs the reference release for its page (docs/hooks/runs.py)."""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from mkdocs.exceptions import PluginError

from release_spec.strategy.plan import load_plan

ROOT = Path(__file__).resolve().parents[1]
HOOKS = ROOT / "docs" / "hooks"
PAGE = ROOT / "docs" / "release" / "reference-release.md"
REAL_RUN = [sys.executable, "-m", "release_spec", "run", "--seed", "0", "--no-progress"]
REAL_RUN.append("--plan")
INCLUDE = '{! include-markdown "./run/report.md" heading-offset=2 !}'

# Stands in for `python -m release_spec run ... --plan PLAN --out OUT`: writes what a
# released run writes and exits with the code given in the environment.
FAKE_RUN = """
import json, os, sys
from pathlib import Path
out = Path(sys.argv[-1])
out.mkdir(parents=True)
(out / "report.md").write_text("# Release report: released\\n")
(out / "report.json").write_text(json.dumps({"outcome": "released", "figures": ["g.png"]}))
(out / "g.png").write_bytes(b"PNG")
(out / "store").mkdir()
(out / "store" / "model.keras").write_bytes(b"weights")
print("outcome: released")
sys.exit(int(os.environ.get("FAKE_EXIT", "0")))
"""


@pytest.fixture
def hook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    # MkDocs loads hooks with their directory on sys.path; do the same.
    sys.path.insert(0, str(HOOKS))
    try:
        module = importlib.import_module("runs")
        monkeypatch.setattr(module, "OUT", tmp_path / "run")
        monkeypatch.setattr(module, "RUN", [sys.executable, "-c", FAKE_RUN, "--plan"])
        yield module
    finally:
        sys.path.remove(str(HOOKS))


def _tmp_dirs(hook: ModuleType) -> set[Path]:
    return set((hook.ROOT / ".cache").glob("release-run-*"))


def test_run_happens_once_and_keeps_no_store(hook: ModuleType, tmp_path: Path) -> None:
    before = _tmp_dirs(hook)
    hook.start_run()
    assert "proc" in hook._run
    out = hook.finish_run()
    assert out == tmp_path / "run"
    assert sorted(p.name for p in out.iterdir()) == ["KEY", "g.png", "report.json", "report.md"]
    assert _tmp_dirs(hook) == before  # the temporary directory is gone
    key = (out / "KEY").read_text()
    hook.start_run()  # same inputs: nothing to run
    assert "proc" not in hook._run
    assert hook.finish_run() == out
    assert (out / "KEY").read_text() == key


@pytest.mark.parametrize("code", [1, 3])
def test_run_that_does_not_release_fails_and_leaves_nothing(
    hook: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    monkeypatch.setenv("FAKE_EXIT", str(code))
    before = _tmp_dirs(hook)
    hook.start_run()
    with pytest.raises(PluginError, match=rf"exited {code}, not 0") as info:
        hook.finish_run()
    assert "outcome: released" in str(info.value)  # the run's last lines are shown
    assert not (tmp_path / "run").exists()
    hook.on_build_error(info.value)
    assert _tmp_dirs(hook) == before


def test_a_changed_input_reruns(
    hook: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = tmp_path / "plan.toml"
    plan.write_text("[pretrain]\nepochs = 8\n")
    monkeypatch.setattr(hook, "PLAN", plan)
    hook.start_run()
    first = (hook.finish_run() / "KEY").read_text()
    plan.write_text("[pretrain]\nepochs = 9\n")
    hook.start_run()
    assert "proc" in hook._run
    assert (hook.finish_run() / "KEY").read_text() != first


def test_build_error_stops_a_run_in_progress(
    hook: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hook, "RUN", [sys.executable, "-c", "import time; time.sleep(60)"])
    before = _tmp_dirs(hook)
    hook.start_run()
    proc = hook._run["proc"]
    hook.on_build_error(RuntimeError("boom"))
    assert proc.wait(timeout=10) != 0
    assert _tmp_dirs(hook) == before


def test_page_includes_the_report_once() -> None:
    assert PAGE.read_text("utf-8").count(INCLUDE) == 1


def test_quick_plan_is_valid_and_quick() -> None:
    quick = load_plan(ROOT / "docs" / "release" / "quick-plan.toml")
    default = load_plan()
    assert quick.pretrain.epochs < default.pretrain.epochs
    assert quick.finetune.epochs < default.finetune.epochs
    assert quick.release.soak_seconds < default.release.soak_seconds
    assert quick.seed == default.seed


@pytest.mark.slow
def test_real_run_is_released_with_its_figures(
    hook: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hook, "RUN", REAL_RUN)
    hook.start_run()
    run_dir = hook.finish_run()
    report = json.loads((run_dir / "report.json").read_text())
    assert report["outcome"] == "released"
    assert report["failed_gates"] == []
    names = report["figures"]
    assert {"training_curves.png", "confusion_matrices.png", "gate_summary.png"} <= set(names)
    assert all((run_dir / name).is_file() for name in names)
    assert not (run_dir / "store").exists()
    assert (run_dir / "report.md").read_text().startswith("# ")
