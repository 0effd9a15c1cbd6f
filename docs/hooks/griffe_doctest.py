"""A griffe extension that shows bare doctests in docstrings as code.

griffe's Google parser turns ``>>>`` lines into code only inside an
``Examples:`` section. Elsewhere — a module docstring's prose, a one-line
docstring followed by a doctest — they stay Markdown text, where an output
line such as ``[1.0, 5.0]`` reads as a cross-reference link and the build
warns. This extension wraps every run of doctest lines (a ``>>>`` line and the
non-blank lines after it) that is not already fenced in a ``pycon`` fence,
before the docstring is parsed. It changes only how the docstring renders;
the source and the doctests themselves are untouched.
"""

from __future__ import annotations

from typing import Any

import griffe

FENCES = ("```", "~~~")


def fence_doctests(text: str) -> str:
    out: list[str] = []
    lines = text.split("\n")
    i, in_fence = 0, False
    while i < len(lines):
        line = lines[i]
        stripped = line.lstrip()
        if stripped.startswith(FENCES):
            in_fence = not in_fence
        if in_fence or not stripped.startswith(">>>"):
            out.append(line)
            i += 1
            continue
        indent = line[: len(line) - len(stripped)]
        out.append(f"{indent}```pycon")
        while i < len(lines) and lines[i].strip():
            out.append(lines[i])
            i += 1
        out.append(f"{indent}```")
    return "\n".join(out)


class FenceDoctests(griffe.Extension):
    """Fence bare doctest blocks in every docstring."""

    # on_object runs once everything is loaded (griffe >= 1.8); on_instance as
    # each object is created (older griffe). Fencing twice changes nothing.
    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None and ">>>" in obj.docstring.value:
            obj.docstring.value = fence_doctests(obj.docstring.value)

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        self.on_object(obj=obj)
