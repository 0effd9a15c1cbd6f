"""Executed notebooks that are never stale, and never reach for a CDN.

mkdocs-jupyter (0.26) caches each executed notebook under ``cache_dir`` keyed on
the notebook file and the plugin options only: an edit to ``release_spec/``
would be served from the old execution. This hook points ``cache_dir`` at a
directory named by a digest of everything else the results depend on — every
file under ``release_spec/``, the Python version and the versions of the
packages the notebooks import (``build_inputs.inputs_digest``, shared with the
reference-release run) — so any such change re-executes every notebook.
Directories of other digests are deleted after a successful build.

The notebooks run in the Python that runs MkDocs: the hook writes a
``python3`` kernelspec whose command is ``sys.executable -m ipykernel_launcher``
under ``.cache/jupyter/`` and puts that directory first on ``JUPYTER_PATH``,
so a ``python3`` kernelspec in the user's Jupyter directories cannot send the
notebooks to another interpreter.

Links in notebook Markdown cells work like links in Markdown pages: a
relative link to a ``.md`` or ``.ipynb`` source file (``../formulas/losses.md``,
relative to the notebook file) is rewritten to the built page's URL, and a
link to a file that does not exist is reported as a warning, which fails a
``--strict`` build. (nbconvert renders the Markdown itself, so MkDocs's own
link handling never sees these links.)

Each rendered notebook page is also trimmed:

* nbconvert's template emits ``<script src="...">`` for MathJax (a CDN URL, or
  an empty ``src`` when ``custom_mathjax_url`` is unset) and a loader that
  imports Mermaid from a CDN when a diagram is present. The site renders math
  with the vendored KaTeX and has no Mermaid cells, so both are removed.
* mkdocs-jupyter inlines its 575 kB JupyterLab stylesheet into every notebook
  page. It is served once instead, as ``assets/jupyter/index.css`` (copied from
  the installed plugin), and linked from each notebook page; the search
  indexer no longer parses it on every build.
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import mkdocs_jupyter
from build_inputs import inputs_digest
from mkdocs.structure.files import File, Files
from mkdocs.utils import get_relative_url

ROOT = Path(__file__).resolve().parents[2]
CACHE_ROOT = ROOT / ".cache" / "mkdocs-jupyter"
_MATHJAX = re.compile(r"<!-- Load mathjax -->.*?<!-- End of mathjax configuration -->", re.DOTALL)
_MERMAID = re.compile(
    r'<script type="module">\s*document\.addEventListener\("DOMContentLoaded".*?</script>',
    re.DOTALL,
)
_JUPYTER_CSS = re.compile(
    r'<style[^>]*>\s*@charset "UTF-8";\.jupyter-wrapper\{.*?</style>', re.DOTALL
)
# mkdocs-jupyter 0.26 appends the repr of a Python list of CSS strings as a style block.
_LIST_CSS = re.compile(r"<style>\s*\['.*?'\]\s*</style>", re.DOTALL)
JUPYTER_CSS_SRC = Path(mkdocs_jupyter.__file__).parent / "templates/mkdocs_html/assets/index.css"
JUPYTER_CSS_URI = "assets/jupyter/index.css"
_SOURCE_LINK = re.compile(r'href="(?![a-z][a-z0-9+.-]*:|/|#)([^"#]+\.(?:md|ipynb))(#[^"]*)?"')
log = logging.getLogger("mkdocs.hooks.notebooks")

_key: str | None = None


def _pin_kernel() -> None:
    data_dir = ROOT / ".cache" / "jupyter"
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (MkDocs build)",
        "language": "python",
    }
    spec_file = data_dir / "kernels" / "python3" / "kernel.json"
    spec_file.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(spec, indent=1)
    if not spec_file.is_file() or spec_file.read_text(encoding="utf-8") != text:
        spec_file.write_text(text, encoding="utf-8")
    paths = [p for p in os.environ.get("JUPYTER_PATH", "").split(os.pathsep) if p]
    if str(data_dir) not in paths:
        os.environ["JUPYTER_PATH"] = os.pathsep.join([str(data_dir), *paths])


def on_config(config: Any) -> Any:
    global _key
    _pin_kernel()
    _key = inputs_digest()
    plugin = config.plugins["mkdocs-jupyter"]
    plugin.config["cache_dir"] = str(CACHE_ROOT / _key)
    return config


def on_files(files: Files, config: Any) -> Files:
    files.append(File.generated(config, JUPYTER_CSS_URI, abs_src_path=str(JUPYTER_CSS_SRC)))
    return files


def on_page_content(html: str, page: Any, config: Any, files: Files) -> str:
    if not page.file.src_uri.endswith(".ipynb"):
        return html
    href = get_relative_url(JUPYTER_CSS_URI, page.url)
    html, found = _JUPYTER_CSS.subn(f'<link rel="stylesheet" href="{href}">', html, count=1)
    if not found:
        raise ValueError(f"{page.file.src_uri}: mkdocs-jupyter's inlined stylesheet not found")
    for pattern in (_MATHJAX, _MERMAID, _LIST_CSS):
        html = pattern.sub("", html)
    return _SOURCE_LINK.sub(lambda m: _page_link(m, page, files), html)


def _page_link(match: re.Match[str], page: Any, files: Files) -> str:
    path, anchor = match.group(1), match.group(2) or ""
    target = posixpath.normpath(posixpath.join(posixpath.dirname(page.file.src_uri), path))
    file = files.get_file_from_path(target)
    if file is None:
        log.warning(
            "Notebook '%s' links to '%s', which is not a page of the site", page.file.src_uri, path
        )
        return match.group(0)
    return f'href="{get_relative_url(file.url, page.url)}{anchor}"'


def on_post_build(config: Any) -> None:
    if _key is None or not CACHE_ROOT.is_dir():
        return
    for stale in CACHE_ROOT.iterdir():
        if stale.is_dir() and stale.name != _key:
            shutil.rmtree(stale, ignore_errors=True)
