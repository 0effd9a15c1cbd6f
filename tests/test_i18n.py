"""The Chinese edition keeps up with the English one (mkdocs-static-i18n, suffix structure).

Every English page ``docs/x.md`` has its Chinese page ``docs/x.zh.md`` unless it is
listed in ``PENDING_ZH`` (which must be exactly the set of pages still without one, so
that adding a page without its translation fails, and so does translating a pending page
without taking it off the list). A Chinese page

* carries the same equation ids (``{#eq-adam}``) and the same heading anchors as its
  English page, so that links with ``#anchor`` work from either edition (Chinese headings
  take the English anchor with an explicit ``{ #anchor }``);
* includes the same sources (``--8<--`` snippets), figures and macros;
* quotes every figure its English page quotes (``0.980``, ``45,200``, ``6e-11``): the
  English prose figures are checked against the build's data by
  ``tests/test_prose_figures.py``, so a Chinese page cannot keep a stale copy;
* has no untranslated prose paragraph: outside code, math, tables, link targets and
  quoted titles, a paragraph with 40 or more ASCII letters and few Chinese characters
  is English left in place.

Not compared, on purpose: the notebooks (``docs/**/*.ipynb``) are executed once per build
and shown in English in both editions (the Chinese notebooks index says so), and the
pages generated at build time (the API reference, from the docstrings) have no source
page to translate; both fall back to English in the Chinese build.
"""

from __future__ import annotations

import re
from pathlib import Path

import markdown
import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

# Directories under docs/ that hold no page of the site (build code, theme overrides,
# the search dictionary, vendored assets, the reference run written at build time).
NOT_PAGES = ("hooks/", "overrides/", "site_tools/", "search/", "assets/", "release/run/", "api/")

# English pages whose Chinese edition is still to be written (the build falls back to
# the English page under /zh/ meanwhile): none at present.
PENDING_ZH: frozenset[str] = frozenset()

_FENCE = re.compile(r"^([ \t]*)(```|~~~).*?^\1\2[ \t]*$", re.MULTILINE | re.DOTALL)
_FRONT_MATTER = re.compile(r"\A---\n.*?\n---\n", re.DOTALL)
_EQ_ID = re.compile(r"\{[^}\n]*#(eq-[a-z0-9]+(?:-[a-z0-9]+)*)[^}\n]*\}")
_SNIPPET = re.compile(r"^[ \t]*-{1,}8<-{1,}[ \t]+\"([^\"]+)\"", re.MULTILINE)
_IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)")
_MACRO = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}|\{!\s*(.*?)\s*!\}", re.DOTALL)
_MARKER = re.compile(r"<!--\s*([a-z]+:[^>]*?)\s*-->")  # build markers (spec:verified-by ...)
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_ASCII_LETTER = re.compile(r"[A-Za-z]")

_EXTENSIONS = [
    "abbr",
    "admonition",
    "attr_list",
    "def_list",
    "footnotes",
    "md_in_html",
    "tables",
    "toc",
    "pymdownx.arithmatex",
    "pymdownx.details",
    "pymdownx.superfences",
    "pymdownx.tabbed",
]


def _is_page(path: Path) -> bool:
    rel = path.relative_to(DOCS).as_posix()
    return not rel.startswith(NOT_PAGES)


def english_pages() -> list[str]:
    return sorted(
        p.relative_to(DOCS).as_posix()
        for p in DOCS.rglob("*.md")
        if _is_page(p) and not p.name.endswith(".zh.md")
    )


def chinese_pages() -> list[str]:
    return sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.zh.md") if _is_page(p))


def zh_of(page: str) -> str:
    return page[: -len(".md")] + ".zh.md"


def _text(page: str) -> str:
    return _FRONT_MATTER.sub("", (DOCS / page).read_text(encoding="utf-8"))


def _fence_free(text: str) -> str:
    return _FENCE.sub("", text)


def equation_ids(text: str) -> list[str]:
    return sorted(_EQ_ID.findall(_fence_free(text)))


def heading_ids(text: str) -> list[str]:
    """The ids MkDocs gives the page's headings (toc with attr_list, as configured)."""
    md = markdown.Markdown(extensions=_EXTENSIONS)
    md.convert(text)
    ids: list[str] = []

    def walk(tokens: list[dict]) -> None:
        for token in tokens:
            if token["level"] > 1:
                ids.append(token["id"])
            walk(token["children"])

    walk(md.toc_tokens)
    return sorted(ids)


# The build markers the hooks replaced, as the macros that replace them (docs-site's
# mkdocs-macros-plugin): a page and its translation may sit on either side of the change.
_MARKER_AS_MACRO = {
    "spec:coverage": "coverage_table()",
    "bench:results": "bench_results()",
    "rules:results": "rules_results()",
    "seeds:results": 'seeds_table("seeds.json")',
}


