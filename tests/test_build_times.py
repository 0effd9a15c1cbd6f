"""The build-time benchmark (tests/bench/build_times.py) on a one-page MkDocs project."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest
from fakes import load_script

ROOT = Path(__file__).resolve().parents[1]


def _tool() -> ModuleType:
    return load_script("build_times", ROOT / "tests" / "bench" / "build_times.py")


def _project(tmp_path: Path, page: str) -> Path:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "index.md").write_text(page)
    (tmp_path / "mkdocs.yml").write_text("site_name: t\n")
    return tmp_path


def test_a_build_is_timed_with_its_cpu_and_the_load(tmp_path: Path) -> None:
    row = _tool().build(_project(tmp_path, "# Page\n"), tmp_path / "site")
    assert (tmp_path / "site" / "index.html").is_file()
    assert set(row) == {"wall_s", "user_s", "sys_s", "load_before", "load_after"}
    assert row["wall_s"] > 0
    assert row["user_s"] + row["sys_s"] > 0  # the child's CPU, not this process's
    assert min(row["load_before"], row["load_after"]) >= 0


def test_a_failing_strict_build_stops_with_its_error(tmp_path: Path) -> None:
    project = _project(tmp_path, "[gone](missing.md)\n")  # a warning: strict fails
    with pytest.raises(SystemExit, match=r"mkdocs build failed \(1\):[\s\S]*missing\.md"):
        _tool().build(project, tmp_path / "site")


def test_at_least_one_rebuild(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        _tool().main(["--warm", "0"])
    assert exit_.value.code == 2
    assert "--warm must be 1 or more, not 0" in capsys.readouterr().err
