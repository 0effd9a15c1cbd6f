"""What the build executes: the notebooks (mkdocs-jupyter 0.26) and the reference release run.

Both are cached by `inputs_digest`: mkdocs-jupyter keys its cache on the notebook
and its options only, so its ``cache_dir`` is named by the digest (others are
deleted after a build); its kernel is this Python. Notebook pages lose the MathJax
and Mermaid loaders (KaTeX is vendored), link the 575 kB JupyterLab stylesheet
once instead of inlining it, and get page URLs for links to ``.md``/``.ipynb``
sources. Code and outputs are ``data-search-exclude`` (a small search index).
The reference run (``release-spec run``, default plan, seed 0) starts with the
build, overlapping the notebooks, and is awaited just before the Reference release
page includes ``release/run/report.md`` (mkdocs-include-markdown-plugin).
``docs/release/run/KEY`` holds its digest: a rebuild with nothing changed reuses
it. A run that does not release (exit 0) fails the build and leaves nothing.
"""

import hashlib
import importlib.metadata as md
import json
import logging
import os
import posixpath
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import mkdocs_jupyter
from mkdocs.exceptions import PluginError
from mkdocs.plugins import event_priority
from mkdocs.structure.files import File
from mkdocs.utils import get_relative_url

ROOT = Path(__file__).resolve().parents[2]
NB_CACHE, OUT = ROOT / ".cache" / "mkdocs-jupyter", ROOT / "docs" / "release" / "run"
PLAN = ROOT / "release_spec/strategy/default_plan.toml"
RUN = [sys.executable, "-m", "release_spec", "run", "--seed", "0", "--no-progress", "--plan"]
PACKAGES = "numpy scipy keras tensorflow-cpu tensorflow scikit-learn matplotlib psutil ipykernel"
CSS_URI = "assets/jupyter/index.css"
_MATHJAX = r"<!-- Load mathjax -->.*?<!-- End of mathjax configuration -->"
_MERMAID = r'<script type="module">\s*document\.addEventListener\("DOMContentLoaded".*?</script>'
_DROP = re.compile(rf"{_MATHJAX}|{_MERMAID}|<style>\s*\['.*?'\]\s*</style>", re.S)
_CSS = re.compile(r'<style[^>]*>\s*@charset "UTF-8";\.jupyter-wrapper\{.*?</style>', re.S)
_CODE = re.compile(r'<div (class="[^"]*\b(?:highlight|jp-OutputArea-output|clipboard-copy-txt)\b)')
_LINK = re.compile(r'href="(?![a-z][a-z0-9+.-]*:|/|#)([^"#]+\.(?:md|ipynb))(#[^"]*)?"')
log = logging.getLogger("mkdocs.hooks.runs")
_run: dict = {}


def inputs_digest() -> str:
    """``release_spec/``, ``docs/data/*.json``, ``docs/release/*.toml``, Python and versions."""
    h = hashlib.sha256(sys.version.encode())
    files = [*(ROOT / "release_spec").rglob("*"), *(ROOT / "docs/data").glob("*.json")]
    for path in sorted([*files, *(ROOT / "docs/release").glob("*.toml")]):
        if path.is_file() and "__pycache__" not in path.parts:
            h.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    versions = {(d.metadata["Name"] or "").lower(): d.version for d in md.distributions()}
    names = [*PACKAGES.split(), "nbclient", "nbconvert", "mkdocs-jupyter"]
    return hashlib.sha256(h.digest() + str([versions.get(n) for n in names]).encode()).hexdigest()


def start_run() -> None:
    """Start the reference run in the background unless docs/release/run/ holds it already."""
    if "proc" in _run:  # started by this build already (i18n calls on_config per language)
        return
    key = hashlib.sha256(f"{inputs_digest()}{PLAN.read_text()}{RUN[2:]}".encode()).hexdigest()[:20]
    if (OUT / "KEY").is_file() and (OUT / "KEY").read_text() == key:
        return
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(ROOT / ".cache", exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="release-run-", dir=ROOT / ".cache")
    with open(f"{tmp}/run.log", "wb") as log:
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
        cmd = [*RUN, str(PLAN), "--out", f"{tmp}/run"]
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=log, env=env)
    _run.update(proc=proc, tmp=tmp, key=key)


def finish_run() -> Path:
    """Wait for a started run and move it into place; PluginError unless it released."""
    if "proc" not in _run:
        return OUT
    proc, tmp = _run.pop("proc"), _run["tmp"]
    if proc.wait(timeout=1800) != 0:
        tail = Path(f"{tmp}/run.log").read_text("utf-8", "replace").splitlines()[-15:]
        raise PluginError(f"reference run exited {proc.returncode}, not 0:\n" + "\n".join(tail))
    shutil.rmtree(f"{tmp}/run/store", ignore_errors=True)  # the models: megabytes, not shown
    Path(f"{tmp}/run/KEY").write_text(_run["key"])
    if not (OUT / "KEY").is_file():  # else a concurrent build wrote the same run first
        os.replace(f"{tmp}/run", OUT)
    shutil.rmtree(tmp, ignore_errors=True)
    return OUT


def on_config(config: Any) -> None:
    spec = ROOT / ".cache/jupyter/kernels/python3/kernel.json"  # first on JUPYTER_PATH
    spec.parent.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    spec.write_text(json.dumps({"argv": argv, "display_name": "Python 3", "language": "python"}))
    os.environ["JUPYTER_PATH"] = (
        f"{spec.parents[2]}{os.pathsep}{os.environ.get('JUPYTER_PATH', '')}"
    )
    config.plugins["mkdocs-jupyter"].config["cache_dir"] = str(NB_CACHE / inputs_digest()[:20])
    start_run()


def on_files(files: Any, config: Any) -> None:
    src = Path(mkdocs_jupyter.__file__).parent / "templates/mkdocs_html/assets/index.css"
    files.append(File.generated(config, CSS_URI, abs_src_path=str(src)))


@event_priority(101)  # before mkdocs-include-markdown-plugin (100) reads the report
def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if page.file.src_uri.split(".")[0] == "release/reference-release":
        for png in sorted(finish_run().glob("*.png")):
            if files.get_file_from_path(uri := f"release/run/{png.name}") is None:
                files.append(File.generated(config, uri, abs_src_path=str(png)))
    return markdown


def on_page_content(html: str, page: Any, config: Any, files: Any) -> str:
    html = _CODE.sub(r"<div data-search-exclude \1", html)
    if not page.file.src_uri.endswith(".ipynb"):
        return html
    css = f'<link rel="stylesheet" href="{get_relative_url(CSS_URI, page.url)}">'

    def link(m: re.Match[str]) -> str:
        path = posixpath.normpath(posixpath.join(posixpath.dirname(page.file.src_uri), m[1]))
        if (file := files.get_file_from_path(path)) is None:
            log.warning(f"Notebook {page.file.src_uri} links to {m[1]}, not a page")
            return m[0]
        return f'href="{get_relative_url(file.url, page.url)}{m[2] or ""}"'

    return _LINK.sub(link, _DROP.sub("", _CSS.sub(css, html, count=1)))


def on_build_error(error: Any) -> None:
    if "proc" in _run:
        _run.pop("proc").kill()
    shutil.rmtree(_run.pop("tmp", ROOT / ".cache" / "release-run-none"), ignore_errors=True)


def on_post_build(config: Any) -> None:
    keep = Path(config.plugins["mkdocs-jupyter"].config["cache_dir"])
    for stale in NB_CACHE.iterdir() if NB_CACHE.is_dir() else ():
        if stale != keep:
            shutil.rmtree(stale, ignore_errors=True)
