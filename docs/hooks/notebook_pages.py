"""mkdocs-jupyter's (0.26) pages made to fit: no MathJax or Mermaid loader (KaTeX is vendored), a
link to the JupyterLab stylesheet (executed.py adds it once), not 575 kB inline, page URLs for
links to ``.md``/``.ipynb``; code and outputs on every page out of search."""

import posixpath
import re
from typing import Any

from mkdocs.plugins import get_plugin_logger
from mkdocs.utils import get_relative_url

CSS_URI = "assets/jupyter/index.css"
_MATHJAX = r"<!-- Load mathjax -->.*?<!-- End of mathjax configuration -->"
_MERMAID = r'<script type="module">\s*document\.addEventListener\("DOMContentLoaded".*?</script>'
_DROP = re.compile(rf"{_MATHJAX}|{_MERMAID}|<style>\s*\['.*?'\]\s*</style>", re.S)
_CSS = re.compile(r'<style[^>]*>\s*@charset "UTF-8";\.jupyter-wrapper\{.*?</style>', re.S)
_CODE = re.compile(r'<div (class="[^"]*\b(?:highlight|jp-OutputArea-output|clipboard-copy-txt)\b)')
_LINK = re.compile(r'href="(?![a-z][a-z0-9+.-]*:|/|#)([^"#]+\.(?:md|ipynb))(#[^"]*)?"')
log = get_plugin_logger("notebook_pages")


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
