"""The digest of what build-time runs depend on, shared by the site's hooks.

Executed notebooks (``notebooks.py``) and the embedded reference-release run
(``release_report.py``) are cached under a directory named by this digest:
every file under ``release_spec/``, the data files under ``docs/data/`` and
the plans under ``docs/release/``, the Python version and the versions of the
packages that the runs import. Any change to one of them gives a new
digest, so nothing stale is ever served.

MkDocs loads each hook with its own directory on ``sys.path``, so a hook
imports this module as ``build_inputs``.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = (
    "numpy",
    "scipy",
    "keras",
    "tensorflow-cpu",
    "tensorflow",
    "scikit-learn",
    "matplotlib",
    "psutil",
    "ipykernel",
    "nbclient",
    "nbconvert",
    "mkdocs-jupyter",
)


def inputs_digest(root: Path = ROOT) -> str:
    """Digest of ``release_spec/``, ``docs/data/*.json``, ``docs/release/*.toml``, versions."""
    h = hashlib.sha256()
    # The notebooks also read committed data (docs/data/*.json) and the quick plan.
    inputs = [*(root / "release_spec").rglob("*"), *(root / "docs" / "data").glob("*.json")]
    inputs += (root / "docs" / "release").glob("*.toml")
    for path in sorted(inputs):
        if path.is_file() and "__pycache__" not in path.parts:
            h.update(path.relative_to(root).as_posix().encode() + b"\0")
            h.update(hashlib.sha256(path.read_bytes()).digest())
    h.update(sys.version.encode() + b"\0")
    for name in PACKAGES:
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            version = "absent"
        h.update(f"{name}=={version}\0".encode())
    return h.hexdigest()[:20]
