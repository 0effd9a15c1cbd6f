"""The layer rules of the design, checked in fresh interpreters.

Only the workbench (``data``, ``model``, ``pipeline``) may import TensorFlow or
Keras; a formulas module works when copied alone into another project.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

TENSORFLOW_FREE = (
    "losses",
    "metrics",
    "optimizers",
    "statistics",
    "strategy.gates",
    "strategy.stages",
    "strategy.plan",
    "strategy.rollout",
    "strategy.monitoring",
    "strategy.simulation",
    "strategy.judge",
    "store.registry",
)

# One worked value per formulas module, computed by the copied file alone.
COPYABLE = {
    "losses": "mean_squared_error([0.0, 1.0, 2.0, 3.0], [0.5, 1.0, 1.0, 3.0]) == 0.3125",
    "metrics": "accuracy([1, 1, 1, 0, 0, 0, 0, 1], [1, 0, 1, 0, 1, 0, 0, 1]) == 0.75",
    "optimizers": "abs(gradient_descent_step([1.0], [0.5], learning_rate=0.1)[0] - 0.95) < 1e-15",
    "statistics": "[round(b, 4) for b in wilson_interval(95, 100)] == [0.8882, 0.9785]",
}


@pytest.mark.parametrize("module", TENSORFLOW_FREE)
def test_module_does_not_import_tensorflow_or_keras(module: str) -> None:
    code = (
        f"import sys, release_spec.{module}\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'))\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


@pytest.mark.parametrize(("module", "check"), sorted(COPYABLE.items()))
def test_formulas_module_is_copyable_alone(module: str, check: str, tmp_path: Path) -> None:
    shutil.copy(ROOT / "release_spec" / f"{module}.py", tmp_path / f"{module}.py")
    code = (
        f"import sys; sys.path.insert(0, {str(tmp_path)!r}); from {module} import *\n"
        f"assert {check}\n"
        "assert not any(m.startswith('release_spec') for m in sys.modules)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([sys.executable, "-I", "-c", code], check=True, cwd=tmp_path, env=env)