def _as_macro(marker: str) -> str:
    name, _, arg = marker.partition(" ")
    if name == "spec:verified-by":
        return f'verified_by("{arg.strip()}")'
    return _MARKER_AS_MACRO.get(marker, marker)


def includes(text: str) -> dict[str, list[str]]:
    """Sources, figures and macros a page pulls in: the same on both editions."""
    body = _fence_free(text)
    macros = [a or b for a, b in _MACRO.findall(body)]
    macros += [_as_macro(m) for m in _MARKER.findall(body)]
    return {
        "snippets": sorted(_SNIPPET.findall(text)),
        "images": sorted(_IMAGE.findall(body)),
        "macros": sorted(re.sub(r"\s+", "", m).replace("'", '"') for m in macros),
    }


# A quoted figure: a number with a decimal point, a thousands separator or an exponent
# (plain integers such as step numbers are written out in words as often as not).
_FIGURE = re.compile(
    r"(?<![\w.])(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+\.\d+|\d+(?:\.\d+)?e[-+]?\d+)(?![\w])"
)


def figures(text: str) -> set[str]:
    """The figures a page quotes outside code blocks, included sources and link targets."""
    body = _SNIPPET.sub("", _fence_free(text))
    body = re.sub(r"\]\([^)]*\)|<https?://[^>]*>|https?://\S+", "", body)
    return set(_FIGURE.findall(body))


_STRIP = [
    re.compile(r"\$\$.*?\$\$", re.DOTALL),  # display math
    re.compile(r"\\\[.*?\\\]", re.DOTALL),
    re.compile(r"<!--.*?-->", re.DOTALL),
    re.compile(r"`[^`\n]*`"),  # inline code
    re.compile(r"\$[^$\n]+\$"),  # inline math
    re.compile(r"\]\([^)]*\)"),  # link targets
    re.compile(r"<https?://[^>]*>|https?://\S+"),
    re.compile(r"<[^>\n]+>"),  # HTML tags
    re.compile(r"\{[^}\n]*\}"),  # attr lists
    re.compile(r"\"[^\"\n]*\"|“[^”]*”|《[^》]*》"),  # quoted titles
    re.compile(r"\*{1,3}[^*\n]+\*{1,3}"),  # emphasised titles (books)
]


def prose_paragraphs(text: str) -> list[str]:
    """Paragraphs and list items of prose: no code, math, tables or link definitions."""
    text = _fence_free(text)
    for pattern in _STRIP[:3]:
        text = pattern.sub("", text)
    blocks: list[str] = []
    for block in re.split(r"\n[ \t]*\n", text):
        lines = [
            line
            for line in block.splitlines()
            if not re.match(r"^\s*(\||#|-{1,}8<-|\[[^\]]+\]:|\*\[)", line)
        ]
        # a list item is judged on its own
        item: list[str] = []
        for line in lines:
            if re.match(r"^\s*([-*+]|\d+\.)\s", line) and item:
                blocks.append(" ".join(item))
                item = []
            item.append(line.strip())
        if item:
            blocks.append(" ".join(item))
    return [b for b in blocks if b.strip()]


_TITLE = re.compile(r"\"[^\"\n]+\"|\*{2,3}[^*\n]+\*{2,3}")
_CITATION_END = re.compile(
    r".*(?:\b(?:19|20)\d\d\b[a-z]?|arXiv:\s?\S+|doi:\s?\S+)[.,;)]*", re.DOTALL
)


def _outside_citation(paragraph: str) -> str:
    """A bibliographic entry (a quoted or bold title and a year or identifier) is not
    translated: only what follows its last year, arXiv id or DOI is prose."""
    if not _TITLE.search(paragraph):
        return paragraph
    end = _CITATION_END.match(paragraph)
    return paragraph[end.end() :] if end else paragraph


def untranslated(paragraph: str) -> bool:
    stripped = _outside_citation(paragraph)
    for pattern in _STRIP[3:]:
        stripped = pattern.sub(" ", stripped)
    letters = len(_ASCII_LETTER.findall(stripped))
    cjk = len(_CJK.findall(stripped))
    return letters >= 40 and cjk < 0.15 * letters


# --------------------------------------------------------------------------- tests


def test_every_english_page_has_its_chinese_page_or_is_pending() -> None:
    missing = {page for page in english_pages() if not (DOCS / zh_of(page)).exists()}
    assert missing - PENDING_ZH == set(), (
        "English pages with neither a .zh.md nor a PENDING_ZH entry"
    )
    assert PENDING_ZH - missing == set(), "translated (or removed) pages still listed in PENDING_ZH"


def test_every_chinese_page_has_its_english_page() -> None:
    english = set(english_pages())
    orphans = [zh for zh in chinese_pages() if zh.replace(".zh.md", ".md") not in english]
    assert orphans == []


TRANSLATED = [page for page in english_pages() if (DOCS / zh_of(page)).exists()]


