"""What the site build executes (docs/site_tools/executed.py): the reference run and its cache."""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from mkdocs.exceptions import PluginError

from release_spec.strategy.plan import load_plan

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / "docs" / "site_tools"
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
def executed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    sys.path.insert(0, str(TOOLS))
    try:
        module = importlib.import_module("executed")
        monkeypatch.setattr(module, "OUT", tmp_path / "run")
        monkeypatch.setattr(module, "RUN", [sys.executable, "-c", FAKE_RUN, "--plan"])
        yield module
    finally:
        sys.path.remove(str(TOOLS))


def _tmp_dirs(executed: ModuleType) -> set[Path]:
    return set((executed.ROOT / ".cache").glob("release-run-*"))


def test_run_happens_once_and_keeps_no_store(executed: ModuleType, tmp_path: Path) -> None:
    before = _tmp_dirs(executed)
    out = executed.reference_run()
    assert out == tmp_path / "run"
    assert sorted(p.name for p in out.iterdir()) == ["KEY", "g.png", "report.json", "report.md"]
    assert _tmp_dirs(executed) == before  # the temporary directory is gone
    key = (out / "KEY").read_text()
    assert key == executed.run_key()
    (out / "report.md").write_text("kept\n")  # same inputs: nothing runs, nothing is rewritten
    assert executed.reference_run() == out
    assert (out / "report.md").read_text() == "kept\n"
    assert (out / "KEY").read_text() == key


@pytest.mark.parametrize("code", [1, 3])
def test_run_that_does_not_release_fails_and_leaves_nothing(
    executed: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    monkeypatch.setenv("FAKE_EXIT", str(code))
    before = _tmp_dirs(executed)
    with pytest.raises(PluginError, match=rf"exited {code}, not 0") as info:
        executed.reference_run()
    assert "outcome: released" in str(info.value)  # the run's last lines are shown
    assert not (tmp_path / "run").exists()
    assert _tmp_dirs(executed) == before


def test_a_changed_input_reruns(
    executed: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = tmp_path / "plan.toml"
    plan.write_text("[pretrain]\nepochs = 8\n")
    monkeypatch.setattr(executed, "PLAN", plan)
    first = (executed.reference_run() / "KEY").read_text()
    (tmp_path / "run" / "report.md").write_text("stale\n")
    plan.write_text("[pretrain]\nepochs = 9\n")
    out = executed.reference_run()
    assert (out / "KEY").read_text() != first
    assert (out / "report.md").read_text() == "# Release report: released\n"


def test_notebooks_use_this_python_and_the_cache_of_the_current_inputs(
    executed: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(executed, "NB_CACHE", tmp_path / "nb")
    monkeypatch.setattr(executed, "KERNELS", tmp_path / "jupyter")
    monkeypatch.setenv("JUPYTER_PATH", "/elsewhere")
    stale = tmp_path / "nb" / "0123456789abcdef0123"
    stale.mkdir(parents=True)
    config: dict[str, object] = {"cache_dir": ".cache/mkdocs-jupyter"}
    executed.notebook_setup(config)
    assert config["cache_dir"] == str(tmp_path / "nb" / executed.inputs_digest()[:20])
    assert not stale.exists()
    spec = json.loads((tmp_path / "jupyter/kernels/python3/kernel.json").read_text())
    assert spec["argv"][0] == sys.executable
    assert os.environ["JUPYTER_PATH"].split(os.pathsep) == [str(tmp_path / "jupyter"), "/elsewhere"]
    executed.notebook_setup(config)  # a second language's build: JUPYTER_PATH not grown
    assert os.environ["JUPYTER_PATH"].split(os.pathsep) == [str(tmp_path / "jupyter"), "/elsewhere"]


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
    executed: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(executed, "RUN", REAL_RUN)
    run_dir = executed.reference_run()
    report = json.loads((run_dir / "report.json").read_text())
    assert report["outcome"] == "released"
    assert report["failed_gates"] == []
    names = report["figures"]
    assert {"training_curves.png", "confusion_matrices.png", "gate_summary.png"} <= set(names)
    assert all((run_dir / name).is_file() for name in names)
    assert not (run_dir / "store").exists()
    assert (run_dir / "report.md").read_text().startswith("# ")
