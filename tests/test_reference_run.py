"""What the site build executes (docs/site_tools/executed.py): the reference run and its cache."""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import report_factories as make
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
if os.environ.get("FAKE_WAIT_FOR"):  # the run ends once the build's other work has begun
    import time
    for _ in range(600):
        if Path(os.environ["FAKE_WAIT_FOR"]).exists():
            break
        time.sleep(0.1)
    else:
        sys.exit(4)
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


def test_the_build_works_while_the_run_does(
    executed: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The fake run waits for a file that only `meanwhile` writes: run one after the
    # other, the run would give up (exit 4) and the build would fail.
    go = tmp_path / "go"
    monkeypatch.setenv("FAKE_WAIT_FOR", str(go))
    calls: list[int] = []
    out = executed.reference_run(meanwhile=lambda: calls.append(go.touch() or 1))
    assert calls == [1]
    assert (out / "KEY").read_text() == executed.run_key()
    executed.reference_run(meanwhile=lambda: calls.append(2))  # reused: still called, once
    assert calls == [1, 2]


def test_a_failure_meanwhile_stops_the_run_and_leaves_nothing(
    executed: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_WAIT_FOR", str(tmp_path / "never"))
    before = _tmp_dirs(executed)

    def notebook_fails() -> None:
        raise PluginError("a notebook cell raised")

    with pytest.raises(PluginError, match="a notebook cell raised"):
        executed.reference_run(meanwhile=notebook_fails)
    assert not (tmp_path / "run").exists()
    assert _tmp_dirs(executed) == before


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
    make.check_report_json(report)  # the report schema, and the dataclasses' round trip
    assert report["outcome"] == "released"
    assert report["failed_gates"] == []
    names = report["figures"]
    assert {"training_curves.png", "confusion_matrices.png", "gate_summary.png"} <= set(names)
    assert all((run_dir / name).is_file() for name in names)
    assert not (run_dir / "store").exists()
    assert (run_dir / "report.md").read_text().startswith("# ")


def _notebook_project(
    tmp_path: Path, executed: ModuleType, monkeypatch: pytest.MonkeyPatch, source: str
) -> tuple[Any, Any]:
    """A one-notebook MkDocs project, loaded as the site's build loads it (its files, config),
    with the notebook cache and kernel spec under tmp_path."""
    from mkdocs.config import load_config
    from mkdocs.structure.files import get_files

    monkeypatch.setattr(executed, "NB_CACHE", tmp_path / "nb")
    monkeypatch.setattr(executed, "KERNELS", tmp_path / "jupyter")
    (tmp_path / "docs").mkdir()
    cell = {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": []}
    notebook = {
        "cells": [{**cell, "id": "c1", "source": source}],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    (tmp_path / "docs" / "nb.ipynb").write_text(json.dumps(notebook))
    (tmp_path / "docs" / "index.md").write_text("# Home\n")
    plugin = "mkdocs-jupyter:\n      execute: true\n      cache: true\n      allow_errors: false"
    (tmp_path / "mkdocs.yml").write_text(f"site_name: t\nplugins:\n  - {plugin}\n")
    config = load_config(str(tmp_path / "mkdocs.yml"))
    executed.notebook_setup(config.plugins["mkdocs-jupyter"].config)
    config.plugins.on_pre_build(config=config)
    return config.plugins.on_files(get_files(config), config=config), config


def test_notebooks_are_executed_into_mkdocs_jupyters_cache(
    executed: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mkdocs.structure.pages import Page
    from mkdocs_jupyter import convert

    files, config = _notebook_project(tmp_path, executed, monkeypatch, "print(6 * 7)")
    executed.execute_notebooks(config, files)
    (entry,) = (tmp_path / "nb").rglob("*.json")
    assert "42" in json.loads(entry.read_text())["content"]
    assert files.get_file_from_path("nb.ipynb").page is None  # the build makes its own page

    def no_second_execution(*args: object, **kwargs: object) -> str:
        raise AssertionError("the page's render executed the notebook again")

    monkeypatch.setattr(convert, "nb2html", no_second_execution)
    page = Page(None, files.get_file_from_path("nb.ipynb"), config)
    page = config.plugins["mkdocs-jupyter"].on_pre_page(page, config=config, files=files)
    page.render(config, files)  # the site's page: read from the cache
    assert "42" in (page.content or "")


def test_a_notebook_that_raises_fails_the_build_by_name(
    executed: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files, config = _notebook_project(tmp_path, executed, monkeypatch, "raise ValueError('boom')")
    with pytest.raises(PluginError, match=r"notebook nb\.ipynb failed to execute"):
        executed.execute_notebooks(config, files)
    assert not list((tmp_path / "nb").rglob("*.json"))  # nothing cached