@pytest.mark.parametrize("page", TRANSLATED)
def test_same_equation_ids(page: str) -> None:
    assert equation_ids(_text(zh_of(page))) == equation_ids(_text(page))


@pytest.mark.parametrize("page", TRANSLATED)
def test_same_heading_anchors(page: str) -> None:
    assert heading_ids(_text(zh_of(page))) == heading_ids(_text(page))


@pytest.mark.parametrize("page", TRANSLATED)
def test_same_sources_figures_and_macros(page: str) -> None:
    assert includes(_text(zh_of(page))) == includes(_text(page))


def front_matter(page: str) -> list[str]:
    """The page's front matter lines (render_macros, hide, ...): a Chinese page without
    `render_macros: true` would show its twin's macros as raw text."""
    match = _FRONT_MATTER.match((DOCS / page).read_text(encoding="utf-8"))
    return sorted(line.strip() for line in match.group(0).splitlines()) if match else []


@pytest.mark.parametrize("page", TRANSLATED)
def test_same_front_matter(page: str) -> None:
    assert front_matter(zh_of(page)) == front_matter(page)


@pytest.mark.parametrize("page", TRANSLATED)
def test_same_figures(page: str) -> None:
    # The Chinese page may add figures (124M is written 1.24 亿), never drop one.
    assert figures(_text(page)) - figures(_text(zh_of(page))) == set()


@pytest.mark.parametrize("page", TRANSLATED)
def test_no_untranslated_prose(page: str) -> None:
    left = [p for p in prose_paragraphs(_text(zh_of(page))) if untranslated(p)]
    assert left == []


# The checks themselves, on examples: each would pass a broken edition otherwise.


def test_untranslated_paragraph_is_found() -> None:
    english = "A model passes to the next stage only when every check passes on held-out data."
    chinese = "只有当每一项检查都在留出数据上通过时，模型才能进入下一阶段。"
    assert untranslated(english)
    assert not untranslated(chinese)
    assert not untranslated("用 `keras.optimizers.Adam(learning_rate=0.001, epsilon=1e-7)` 训练。")
    assert [p for p in prose_paragraphs(f"{chinese}\n\n{english}\n") if untranslated(p)] == [
        english
    ]


def test_citations_are_not_prose_but_notes_after_them_are() -> None:
    citation = (
        '- Eric Breck, Shanqing Cai, Eric Nielsen, Michael Salib, D. Sculley, "The ML Test '
        'Score: A Rubric for ML Production Readiness", IEEE Big Data 2017.'
    )
    assert not untranslated(citation)
    assert not untranslated(citation + " 生产就绪程度的评分表，门禁清单可以从这里开始。")
    assert untranslated(citation + " The rubric is where a list of gates for a release can start.")


def test_code_math_and_tables_are_not_prose() -> None:
    text = (
        "说明。\n\n```python\nthis is code and it is long enough to count as English\n```\n\n"
        "$$\n\\text{reject when the statistic exceeds the boundary at any look}\n$$\n\n"
        "| english column | another english column with words |\n|---|---|\n"
    )
    assert [p for p in prose_paragraphs(text) if untranslated(p)] == []


def test_figures_are_read_and_a_dropped_one_is_found() -> None:
    english = (
        "Accuracy **0.980** [0.954, 0.991]; 45,200 of the 55,000 requests; p = 6e-11; "
        "step 3.\n\n```console\n$ run --soak 60.5\n```\n\n[arXiv](https://arxiv.org/abs/1412.6980)\n"
    )
    assert figures(english) == {"0.980", "0.954", "0.991", "45,200", "55,000", "6e-11"}
    stale = "准确率 **0.978** [0.954, 0.991]；55,000 个请求中的 45,200 个；p = 6e-11。"
    assert figures(english) - figures(stale) == {"0.980"}


def test_equation_ids_and_anchors_are_read() -> None:
    text = "# T\n\n## 更新规则 { #update-rule }\n\n### $$x$$ {#eq-adam}\n\n## Staged release\n"
    assert equation_ids(text) == ["eq-adam"]
    assert heading_ids(text) == ["eq-adam", "staged-release", "update-rule"]


def test_mkdocs_yml_has_no_repeated_key() -> None:
    """YAML keeps the last of two equal keys: a nav translation given twice, with two
    different titles, would silently lose one (found in nav_translations)."""
    import yaml

    repeated: list[str] = []

    class Loader(yaml.SafeLoader):
        pass

    def mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> object:
        keys = [str(loader.construct_object(k)) for k, _ in node.value]
        repeated.extend(k for k in set(keys) if keys.count(k) > 1)
        return loader.construct_mapping(node)

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    Loader.add_multi_constructor("tag:yaml.org,2002:python/", lambda loader, suffix, node: None)
    yaml.load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"), Loader=Loader)
    assert repeated == []
