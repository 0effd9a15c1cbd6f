"""The web stack stays inside release_spec/services: at import time and in the source.

The stack's packages and the modules that must not load it come from the
``no-web-stack`` contract in pyproject.toml (tests/layer_map.py). ``lint-imports``
checks the import graph; these tests check what importing a module really
loads, and the command line, which reaches the services only inside the
``judge`` command.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from layer_map import ROOT, contract, loaded_by_each, submodules

PACKAGE = ROOT / "release_spec"
WEB_CONTRACT = contract("no-web-stack")
WEB = tuple(WEB_CONTRACT["forbidden_modules"])
# Importing the workbench loads no TensorFlow either (it is imported inside functions).
WEB_FREE = sorted(
    {m.removeprefix("release_spec.") for m in WEB_CONTRACT["source_modules"]} | {"cli"}
)


@pytest.mark.parametrize("package", WEB_FREE)
def test_module_does_not_import_the_web_stack(package: str) -> None:
    modules = submodules(package)
    loaded = loaded_by_each(modules, WEB)
    assert {m: tops for m, tops in loaded.items() if tops} == {}
    assert list(loaded) == modules


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


def test_only_the_services_package_names_the_web_stack() -> None:
    # Also the front: the CLI may import the services, never the stack itself.
    outside = {
        str(p.relative_to(ROOT)): names
        for p in PACKAGE.rglob("*.py")
        if "services" not in p.relative_to(PACKAGE).parts and (names := _names_web_stack(p))
    }
    assert outside == {}
    assert _names_web_stack(PACKAGE / "services" / "app.py")  # the scan does see imports
