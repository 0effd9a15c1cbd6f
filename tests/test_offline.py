"""The offline copy (``nox -s offline``): a zip whose pages open from the file system.

``RELEASE_SPEC_OFFLINE_ZIP`` may point at a zip that ``nox -s offline`` built;
otherwise the fixture builds one (``mkdocs build --strict -f mkdocs-offline.yml``
and docs/site_tools/zip_site.py), which takes as long as a site build: the tests
are ``slow``. The pages are then opened from ``file://`` in headless Chromium.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from test_site import _network, _require_browser, _search, visit

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
FOLDER = "release-spec"
# Where a page would load something from: src of anything, href of <link> (stylesheets,
# icons, preloads), url(...) in inline styles. <a href> is a link, not a load.
_ASSET = re.compile(r"""<(?:script|img|iframe|source|audio|video)\b[^>]*?\bsrc=["']([^"']+)""")
_LINK = re.compile(r"""<link\b[^>]*?\bhref=["']([^"']+)""")
_CSS_URL = re.compile(r"""url\(\s*["']?([^"')]+)""")


@pytest.fixture(scope="module")
def offline_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("RELEASE_SPEC_OFFLINE_ZIP")
    if given:
        return Path(given).resolve()
    out = tmp_path_factory.mktemp("offline")
    site = out / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    build = [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", "mkdocs-offline.yml"]
    proc = subprocess.run(
        [*build, "--site-dir", str(site)], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if proc.returncode != 0:
        pytest.fail(f"offline build failed:\n{proc.stderr[-4000:]}")
    sys.path.insert(0, str(ROOT / "docs" / "site_tools"))
    try:
        from zip_site import zip_site
    finally:
        sys.path.pop(0)
    return zip_site(site, out / "release-spec-offline.zip")  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def unzipped(offline_zip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("unzipped")
    with zipfile.ZipFile(offline_zip) as archive:
        archive.extractall(out)
    return out / FOLDER


def test_zip_holds_both_languages_and_their_search(offline_zip: Path) -> None:
    with zipfile.ZipFile(offline_zip) as archive:
        names = set(archive.namelist())
    for lang in ("", "zh/"):
        for name in ("index.html", "formulas/losses.html", "search/search_index.js"):
            assert f"{FOLDER}/{lang}{name}" in names, f"{lang}{name} missing"
    assert all(n.startswith(f"{FOLDER}/") for n in names)


def test_no_page_loads_anything_from_another_host(unzipped: Path) -> None:
    offenders: dict[str, list[str]] = {}
    pages = sorted(unzipped.rglob("*.html"))
    assert len(pages) > 40
    for page in pages:
        html = page.read_text("utf-8")
        urls = [*_ASSET.findall(html), *_LINK.findall(html), *_CSS_URL.findall(html)]
        loads = [u for u in urls if urlsplit(u).scheme in {"http", "https"} or u.startswith("//")]
        # <link rel="canonical"> names the published page; nothing loads it.
        loads = [u for u in loads if f'rel="canonical" href="{u}"' not in html]
        if loads:
            offenders[str(page.relative_to(unzipped))] = loads
    assert not offenders, offenders


def test_links_between_pages_are_relative(unzipped: Path) -> None:
    home = (unzipped / "index.html").read_text("utf-8")
    switcher = re.findall(r'<a href="([^"]+)" hreflang="(\w+)"', home)
    assert {lang: href for href, lang in switcher} == {
        "en": "index.html",
        "zh": "zh/index.html",
    }


@pytest.fixture(scope="module")
def file_driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    _require_browser()
    os.environ["SE_OFFLINE"] = "true"
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--window-size=1280,1000",
        "--disable-background-networking",
        "--disable-component-update",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-offline')}",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    browser = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    browser.set_page_load_timeout(60)
    browser.execute_cdp_cmd("Network.enable", {})
    try:
        yield browser
    finally:
        browser.quit()


@pytest.mark.browser
@pytest.mark.parametrize(
    "page",
    [
        "index.html",
        "zh/index.html",
        "formulas/statistics.html",
        "zh/formulas/statistics.html",
        "notebooks/optimizers.html",
    ],
)
def test_pages_open_from_files(file_driver: Any, unzipped: Path, page: str) -> None:
    v = visit(file_driver, (unzipped / page).as_uri())
    assert not v.console_errors, v.console_errors
    schemes = {urlsplit(u).scheme for u in v.requests}
    assert schemes <= {"file", "data", "blob", "about", "chrome"}, v.requests
    if "formulas" in page or "notebooks" in page:
        assert v.katex >= 1, f"{page}: no rendered math"
        assert not v.raw_math, v.raw_math


@pytest.mark.browser
@pytest.mark.parametrize(
    ("page", "query", "expected"),
    [("index.html", "Adam", "adam"), ("zh/index.html", "回滚", "回滚")],
)
def test_search_works_from_files(
    file_driver: Any, unzipped: Path, page: str, query: str, expected: str
) -> None:
    results = _search(file_driver, (unzipped / page).as_uri(), query)
    assert any(expected in t.lower().replace("\u200b", "") for t, _ in results), results
    zh = (unzipped / "zh").as_uri() + "/"
    assert all(link.startswith(zh) == page.startswith("zh/") for _, link in results), results
    _network(file_driver.get_log("performance"))  # drain the log for the next test
