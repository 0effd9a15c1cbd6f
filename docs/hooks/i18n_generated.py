"""Both builds of mkdocs-static-i18n (1.3). Its ``on_files`` (-100) drops mkdocs-gen-files'
pages and mkdocs-jupyter's ``NotebookFile`` wrapper: put back at -110, under ``zh/`` in the
Chinese build. mkdocstrings' work is the same in both: the second build reuses the modules
griffe loaded and the HTML rendered (with its TOC headings) in the first; objects.inv is the
first's."""

import copy
import os
from typing import Any

from mkdocs.plugins import CombinedEvent, event_priority
from mkdocs.structure.files import File, Files
from mkdocs_jupyter.plugin import NotebookFile
from mkdocstrings_handlers.python import PythonHandler

_aside: list[File] = []
_rendered: dict[tuple[str, str, str | None], tuple[str, list[Any]]] = {}
_griffe: dict[str, Any] = {}  # the handler's collections: modules and their source lines
_render = getattr(PythonHandler.render, "__wrapped__", PythonHandler.render)  # on serve's reload


@event_priority(-90)
def _set_aside(files: Files, config: Any) -> Files:
    docs = os.path.abspath(config.docs_dir) + os.sep
    _aside[:] = [f for f in files if f.abs_src_path is None or f.is_documentation_page()]
    _aside[:] = [f for f in _aside if not (f.abs_src_path or "").startswith(docs)]
    for f in _aside:
        files.remove(f)
    return files


def _in(lang: str, f: File, config: Any) -> File:
    is_nb = f.src_uri.endswith(".ipynb")
    f = NotebookFile(f, config.use_directory_urls, config.site_dir) if is_nb else copy.copy(f)
    if lang != config.plugins["i18n"].default_language:
        f.dest_uri = f"{lang}/{f.dest_uri.removeprefix(lang + '/')}"
    f.url = f._get_url(config.use_directory_urls)
    f.abs_dest_path = os.path.normpath(os.path.join(config.site_dir, f.dest_uri))
    return f


@event_priority(-110)
def _put_back(files: Files, config: Any) -> Files:
    i18n = config.plugins["i18n"]
    notebooks = [f for f in files if f.src_uri.endswith(".ipynb")]
    for f in notebooks:
        files.remove(f)
    for f in [*_aside, *notebooks]:
        versions = {lang: _in(lang, f, config) for lang in i18n.build_languages}
        for v in versions.values():
            v.locale = v.locale_alternate_of = i18n.current_language
            v.alternates = versions
        files.append(versions[i18n.current_language])
    return files


on_files = CombinedEvent(_set_aside, _put_back)


def _render_once(self: Any, data: Any, options: Any, locale: str | None = None) -> str:
    if (key := (data.path, repr(options), locale)) in _rendered:
        self._headings.extend(copy.deepcopy(_rendered[key][1]))
    else:
        n, html = len(self._headings), _render(self, data, options, locale)
        _rendered[key] = (html, copy.deepcopy(self._headings[n:]))
    return _rendered[key][0]


def on_pre_build(config: Any) -> None:
    PythonHandler.render, _render_once.__wrapped__ = _render_once, _render  # type: ignore
    if not (nested := config.plugins["i18n"].building):  # else the other language's build
        _rendered.clear()
        _griffe.clear()
    python = config.plugins["mkdocstrings"].get_handler("python")  # griffe loads in the first
    python._modules_collection = _griffe.setdefault("modules", python._modules_collection)
    python._lines_collection = _griffe.setdefault("lines", python._lines_collection)
    config.plugins["mkdocstrings"].config.enable_inventory = False if nested else None
