"""Test doubles shared by the test files: fake ``.keras`` files, child-process settings, and
scripts loaded as modules.

The fixtures in tests/conftest.py wrap these; module-level helpers of a test
file import them directly (``from fakes import fake_keras_file``).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = ["CHILD_ENV", "ROOT", "fake_keras_file", "load_script", "reseal"]

ROOT = Path(__file__).resolve().parents[1]

#: The environment of a child Python process running the package or a test script:
#: the working tree's package first, TensorFlow's C++ log and Python warnings quiet.
CHILD_ENV = {
    **os.environ,
    "PYTHONPATH": str(ROOT),
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "PYTHONWARNINGS": "ignore",
}


def fake_keras_file(
    path: Path,
    tag: str = "m",
    *,
    config: Mapping[str, Any] | None = None,
    weights: bytes | None = None,
) -> Path:
    """Write a structurally valid Keras v3 ``.keras`` zip at ``path`` (never loaded by Keras).

    Args:
        path: The file to write (its directory must exist).
        tag: Names the model in its config and fills the default weights, so two
            tags give two files with different digests.
        config: The ``config.json`` object; default a ``keras`` ``Sequential``.
        weights: The bytes of ``model.weights.h5``; default ``tag`` repeated.

    Example:
        >>> import tempfile, zipfile
        >>> path = fake_keras_file(Path(tempfile.mkdtemp()) / "a.keras", "a")
        >>> sorted(zipfile.ZipFile(path).namelist())
        ['config.json', 'metadata.json', 'model.weights.h5']
    """
    if config is None:
        config = {"module": "keras", "class_name": "Sequential", "config": {"name": tag}}
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("config.json", json.dumps(config))
        zf.writestr("metadata.json", json.dumps({"keras_version": "3.15.1"}))
        zf.writestr("model.weights.h5", tag.encode() * 50 if weights is None else weights)
    return path


def reseal(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    """Edit a sealed store file and recompute its checksum, as the format defines it.

    The checksum detects damage, not an attacker: anyone can reseal an edit.
    """
    data = json.loads(path.read_text())
    del data["checksum"]
    change(data)
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    data["checksum"] = hashlib.sha256(canonical).hexdigest()
    path.write_text(json.dumps(data))


def load_script(name: str, path: Path) -> ModuleType:
    """The file at ``path`` (a hook, a benchmark: not on ``sys.path``) imported as ``name``,
    afresh on every call."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
