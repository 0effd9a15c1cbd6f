"""The layer map of ``release_spec``, read from the import contracts in ``pyproject.toml``.

The contracts under ``[tool.importlinter]`` are the one definition of the
layers: ``lint-imports`` (in ``nox -s lint``) enforces them, and everything
that shows or tests the layers reads them through this module: the layer
tests (tests/test_layers.py, tests/test_service_layers.py) and the site's
layer table. A docs and test tool, like tests/spec_index.py: not in the wheel.

Example:
    >>> [layer.name for layer in layers()]
    ['formulas', 'strategy', 'store', 'services | workbench', 'cli']
    >>> layers()[0].modules
    ('losses', 'metrics', 'optimizers', 'statistics')
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = [
    "PACKAGE",
    "PYPROJECT",
    "Layer",
    "contract",
    "layers",
    "loaded_by_each",
    "submodules",
]

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
PACKAGE = "release_spec"


@dataclass(frozen=True)
class Layer:
    """One layer of the package.

    Attributes:
        name: ``formulas`` for the layer of the formula modules (the modules of
            the ``formulas`` independence contract); otherwise the module's name,
            sibling modules joined by `` | `` (``services | workbench``); a
            layer written ``a : b`` (``cli : __main__``) is named by ``a``.
        modules: The layer's modules, relative to ``release_spec``
            (``("services", "workbench")``).
        independent: Whether the modules of the layer may not import each other.
    """

    name: str
    modules: tuple[str, ...]
    independent: bool


def _relative(module: str) -> str:
    if module != PACKAGE and not module.startswith(f"{PACKAGE}."):
        raise ValueError(f"{module!r} is not a module of {PACKAGE}")
    return module.removeprefix(f"{PACKAGE}.")


def contract(contract_id: str, pyproject: Path = PYPROJECT) -> dict[str, Any]:
    """The import-linter contract with this ``id``, as written in ``pyproject.toml``.

    Raises:
        KeyError: No contract has that id.
    """
    data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    for entry in data["tool"]["importlinter"]["contracts"]:
        if entry.get("id") == contract_id:
            return dict(entry)
    raise KeyError(f"no import-linter contract with id {contract_id!r} in {pyproject}")


def layers(pyproject: Path = PYPROJECT) -> list[Layer]:
    """The layers of ``release_spec``, lowest first, from the ``layers`` contract.

    A module imports only from the layers below it (and, in a layer that is
    not independent, from its siblings).
    """
    formulas = {_relative(m) for m in contract("formulas", pyproject)["modules"]}
    found = []
    for text in reversed(contract("layers", pyproject)["layers"]):
        independent = ":" not in text
        parts = [p.strip() for p in text.replace(":", "|").split("|")]
        modules = tuple(_relative(p) for p in parts)
        if set(modules) == formulas:
            name = "formulas"
        elif independent:
            name = " | ".join(modules)
        else:
            name = modules[0]
        found.append(Layer(name, modules, independent))
    return found


def submodules(module: str, root: Path = ROOT) -> list[str]:
    """``module`` (relative to ``release_spec``) and every module below it, dotted, sorted.

    Example:
        >>> submodules("metrics")
        ['metrics']
        >>> "store.registry" in submodules("store")
        True
    """
    base = root / PACKAGE / module.replace(".", "/")
    if base.with_suffix(".py").is_file():
        return [module]
    names = []
    for path in sorted(base.rglob("*.py")):
        parts = path.relative_to(root / PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.append(".".join(parts))
    return sorted(names)


def loaded_by_each(
    modules: list[str], tops: tuple[str, ...], root: Path = ROOT
) -> dict[str, list[str]]:
    """Import ``modules`` in order in one fresh interpreter; which of ``tops`` each one loaded.

    ``modules`` are relative to ``release_spec``; ``tops`` are top-level package
    names (``"tensorflow"``). The answer maps each module to the ``tops`` loaded
    once it was imported (by it or by a module imported before it).
    """
    code = (
        "import importlib, json, sys\n"
        "found = {}\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module('release_spec.' + m)\n"
        f"    found[m] = sorted({{n.split('.')[0] for n in sys.modules}} & {set(tops)!r})\n"
        "print(json.dumps(found))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, cwd=root, capture_output=True, text=True
    )
    loaded: dict[str, list[str]] = json.loads(out.stdout.splitlines()[-1])
    return loaded
