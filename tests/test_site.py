"""The built site in a real browser: pages, math, search, offline, weight.

A session fixture builds the site with ``mkdocs build --strict`` into a
temporary directory (or uses ``RELEASE_SPEC_SITE_DIR`` when it points at a
built site), serves it on 127.0.0.1 from a thread, and drives Debian's
headless Chromium through Selenium with the system chromedriver. Nothing is
downloaded: ``SE_OFFLINE`` keeps Selenium Manager from fetching a driver or a
browser, and the browser's own background networking is switched off so that
every request it makes comes from the pages.

Without Chromium the tests skip (with the install command), except under CI,
where they fail.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urldefrag, urljoin, urlsplit

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
MKDOCS_YML = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = ROOT / "test-artifacts"
FORMULA_PAGES = (
    "formulas/losses/",
    "formulas/metrics/",
    "formulas/optimization/",
    "formulas/statistics/",
)
# Each language has its own search index (docs/hooks/search_per_language.py); with
# one index for both (1.2 MB, fetched by every page) the formula pages weighed 2.0-2.3 MB.
MAX_PAGE_BYTES = 1.5e6
LOCAL_SCHEMES = {"data", "blob", "about", "chrome", "devtools"}

# Visible text that means a formula was left unrendered.
RAW_MATH_JS = """
const root = document.querySelector('article') || document.body;
const clone = root.cloneNode(true);
clone.querySelectorAll('pre, code, script, style, .katex, .highlight, .highlight-ipynb')
     .forEach(e => e.remove());
