"""The external links of the further-reading page (both editions) are well formed.

The site is built without internet access, so these tests check the links' form,
not whether they still open: every link is https, goes to the publisher's own host
(``CANONICAL_HOSTS``: no mirrors, no redirecting short forms), and an arXiv or DOI
link leads to exactly the identifier its text names; no identifier is left
unlinked; the English and Chinese pages carry the same links and state the same
date on which they were last checked by hand.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import date, datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = ("further-reading.md", "further-reading.zh.md")

# The canonical host of each publisher the page links to.
CANONICAL_HOSTS = {
    "www.tensorflow.org": "TensorFlow's tutorials and API documentation",
    "blog.tensorflow.org": "the TensorFlow blog",
    "keras.io": "Keras's documentation and announcements",
    "docs.pytorch.org": "PyTorch's documentation (pytorch.org/docs redirects there)",
    "arxiv.org": "arXiv abstracts",
    "doi.org": "the DOI resolver",
    "openai.com": "OpenAI's posts",
    "www.mkdocs.org": "MkDocs",
    "squidfunk.github.io": "Material for MkDocs",
    "katex.org": "KaTeX",
    "nox.thea.codes": "nox",
}

_LINK = re.compile(r"\[([^\]\n]+)\]\(([^)\s]+)\)")
_AUTOLINK = re.compile(r"<(https?://[^>\s]+)>")
_ANY_URL = re.compile(r"\bhttps?://[^\s)>\]]+")
_ARXIV_ID = re.compile(r"\d{2}(0[1-9]|1[0-2])\.\d{4,5}")
_DOI = re.compile(r"10\.\d{4,9}/\S+")
_IDENTIFIER = re.compile(r"(?:arXiv|doi):\S+")


def links(text: str) -> list[tuple[str, str]]:
    """(text, url) of every external link: inline links and autolinks."""
    found = [(label, url) for label, url in _LINK.findall(text) if "://" in url]
    found += [(url, url) for url in _AUTOLINK.findall(text)]
    return found


def link_problems(text: str) -> list[str]:
    problems: list[str] = []
    found = links(text)
    linked_urls = {url for _, url in found}
    problems += [
        f"bare URL (not a link): {u}" for u in _ANY_URL.findall(text) if u not in linked_urls
    ]
    for label, url in found:
        parts = urlsplit(url)
        if parts.scheme != "https":
            problems.append(f"not https: {url}")
        if parts.hostname not in CANONICAL_HOSTS or parts.port or parts.username:
            problems.append(f"not a canonical host: {url}")
        if url[-1] in ".,;:":
            problems.append(f"punctuation at the end: {url}")
        if parts.hostname == "arxiv.org":
            ident = parts.path.removeprefix("/abs/")
            if not parts.path.startswith("/abs/") or not _ARXIV_ID.fullmatch(ident):
                problems.append(f"not an arXiv abstract: {url}")
            elif label != f"arXiv:{ident}":
                problems.append(f"arXiv link {url} under the text {label!r}")
        if parts.hostname == "doi.org":
            doi = unquote(parts.path[1:])
            if not _DOI.fullmatch(doi):
                problems.append(f"not a DOI: {url}")
            elif label != f"doi:{doi}":
                problems.append(f"DOI link {url} under the text {label!r}")
    # An identifier in the text that is no link's text.
    unlinked = _IDENTIFIER.findall(_LINK.sub("", text))
    problems += [f"identifier without its link: {i}" for i in unlinked]
    return problems


def checked_on(text: str) -> date:
    """The date the page says its links were last checked by hand."""
    english = re.search(r"last\s+checked\s+by\s+hand\s+on\s+(\d{1,2}\s+\w+\s+\d{4})", text)
    if english:
        return datetime.strptime(" ".join(english.group(1).split()), "%d %B %Y").date()
    chinese = re.search(
        r"最近一次人工核对是在\s*(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日", text
    )
    if chinese:
        return date(*(int(g) for g in chinese.groups()))
    raise AssertionError("the page does not say when its links were last checked by hand")


def _page(name: str) -> str:
    return (ROOT / "docs" / name).read_text(encoding="utf-8")


@pytest.mark.parametrize("name", PAGES)
def test_every_link_is_https_on_its_canonical_host(name: str) -> None:
    text = _page(name)
    assert len(links(text)) >= 30
    assert link_problems(text) == []


def test_both_editions_carry_the_same_links_and_check_date() -> None:
    english, chinese = (_page(name) for name in PAGES)
    assert Counter(url for _, url in links(english)) == Counter(url for _, url in links(chinese))
    assert checked_on(english) == checked_on(chinese)


def test_the_resources_the_article_lists_are_linked() -> None:
    hosts = {urlsplit(url).hostname for _, url in links(_page(PAGES[0]))}
    assert {"www.tensorflow.org", "blog.tensorflow.org", "keras.io", "docs.pytorch.org"} <= hosts


def test_malformed_links_are_found() -> None:
    bad = (
        "[arXiv:1412.6980](http://arxiv.org/abs/1412.6980) "
        "[arXiv:1412.6980](https://arxiv.org/abs/1412.6981) "
        "[arXiv:1412.6980](https://export.arxiv.org/abs/1412.6980) "
        "[doi:10.1007/BF02295996](https://dx.doi.org/10.1007/BF02295996) "
        "[doi:10.1007/BF02295996](https://doi.org/10.1007/BF02295997) "
        "<https://pytorch.org/docs/stable/optim.html> "
        "see https://keras.io/api/ and arXiv:1810.08240."
    )
    problems = link_problems(bad)
    assert problems == [
        "bare URL (not a link): https://keras.io/api/",
        "not https: http://arxiv.org/abs/1412.6980",
        "arXiv link https://arxiv.org/abs/1412.6981 under the text 'arXiv:1412.6980'",
        "not a canonical host: https://export.arxiv.org/abs/1412.6980",
        "not a canonical host: https://dx.doi.org/10.1007/BF02295996",
        "DOI link https://doi.org/10.1007/BF02295997 under the text 'doi:10.1007/BF02295996'",
        "not a canonical host: https://pytorch.org/docs/stable/optim.html",
        "identifier without its link: arXiv:1810.08240.",
    ]
    good = "[doi:10.1016/0041-5553(64)90137-5](https://doi.org/10.1016/0041-5553%2864%2990137-5)"
    assert link_problems(good) == []


def test_the_check_date_is_read_in_both_languages() -> None:
    assert checked_on("were last checked by hand on 2 December 2026, for") == date(2026, 12, 2)
    assert checked_on("这些链接最近一次人工核对是在 2026 年 12 月 2 日，") == date(2026, 12, 2)
    with pytest.raises(AssertionError, match="last checked"):
        checked_on("no date here")
