"""The site's hooks (docs/hooks/), on small inputs: per-language search and notebook pages."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
from fakes import load_script

ROOT = Path(__file__).resolve().parents[1]
HOOKS = ROOT / "docs" / "hooks"


def _hook(name: str) -> ModuleType:
    return load_script(f"hook_{name}", HOOKS / f"{name}.py")


def test_hooks_stay_within_150_lines() -> None:
    counts = {p.name: len(p.read_text("utf-8").splitlines()) for p in HOOKS.glob("*.py")}
    assert sum(counts.values()) <= 150, counts


# -- one search index per language --------------------------------------------

COMBINED = {
    "config": {"lang": ["en", "zh"], "separator": "[\\s\\-]+", "pipeline": ["stemmer"]},
    "docs": [
        {"location": "", "title": "Home", "text": "release"},
        {"location": "formulas/losses/#eq-mse", "title": "MSE", "text": "mean"},
        {"location": "zh/", "title": "首页", "text": "发布"},
        {"location": "zh/formulas/losses/#eq-mse", "title": "均方误差", "text": "均值"},
        {"location": "zh/api/release_spec/losses/", "title": "losses", "text": "mean"},
    ],
}


def _config(site: Path, *, building: bool = False, offline: bool = False) -> Any:
    i18n = SimpleNamespace(
        building=building,
        build_languages=["en", "zh"],
        default_language="en",
        current_language="en",
    )
    plugins: dict[str, Any] = {"i18n": i18n}
    if offline:
        plugins["material/offline"] = SimpleNamespace(config=SimpleNamespace(enabled=True))
    return SimpleNamespace(plugins=plugins, site_dir=str(site))


def _write_combined(site: Path) -> None:
    (site / "search").mkdir(parents=True)
    (site / "search" / "search_index.json").write_text(json.dumps(COMBINED), "utf-8")


def _index(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text("utf-8"))  # type: ignore[no-any-return]


def test_search_index_is_split_by_language(tmp_path: Path) -> None:
    _write_combined(tmp_path)
    _hook("search_per_language").on_post_build(_config(tmp_path))
    en = _index(tmp_path / "search" / "search_index.json")
    zh = _index(tmp_path / "zh" / "search" / "search_index.json")
    assert [d["location"] for d in en["docs"]] == ["", "formulas/losses/#eq-mse"]
    assert [d["location"] for d in zh["docs"]] == [
        "",
        "formulas/losses/#eq-mse",
        "api/release_spec/losses/",
    ]
    assert [d["title"] for d in zh["docs"]] == ["首页", "均方误差", "losses"]
    assert en["config"]["lang"] == ["en"]
    assert zh["config"]["lang"] == ["en", "zh"]
    assert zh["config"]["separator"] == en["config"]["separator"] == "[\\s\\-]+"
    assert "首页" in (tmp_path / "zh" / "search" / "search_index.json").read_text("utf-8")
    assert not (tmp_path / "search" / "search_index.js").exists()


def test_search_index_waits_for_the_last_language(tmp_path: Path) -> None:
    _write_combined(tmp_path)
    _hook("search_per_language").on_post_build(_config(tmp_path, building=True))
    assert _index(tmp_path / "search" / "search_index.json") == COMBINED
    assert not (tmp_path / "zh").exists()


def test_offline_build_gets_each_index_as_a_script(tmp_path: Path) -> None:
    _write_combined(tmp_path)
    _hook("search_per_language").on_post_build(_config(tmp_path, offline=True))
    for lang_dir in (tmp_path, tmp_path / "zh"):
        script = (lang_dir / "search" / "search_index.js").read_text("utf-8")
        assert script.startswith("var __index = ")
        assert json.loads(script.removeprefix("var __index = ")) == _index(
            lang_dir / "search" / "search_index.json"
        )


@pytest.mark.parametrize(
    ("lang", "base", "expected"), [("en", "../..", "../.."), ("zh", "../../..", "../../../zh/")]
)
def test_a_page_fetches_its_own_language_index(lang: str, base: str, expected: str) -> None:
    config = _config(Path("."))
    config.plugins["i18n"].current_language = lang
    context = _hook("search_per_language").on_page_context({"base_url": base}, None, config, None)
    assert context["base_url"] == expected


# -- notebook pages ----------------------------------------------------------


class _Files:
    def __init__(self, urls: dict[str, str]) -> None:
        self.urls = urls

    def get_file_from_path(self, path: str) -> Any:
        return SimpleNamespace(url=self.urls[path]) if path in self.urls else None


def _page(src_uri: str, url: str) -> Any:
    return SimpleNamespace(file=SimpleNamespace(src_uri=src_uri), url=url)


NOTEBOOK_HTML = (
    '<style type="text/css">\n@charset "UTF-8";.jupyter-wrapper{color:red}</style>'
    "<!-- Load mathjax --><script src='https://cdn.example/mathjax.js'></script>"
    "<!-- End of mathjax configuration -->"
    '<div class="highlight-ipynb">x = 1</div>'
    '<div class="jp-OutputArea-output">42</div>'
    '<a href="../formulas/losses.md#eq-mse">MSE</a> <a href="https://keras.io">Keras</a>'
)


def test_notebook_page_links_the_stylesheet_and_drops_the_loaders() -> None:
    hook = _hook("notebook_pages")
    files = _Files({"formulas/losses.md": "formulas/losses/"})
    html = hook.on_page_content(
        NOTEBOOK_HTML, _page("notebooks/optimizers.ipynb", "notebooks/optimizers/"), None, files
    )
    assert '<link rel="stylesheet" href="../../assets/jupyter/index.css">' in html
    assert "jupyter-wrapper{" not in html
    assert "mathjax" not in html
    assert '<a href="../../formulas/losses/#eq-mse">MSE</a>' in html
    assert '<a href="https://keras.io">Keras</a>' in html
    assert '<div data-search-exclude class="highlight-ipynb">' in html
    assert '<div data-search-exclude class="jp-OutputArea-output">' in html


def test_markdown_page_keeps_its_html_but_code_leaves_the_search_index() -> None:
    html = '<div class="highlight"><pre>x</pre></div><p>prose</p>'
    page = _page("formulas/losses.md", "formulas/losses/")
    out = _hook("notebook_pages").on_page_content(html, page, None, _Files({}))
    assert out == '<div data-search-exclude class="highlight"><pre>x</pre></div><p>prose</p>'


# -- the <head> without hreflang links -----------------------------------------


def test_head_override_is_materials_block_without_the_alternate_links() -> None:
    # docs/overrides/main.html copies Material's site_meta block; after an upgrade of
    # Material this fails until the copy is refreshed (minus the hreflang loop).
    import material

    base = (Path(material.__file__).parent / "templates" / "base.html").read_text("utf-8")
    block = re.search(r"{% block site_meta %}\n(.*?)\n\s*{% endblock %}", base, re.S)
    assert block is not None
    alternate = re.compile(r"\s*{% if config.extra.alternate is iterable %}.*?{% endif %}", re.S)
    expected = alternate.sub("", block.group(1), count=1)
    override = (ROOT / "docs" / "overrides" / "main.html").read_text("utf-8")
    ours = re.search(r"{% block site_meta %}\n(.*?)\n{% endblock %}", override, re.S)
    assert ours is not None
    assert ours.group(1) == expected
    assert 'rel="alternate" href="{{ alt.link' not in override


# -- API pages rendered once for both languages ---------------------------------


def _handler() -> Any:
    return SimpleNamespace(_modules_collection=object(), _lines_collection=object())


def _build_config(building: bool, python: Any = None) -> Any:
    python = python or _handler()
    mkdocstrings = SimpleNamespace(
        config=SimpleNamespace(enable_inventory=None), get_handler={"python": python}.__getitem__
    )
    return SimpleNamespace(
        plugins={"i18n": SimpleNamespace(building=building), "mkdocstrings": mkdocstrings}
    )


def test_api_html_is_rendered_once_per_build_and_replays_its_headings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mkdocstrings_handlers.python import PythonHandler

    calls: list[str] = []

    def render(self: Any, data: Any, options: Any, locale: str | None = None) -> str:
        calls.append(data.path)
        self._headings.append(f"<h2 id={data.path}>")  # what a render leaves for the TOC
        return f"<div>{data.path} v{len(calls)}</div>"

    monkeypatch.setattr(PythonHandler, "render", render)
    hook = _hook("i18n_generated")  # captures `render` as the original
    first, second = SimpleNamespace(_headings=[]), SimpleNamespace(_headings=[])
    losses = SimpleNamespace(path="release_spec.losses")

    hook.on_pre_build(_build_config(building=False))  # the English build
    assert PythonHandler.render(first, losses, "opts", "en") == "<div>release_spec.losses v1</div>"
    hook.on_pre_build(_build_config(building=True))  # the Chinese one, nested in it
    assert PythonHandler.render(second, losses, "opts", "en") == "<div>release_spec.losses v1</div>"
    assert calls == ["release_spec.losses"]
    assert second._headings == first._headings == ["<h2 id=release_spec.losses>"]
    assert PythonHandler.render(second, losses, "other", "en").endswith("v2</div>")  # new options

    english = _build_config(building=False)
    hook.on_pre_build(english)  # the next build (mkdocs serve, after an edit): rendered anew
    assert PythonHandler.render(first, losses, "opts", "en").endswith("v3</div>")
    assert english.plugins["mkdocstrings"].config.enable_inventory is None
    chinese = _build_config(building=True)
    hook.on_pre_build(chinese)
    assert chinese.plugins["mkdocstrings"].config.enable_inventory is False  # objects.inv: English

    again = _hook("i18n_generated")  # mkdocs serve reloads the hooks: no wrapper of a wrapper
    again.on_pre_build(_build_config(building=False))
    assert PythonHandler.render(first, losses, "opts", "en").endswith("v4</div>")
    assert again._render is render


def test_the_second_build_uses_the_modules_griffe_loaded_for_the_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mkdocstrings_handlers.python import PythonHandler

    monkeypatch.setattr(PythonHandler, "render", PythonHandler.render)  # restored afterwards
    hook = _hook("i18n_generated")
    english, chinese, english_again = _handler(), _handler(), _handler()
    loaded = (english._modules_collection, english._lines_collection)
    fresh = (english_again._modules_collection, english_again._lines_collection)

    hook.on_pre_build(_build_config(building=False, python=english))
    hook.on_pre_build(_build_config(building=True, python=chinese))  # nested in the English one
    assert (chinese._modules_collection, chinese._lines_collection) == loaded
    assert (english._modules_collection, english._lines_collection) == loaded
    hook.on_pre_build(_build_config(building=False, python=english_again))  # after an edit
    assert (english_again._modules_collection, english_again._lines_collection) == fresh