const text = clone.textContent;
return ['$$', '\\\\(', '\\\\['].filter(d => text.includes(d));
"""


def _require_browser() -> None:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if not missing:
        return
    how = "install them with `apt-get install chromium chromium-driver` (as .ci/run does)"
    if os.environ.get("CI"):
        pytest.fail(f"browser tests need {', '.join(missing)}; {how}")
    pytest.skip(f"{', '.join(missing)} not found; {how}")


@pytest.fixture(scope="session")
def site_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    _require_browser()
    given = os.environ.get("RELEASE_SPEC_SITE_DIR")
    if given:
        path = Path(given).resolve()
        assert (path / "index.html").is_file(), f"RELEASE_SPEC_SITE_DIR={given} holds no built site"
        return path
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(f"mkdocs build --strict failed:\n{proc.stderr[-4000:]}")
    return out


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # The browser drops connections it no longer needs (a page left while
        # the search index loads); anything else is a real error.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@pytest.fixture(scope="session")
def base_url(site_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    # Served under site_url's path, as GitHub Pages serves it: the language switcher
    # (mkdocs-static-i18n) links to absolute paths below it.
    prefix = re.search(r"^site_url:\s*https?://[^/]+(/\S*?)/?$", MKDOCS_YML, re.M)
    path = prefix.group(1).strip("/") if prefix else ""
    root = tmp_path_factory.mktemp("served")
    if path:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).symlink_to(site_dir, target_is_directory=True)
    handler = functools.partial(_QuietHandler, directory=str(root if path else site_dir))
    server = _Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/" + (f"{path}/" if path else "")
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def driver(base_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    os.environ["SE_OFFLINE"] = "true"
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-default-apps",
        "--window-size=1280,1000",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    browser = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    browser.set_page_load_timeout(60)
    browser.execute_cdp_cmd("Network.enable", {})
    try:
        yield browser
    finally:
        browser.quit()


@dataclass
class Visit:
    url: str
    console_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    transferred: int = 0
    katex: int = 0
    raw_math: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)


def _network(entries: list[dict[str, Any]]) -> tuple[list[str], int]:
    urls, size = [], 0
    for entry in entries:
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
        elif message["method"] == "Network.loadingFinished":
            size += int(message["params"].get("encodedDataLength", 0))
    return urls, size


def visit(driver: Any, url: str) -> Visit:
    """Load ``url`` with an empty cache and collect what the page did."""
    driver.get_log("browser")
    driver.get_log("performance")
    driver.execute_cdp_cmd("Network.clearBrowserCache", {})
    driver.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": True})
    driver.get(url)
    driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "document.fonts.ready.then(() => setTimeout(done, 300));"
    )
    result = Visit(url)
    result.console_errors = [
        e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"
    ]
    result.requests, result.transferred = _network(driver.get_log("performance"))
    result.katex = driver.execute_script("return document.querySelectorAll('.katex').length")
    result.raw_math = driver.execute_script(RAW_MATH_JS)
    result.links = driver.execute_script(
        "return Array.from(document.querySelectorAll('a[href]'), a => a.href)"
    )
    return result


@pytest.fixture(scope="session")
def nav_urls(driver: Any, base_url: str) -> list[str]:
    driver.get(base_url)
    hrefs = driver.execute_script(
        "return Array.from(document.querySelectorAll('nav.md-nav--primary a.md-nav__link[href]'),"
        " a => a.href)"
    )
    urls = {urldefrag(h).url for h in hrefs if h.startswith(base_url)}
    urls.add(base_url)
    return sorted(urls)


@pytest.fixture(scope="session")
def visits(driver: Any, nav_urls: list[str]) -> dict[str, Visit]:
    return {url: visit(driver, url) for url in nav_urls}


def test_navigation_lists_every_section(nav_urls: list[str], base_url: str) -> None:
    paths = {u.removeprefix(base_url) for u in nav_urls}
    expected = {
        "",
        "strategy/",
        "strategy/phased-rollout/",
        "strategy/foundation-models/",
        *FORMULA_PAGES,
        "notebooks/classic-example/",
        "notebooks/optimizers/",
        "release/reference-release/",
        "errata/",
        "coverage/",
        "benchmarks/",
        "api/",
        "faq/",
        "further-reading/",
    }
    assert expected <= paths, f"missing from the navigation: {sorted(expected - paths)}"


def test_every_nav_page_loads_without_console_errors(visits: dict[str, Visit]) -> None:
    errors = {url: v.console_errors for url, v in visits.items() if v.console_errors}
    assert not errors, f"console errors: {json.dumps(errors, indent=1)}"


def test_no_page_asks_for_a_sitemap_below_itself(visits: dict[str, Visit], base_url: str) -> None:
    # Material fetches sitemap.xml below every <link rel="alternate" hreflang>, which
    # mkdocs-static-i18n points at the page's translation (404); the site's <head> has
    # none (docs/overrides/main.html). Only the site's own sitemap.xml exists.
    asked = {u for v in visits.values() for u in v.requests if u.endswith("sitemap.xml")}
    assert asked <= {urljoin(base_url, "sitemap.xml")}, sorted(asked)


def test_each_language_fetches_only_its_own_search_index(
    visits: dict[str, Visit], base_url: str
) -> None:
    for url, v in visits.items():
        lang = "zh/" if url.startswith(urljoin(base_url, "zh/")) else ""
        indexes = [u for u in v.requests if u.endswith("search_index.json")]
        assert indexes == [urljoin(base_url, f"{lang}search/search_index.json")], (url, indexes)


def test_each_language_has_its_own_search_index(site_dir: Path) -> None:
    en = json.loads((site_dir / "search" / "search_index.json").read_text("utf-8"))
    zh = json.loads((site_dir / "zh" / "search" / "search_index.json").read_text("utf-8"))
    assert en["config"]["lang"] == ["en"]
    assert zh["config"]["lang"] == ["en", "zh"]
    en_pages = {d["location"].split("#")[0] for d in en["docs"]}
    zh_pages = {d["location"].split("#")[0] for d in zh["docs"]}
    assert not {p for p in en_pages if p.startswith("zh/")}
    assert "formulas/statistics/" in en_pages & zh_pages  # zh locations are below zh/
    assert any("统计" in d["title"] for d in zh["docs"])
    # The API module pages are left out (docs/site_tools/gen_api_pages.py); the API index is in.
    assert {p for p in en_pages | zh_pages if p.startswith("api/")} == {"api/"}


def test_inventory_lists_the_english_api_pages(site_dir: Path) -> None:
    # objects.inv, for other projects' cross-references, is the default language's: the
    # Chinese build used to overwrite it with zh/ URLs (docs/hooks/i18n_generated.py).
    header = (site_dir / "objects.inv").read_bytes().split(b"\n", 4)
    lines = zlib.decompress(header[4]).decode("utf-8").splitlines()
    uris = {line.split()[3].split("#")[0] for line in lines}
    assert len(lines) > 500, len(lines)
    assert "api/losses/" in uris
    assert not {u for u in uris if u.startswith("zh/")}, sorted(uris)[:5]


def test_no_request_leaves_the_local_server(visits: dict[str, Visit], base_url: str) -> None:
    local = urlsplit(base_url).netloc
    external = sorted(
        {
            u
            for v in visits.values()
            for u in v.requests
            if urlsplit(u).scheme not in LOCAL_SCHEMES and urlsplit(u).netloc != local
        }
    )
    assert not external, f"requests to other hosts: {external}"
    assert sum(len(v.requests) for v in visits.values()) > len(visits)


@pytest.mark.parametrize("page", FORMULA_PAGES)
def test_math_is_rendered_on_formula_pages(
    visits: dict[str, Visit], base_url: str, page: str
) -> None:
    v = visits[urljoin(base_url, page)]
    assert v.katex >= 3, f"{page}: only {v.katex} KaTeX elements"
    assert not v.raw_math, f"{page}: unrendered math delimiters {v.raw_math} in visible text"


def test_math_is_rendered_in_notebooks(visits: dict[str, Visit], base_url: str) -> None:
    for page in ("notebooks/optimizers/", "errata/"):
        v = visits[urljoin(base_url, page)]
        assert v.katex >= 1, f"{page}: no rendered math"
        assert not v.raw_math, f"{page}: unrendered math {v.raw_math}"


@pytest.mark.parametrize("page", FORMULA_PAGES)
def test_formula_page_weight(visits: dict[str, Visit], base_url: str, page: str) -> None:
    v = visits[urljoin(base_url, page)]
    print(f"{page}: {v.transferred / 1e3:.0f} kB in {len(v.requests)} requests")
    assert 0 < v.transferred <= MAX_PAGE_BYTES, f"{page} transferred {v.transferred} bytes"


def test_internal_links_resolve(visits: dict[str, Visit], base_url: str) -> None:
    targets = {
        urldefrag(link).url
        for v in visits.values()
        for link in v.links
        if link.startswith(base_url)
    }
    broken = []
    for target in sorted(targets):
        try:
            with urllib.request.urlopen(target, timeout=10) as response:
                ok = response.status == 200
        except urllib.error.HTTPError:
            ok = False
        if not ok:
            broken.append(target)
    assert not broken, f"broken internal links: {broken}"


def _search(driver: Any, page_url: str, query: str) -> list[tuple[str, str]]:
    """Type ``query`` into the search box of ``page_url``: (title, link) of each result."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(page_url)
    box = driver.find_element(By.CSS_SELECTOR, "input.md-search__input")
    if not box.is_displayed():  # narrow layouts hide the box behind a button
        driver.find_element(By.CSS_SELECTOR, "label.md-header__button[for='__search']").click()
    WebDriverWait(driver, 10).until(ec.element_to_be_clickable(box)).click()
    box.send_keys(query)
    WebDriverWait(driver, 30).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, ".md-search-result__item")
    )
    return [
        (e.text, e.find_element(By.CSS_SELECTOR, "a").get_attribute("href"))
        for e in driver.find_elements(By.CSS_SELECTOR, ".md-search-result__item")
    ]


