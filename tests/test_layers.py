"""The layer rules, checked in fresh interpreters against the contracts in pyproject.toml.

``lint-imports`` checks the import graph statically; these tests check what
importing a module really loads, and that a formula module works when copied
alone. The module lists come from the contracts (tests/layer_map.py), never
from a list of their own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from layer_map import ROOT, contract, layers, loaded_by_each, submodules

HEAVY = tuple(contract("no-tensorflow")["forbidden_modules"])
# Whatever the no-TensorFlow contract covers, and the store: it imports nothing of
# the package and Keras only inside load/save, so importing it loads no TensorFlow.
TENSORFLOW_FREE = sorted(
    {
        m.removeprefix("release_spec.")
        for cid in ("no-tensorflow", "store-alone")
        for m in contract(cid)["source_modules"]
    }
)
FORMULAS = tuple(m.removeprefix("release_spec.") for m in contract("formulas")["modules"])

# One worked value per formulas module, computed by the copied file alone.
COPYABLE = {
    "losses": "mean_squared_error([0.0, 1.0, 2.0, 3.0], [0.5, 1.0, 1.0, 3.0]) == 0.3125",
    "metrics": "accuracy([1, 1, 1, 0, 0, 0, 0, 1], [1, 0, 1, 0, 1, 0, 0, 1]) == 0.75",
    "optimizers": "abs(gradient_descent_step([1.0], [0.5], learning_rate=0.1)[0] - 0.95) < 1e-15",
    "statistics": "[round(b, 4) for b in wilson_interval(95, 100)] == [0.8882, 0.9785]",
}


def test_every_module_of_the_package_is_in_a_layer() -> None:
    placed = {m for layer in layers() for top in layer.modules for m in submodules(top)}
    every = {
        ".".join(p.relative_to(ROOT / "release_spec").with_suffix("").parts).removesuffix(
            ".__init__"
        )
        for p in (ROOT / "release_spec").rglob("*.py")
        if p.name != "__init__.py" or p.parent != ROOT / "release_spec"
    }
    assert every - placed == set()


@pytest.mark.parametrize("package", TENSORFLOW_FREE)
def test_module_does_not_import_tensorflow_or_keras(package: str) -> None:
    modules = submodules(package)
    loaded = loaded_by_each(modules, HEAVY)
    assert {m: tops for m, tops in loaded.items() if tops} == {}
    assert list(loaded) == modules  # every module was imported and checked


def test_the_check_sees_what_a_module_loads() -> None:
    # The services load the web stack: the same check reports it, so it can fail.
    assert loaded_by_each(["services.app"], ("fastapi",)) == {"services.app": ["fastapi"]}


def test_every_formulas_module_has_a_copy_check() -> None:
    assert sorted(COPYABLE) == sorted(FORMULAS)


@pytest.mark.parametrize("module", FORMULAS)
def test_formulas_module_is_copyable_alone(module: str, tmp_path: Path) -> None:
    shutil.copy(ROOT / "release_spec" / f"{module}.py", tmp_path / f"{module}.py")
    code = (
        f"import sys; sys.path.insert(0, {str(tmp_path)!r}); from {module} import *\n"
        f"assert {COPYABLE[module]}\n"
        "assert not any(m.startswith('release_spec') for m in sys.modules)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([sys.executable, "-I", "-c", code], check=True, cwd=tmp_path, env=env)
