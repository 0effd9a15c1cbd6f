"""One search index per language (mkdocs-static-i18n 1.3 writes one for all): ``zh/`` entries go
to ``zh/search/`` unprefixed, fetched with base URL ``zh/`` (``.js`` for Material's offline plugin).
"""

import json
from pathlib import Path
from typing import Any

from mkdocs.plugins import event_priority


def on_page_context(context: dict[str, Any], page: Any, config: Any, nav: Any) -> dict[str, Any]:
    i18n = config.plugins["i18n"]
    if i18n.current_language != i18n.default_language:
        context["base_url"] = f"{context['base_url']}/{i18n.current_language}/"  # a folder
    return context


@event_priority(-110)  # after mkdocs-static-i18n (-100) has built every language
def on_post_build(config: Any) -> None:
    if (i18n := config.plugins["i18n"]).building:  # another language's build, nested in this
        return
    index = json.loads(Path(config.site_dir, "search", "search_index.json").read_text("utf-8"))
    docs: dict[str, list[dict[str, Any]]] = {lang: [] for lang in i18n.build_languages}
    for doc in index["docs"]:  # a page's language is its first folder, or the default one
        first = doc["location"].split("/", 1)[0]
        docs[first if first in docs else i18n.default_language].append(doc)
    for lang, entries in docs.items():
        prefix = "" if lang == i18n.default_language else f"{lang}/"
        entries = [{**doc, "location": doc["location"].removeprefix(prefix)} for doc in entries]
        # Chinese pages name code and libraries in English: both lunr pipelines for them.
        settings = {**index["config"], "lang": list(dict.fromkeys(["en", lang]))}
        data = json.dumps({"config": settings, "docs": entries}, ensure_ascii=False)
        out = Path(config.site_dir, prefix, "search")
        out.mkdir(parents=True, exist_ok=True)
        (out / "search_index.json").write_text(data, "utf-8")
        if (offline := config.plugins.get("material/offline")) and offline.config.enabled:
            (out / "search_index.js").write_text(f"var __index = {data}", "utf-8")