def test_search_finds_adam(driver: Any, base_url: str) -> None:
    results = _search(driver, base_url, "Adam")
    assert any("adam" in title.lower() for title, _ in results), results
    zh = urljoin(base_url, "zh/")
    assert not [link for _, link in results if link.startswith(zh)], (
        "Chinese pages in English search"
    )


# Words of the Chinese pages that only a segmented index finds: jieba (with the site's
# user dictionary) splits them out of running text; lunr alone would index whole clauses.
@pytest.mark.parametrize("word", ["回滚", "灰度发布", "置信序列"])
def test_chinese_search_finds_chinese_words(driver: Any, base_url: str, word: str) -> None:
    zh = urljoin(base_url, "zh/")
    results = _search(driver, zh, word)
    assert any(word in title.replace("\u200b", "") for title, _ in results), results
    assert all(link.startswith(zh) for _, link in results), results


def test_screenshots_are_written(driver: Any, base_url: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    shots = {"home.png": "", "formulas-metrics.png": "formulas/metrics/"}
    for name, page in shots.items():
        driver.get(urljoin(base_url, page))
        driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "document.fonts.ready.then(() => setTimeout(done, 300));"
        )
        path = ARTIFACTS / name
        assert driver.save_screenshot(str(path)), f"could not write {path}"
        assert path.stat().st_size > 10_000, f"{path} is suspiciously small"
