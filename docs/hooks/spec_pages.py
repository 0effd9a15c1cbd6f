"""Tie each equation on the site to its implementation and its tests.

At build time this hook

1. finds every equation anchor ``{#eq-xxx}`` in the Markdown pages;
2. reads the implementations (``Spec: eq-xxx`` docstring lines) and the tests
   (``@pytest.mark.spec("eq-xxx", kind=...)``) with ``tests/spec_index.py``;
3. **fails the build** when an equation shown on a page has no implementation
   or no test, or when a ``<!-- spec:verified-by eq-xxx -->`` marker names such
   an id;
4. replaces each ``<!-- spec:verified-by eq-xxx -->`` with the generated list of
   tests, and ``<!-- spec:coverage -->`` (on the coverage page) with the table
   id → page → implementation → tests.
"""

from __future__ import annotations

import posixpath
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import Files

ROOT = Path(__file__).resolve().parents[2]
# The spec index is a test tool (tests/spec_index.py), not part of the package.
sys.path.insert(0, str(ROOT / "tests"))
from spec_index import KINDS, Implementation, SpecTest, implementations, spec_tests  # noqa: E402

ANCHOR = re.compile(r"^#{1,6} .*\{[^}\n]*#(eq-[a-z0-9]+(?:-[a-z0-9]+)*)[^}\n]*\}\s*$", re.MULTILINE)
VERIFIED_BY = re.compile(r"<!--\s*spec:verified-by\s+(eq-[a-z0-9-]+)\s*-->")
COVERAGE = "<!-- spec:coverage -->"


@dataclass
class Index:
    shown: dict[str, list[str]] = field(default_factory=dict)  # eq id -> page src_uris
    impls: dict[str, list[Implementation]] = field(default_factory=dict)
    tests: dict[str, list[SpecTest]] = field(default_factory=dict)


_index = Index()


def _rel(path: Path) -> str:
    return path.resolve().relative_to(ROOT).as_posix()


def _fence_free(text: str) -> str:
    """The Markdown without fenced code, where an anchor is only an example."""
    return re.sub(r"^(```|~~~).*?^\1", "", text, flags=re.MULTILINE | re.DOTALL)


def on_files(files: Files, config: Any) -> Files:
    shown: dict[str, list[str]] = {}
    markers: dict[str, list[str]] = {}
    for f in files.documentation_pages():
        # A translation (page.zh.md) shows the same ids as its page (tests/test_i18n.py).
        if not f.src_uri.endswith(".md") or f.abs_src_path is None or ".zh." in f.src_uri:
            continue
        text = _fence_free(Path(f.abs_src_path).read_text(encoding="utf-8"))
        for eq in ANCHOR.findall(text):
            shown.setdefault(eq, []).append(f.src_uri)
        for eq in VERIFIED_BY.findall(text):
            markers.setdefault(eq, []).append(f.src_uri)
    impls = implementations(ROOT / "release_spec")
    tests = spec_tests(ROOT / "tests")

    problems = []
    for eq in sorted(set(shown) | set(markers)):
        pages = ", ".join(sorted(set(shown.get(eq, []) + markers.get(eq, []))))
        if eq not in impls:
            problems.append(
                f"{eq} (on {pages}) has no implementation: no docstring says 'Spec: {eq}'"
            )
        if not tests.get(eq):
            problems.append(f"{eq} (on {pages}) has no test marked @pytest.mark.spec({eq!r})")
    if problems:
        raise PluginError("Spec coverage incomplete:\n  " + "\n  ".join(problems))
    _index.shown, _index.impls, _index.tests = shown, impls, tests
    return files


def _link(from_uri: str, to_uri: str, anchor: str = "") -> str:
    target = posixpath.relpath(to_uri, posixpath.dirname(from_uri) or ".")
    return f"{target}#{anchor}" if anchor else target


def _impl_ref(impl: Implementation) -> str:
    return f"[`{impl.module}.{impl.qualname}`][{impl.module}.{impl.qualname}]"


def _order(t: SpecTest) -> tuple[int, str, int]:
    """Parity first, then properties, then error handling; by file and line within."""
    kind = KINDS.index(t.kind) if t.kind in KINDS else len(KINDS)
    return kind, _rel(t.path), t.line


def _test_line(t: SpecTest) -> str:
    where = _rel(t.path)
    return f"**{t.kind}** — `{where}::{t.qualname.replace('.', '::')}` (`{where}:{t.line}`)"


def verified_by(eq: str) -> str:
    impls = _index.impls.get(eq, [])
    tests = sorted(_index.tests.get(eq, []), key=_order)
    lines = [f'!!! success "Verified by — {len(tests)} tests for `{eq}` (generated)"', ""]
    lines.append("    Implemented by " + ", ".join(_impl_ref(i) for i in impls) + ".")
    lines.append("")
    lines += [f"    - {_test_line(t)}" for t in tests]
    return "\n".join(lines) + "\n"


def coverage_table(page_uri: str) -> str:
    ids = sorted(set(_index.shown) | set(_index.impls) | set(_index.tests))
    rows, details = [], []
    for eq in ids:
        pages = sorted(set(_index.shown.get(eq, [])))
        shown = (
            "<br>".join(f"[{p.removesuffix('.md')}]({_link(page_uri, p, eq)})" for p in pages)
            or "*not on a page*"
        )
        impl = "<br>".join(_impl_ref(i) for i in _index.impls.get(eq, [])) or "**none**"
        tests = sorted(_index.tests.get(eq, []), key=_order)
        counts = {k: sum(t.kind == k for t in tests) for k in KINDS}
        summary = " · ".join(f"{k} {n}" for k, n in counts.items() if n) or "**none**"
        rows.append(f"| `{eq}` | {shown} | {impl} | {summary} |")
        details.append(f'??? note "`{eq}`: {len(tests)} tests"\n')
        details += [f"    - {_test_line(t)}" for t in tests]
        details.append("")
    n_tests = sum(len(v) for v in _index.tests.values())
    return (
        f"**{len(ids)} equation ids, {n_tests} spec-marked tests.** "
        "Generated at build time from the pages, the docstrings and the test markers.\n\n"
        "| id | shown on | implemented by | tests by kind |\n|---|---|---|---|\n"
        + "\n".join(rows)
        + "\n\n## Tests by equation\n\n"
        + "\n".join(details)
        + "\n"
    )


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    markdown = VERIFIED_BY.sub(lambda m: verified_by(m.group(1)), markdown)
    if COVERAGE in markdown:
        markdown = markdown.replace(COVERAGE, coverage_table(page.file.src_uri))
    return markdown
