"""Shared test configuration: Hypothesis profiles, and fixtures more than one file uses.

Fixtures: `keras` (Keras, imported only by the tests that ask for it),
`fake_keras` (fake ``.keras`` files) and `hold_lock` (a child process holding a
store's writer lock). The plain helpers behind them, and `CHILD_ENV`
for child processes, are in tests/fakes.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes import CHILD_ENV, fake_keras_file
from hypothesis import HealthCheck, settings

settings.register_profile("dev", max_examples=30, deadline=None)
settings.register_profile(
    "ci",
    max_examples=200,
    derandomize=True,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def keras() -> Any:
    """Keras, imported on first use: collecting a test file never loads TensorFlow."""
    import keras

    return keras


@pytest.fixture
def fake_keras(tmp_path: Path) -> Callable[..., Path]:
    """Write fake ``.keras`` files: ``fake_keras("a")`` is ``tmp_path/models/a.keras``.

    Keyword arguments go to `fakes.fake_keras_file` (``config=``, ``weights=``).
    """
    models = tmp_path / "models"

    def write(tag: str = "m", **kwargs: Any) -> Path:
        models.mkdir(exist_ok=True)
        return fake_keras_file(models / f"{tag}.keras", tag, **kwargs)

    return write


_HOLD_LOCK = """
import sys, time
from release_spec.store import ModelStore
with ModelStore(sys.argv[1])._writer():
    print("locked", flush=True)
    time.sleep(120)
"""


@pytest.fixture
def hold_lock() -> Iterator[Callable[[Path], subprocess.Popen[str]]]:
    """Start a child process that holds a store's writer lock: ``hold_lock(store_root)``.

    Returns once the child holds the lock; every child is killed at teardown
    (a test may kill it earlier to leave a stale lock behind).
    """
    children: list[subprocess.Popen[str]] = []

    def start(root: Path) -> subprocess.Popen[str]:
        child = subprocess.Popen(
            [sys.executable, "-c", _HOLD_LOCK, str(root)],
            env=CHILD_ENV,
            stdout=subprocess.PIPE,
            text=True,
        )
        children.append(child)
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "locked"
        return child

    try:
        yield start
    finally:
        for child in children:
            child.kill()
            child.wait()
