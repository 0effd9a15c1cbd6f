"""Keep code out of the search index.

Material's search indexes every text node of a page, so the included source
files, the notebooks' code cells (twice: mkdocs-jupyter keeps a hidden copy
for its copy button) and their outputs made up most of ``search_index.json``,
which every page downloads. Marking those blocks ``data-search-exclude``
(honoured by Material's search plugin) leaves the prose, headings, formulas
and docstrings searchable and keeps the index small. The code itself is
unchanged on the page.
"""

from __future__ import annotations

import re
from typing import Any

_CODE_BLOCK = re.compile(
    r'<div (class="[^"]*\b(?:highlight|jp-OutputArea-output|clipboard-copy-txt)\b[^"]*")'
)


def on_page_content(html: str, page: Any, config: Any, files: Any) -> str:
    return _CODE_BLOCK.sub(r"<div \1 data-search-exclude", html)
