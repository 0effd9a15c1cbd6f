"""Layer rules of the services: the web stack stays inside release_spec/services, TensorFlow out.

Checked in fresh interpreters (what a module imports at run time) and statically
(which files name the web stack at all).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "release_spec"
WEB = ("fastapi", "starlette", "uvicorn", "httpx", "psycopg", "prometheus_client", "pydantic")
HEAVY = ("tensorflow", "keras")


def _imported(module: str) -> set[str]:
    code = (
        f"import sys, {module}\nprint(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, cwd=ROOT, capture_output=True, text=True
    )
    return set(out.stdout.split())


@pytest.mark.parametrize(
    "module",
    [
        "release_spec.services.app",
        "release_spec.services.commands",
        "release_spec.services.kayenta",
        "release_spec.strategy.judge",
    ],
)
def test_service_modules_do_not_import_tensorflow(module: str) -> None:
    assert not _imported(module) & set(HEAVY)


@pytest.mark.parametrize("module", ["release_spec.strategy.judge", "release_spec.cli"])
def test_judge_and_cli_do_not_import_the_web_stack(module: str) -> None:
    assert not _imported(module) & set(WEB)


def _names_web_stack(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        found += [n for n in names if n.split(".")[0] in WEB]
    return found


def test_only_the_services_package_imports_the_web_stack() -> None:
    outside = {
        str(p.relative_to(ROOT)): names
        for p in PACKAGE.rglob("*.py")
        if "services" not in p.relative_to(PACKAGE).parts and (names := _names_web_stack(p))
    }
    assert outside == {}
    assert _names_web_stack(PACKAGE / "services" / "app.py")  # the scan does see imports
