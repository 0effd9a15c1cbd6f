"""Executed notebooks that are never stale, and never reach for a CDN.

mkdocs-jupyter (0.26) caches each executed notebook under ``cache_dir`` keyed on
the notebook file and the plugin options only: an edit to ``release_spec/``
would be served from the old execution. This hook points ``cache_dir`` at a
directory named by a digest of everything else the results depend on — every
file under ``release_spec/``, the Python version and the versions of the
packages the notebooks import — so any such change re-executes every notebook.
Directories of other digests are deleted after a successful build.

nbconvert's template also emits ``<script src="...">`` for MathJax (a CDN URL,
or an empty ``src`` when ``custom_mathjax_url`` is unset). The site renders
math with the vendored KaTeX instead, so that block is removed from each page.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import re
import shutil
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CACHE_ROOT = ROOT / ".cache" / "mkdocs-jupyter"
PACKAGES = (
    "numpy",
    "scipy",
    "keras",
    "tensorflow-cpu",
    "tensorflow",
    "scikit-learn",
    "matplotlib",
    "ipykernel",
    "nbclient",
    "nbconvert",
    "mkdocs-jupyter",
)
_MATHJAX = re.compile(r"<!-- Load mathjax -->.*?<!-- End of mathjax configuration -->", re.DOTALL)

_key: str | None = None


def inputs_digest(root: Path = ROOT) -> str:
    """Digest of the notebooks' inputs other than the notebook file itself."""
    h = hashlib.sha256()
    for path in sorted((root / "release_spec").rglob("*")):
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


def on_config(config: Any) -> Any:
    global _key
    _key = inputs_digest()
    plugin = config.plugins["mkdocs-jupyter"]
    plugin.config["cache_dir"] = str(CACHE_ROOT / _key)
    return config


def on_post_page(output: str, page: Any, config: Any) -> str:
    if page.file.src_uri.endswith(".ipynb"):
        return _MATHJAX.sub("", output)
    return output


def on_post_build(config: Any) -> None:
    if _key is None or not CACHE_ROOT.is_dir():
        return
    for stale in CACHE_ROOT.iterdir():
        if stale.is_dir() and stale.name != _key:
            shutil.rmtree(stale, ignore_errors=True)
