"""One doctest convention: every doctest of ``release_spec`` sits in an ``Examples:`` section.

The site renders docstrings with mkdocstrings' Google parser, which shows ``>>>``
lines as code only inside an ``Examples:`` section (it reads a singular
``Example:`` as an admonition of Markdown); a bare doctest in prose would render
as text (an output such as ``[1.0, 5.0]`` even as a link). Doctests run either
way; this keeps them readable on the site.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADER = re.compile(r"^(\s*)(\w[\w ]*):\s*$")


def bare_doctests(docstring: str) -> list[str]:
    """The ``>>>`` lines of a docstring that are outside an ``Examples:`` section.

    >>> bare_doctests("Sum.\\n\\nExamples:\\n    >>> 1 + 1\\n    2\\n")
    []
    >>> bare_doctests("Sum.\\n\\n>>> 1 + 1\\n2\\n")
    ['>>> 1 + 1']
    """
    bare, section, indent = [], "", -1
    for line in docstring.splitlines():
        width = len(line) - len(line.lstrip())
        if line.strip() and width <= indent:
            section, indent = "", -1
        if (m := HEADER.match(line)) and (indent < 0 or width <= indent):
            section, indent = m.group(2), width
        elif line.lstrip().startswith(">>>") and section != "Examples":
            bare.append(line.strip())
    return bare


def test_every_doctest_is_in_an_examples_section() -> None:
    found = []
    for path in sorted((ROOT / "release_spec").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                doc = ast.get_docstring(node, clean=True) or ""
                where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 1)}"
                found += [f"{where}: {line}" for line in bare_doctests(doc)]
    assert not found, "doctests outside an Examples: section:\n" + "\n".join(found)
