"""Generated pages and notebooks in both builds of mkdocs-static-i18n (1.3).

Its ``on_files`` (priority -100) rebuilds every file from its source in docs_dir: a page
without one (TypeError) or with one outside docs_dir, as mkdocs-gen-files writes, is lost,
and a notebook loses mkdocs-jupyter's ``NotebookFile`` wrapper (raw JSON copied to the site).
So generated pages are set aside at -90 and both are put back at -110, under ``zh/`` in the
Chinese build. Notebooks render there from mkdocs-jupyter's cache, keyed on the notebook,
not the URL: executed once per build, shown in English in both.
"""

import copy
import os
from typing import Any

from mkdocs.plugins import CombinedEvent, event_priority
from mkdocs.structure.files import File, Files
from mkdocs_jupyter.plugin import NotebookFile

_aside: list[File] = []


def _generated(f: File, docs: str) -> bool:
    src = f.abs_src_path
    return src is None or (f.is_documentation_page() and not src.startswith(docs + os.sep))


@event_priority(-90)
def _set_aside(files: Files, config: Any) -> Files:
    _aside[:] = [f for f in files if _generated(f, os.path.abspath(config.docs_dir))]
    for f in _aside:
        files.remove(f)
    return files


def _in(lang: str, f: File, config: Any, default: str) -> File:
    if f.src_uri.endswith(".ipynb"):
        f = NotebookFile(f, config.use_directory_urls, config.site_dir)
    else:
        f = copy.copy(f)
    if lang != default:
        f.dest_uri = f"{lang}/{f.dest_uri.removeprefix(lang + '/')}"
    f.url = f._get_url(config.use_directory_urls)
    f.abs_dest_path = os.path.normpath(os.path.join(config.site_dir, f.dest_uri))
    return f


@event_priority(-110)
def _put_back(files: Files, config: Any) -> Files:
    i18n = config.plugins["i18n"]
    lang, default = i18n.current_language, i18n.default_language
    notebooks = [f for f in files if f.src_uri.endswith(".ipynb")]
    for f in notebooks:
        files.remove(f)
    for f in _aside + notebooks:
        versions = {code: _in(code, f, config, default) for code in i18n.build_languages}
        for v in versions.values():
            v.locale = v.locale_alternate_of = lang
            v.alternates = versions
        files.append(versions[lang])
    return files


on_files = CombinedEvent(_set_aside, _put_back)
