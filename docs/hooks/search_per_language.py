"""One search index per language: a page fetches only its own language's entries.

mkdocs-static-i18n (1.3) writes one ``search/search_index.json`` for all languages; it is
split here by location: ``zh/...`` entries go to ``zh/search/`` without their prefix, and
Chinese pages get ``zh/`` as the base URL from which Material's script fetches the index
(``.js`` for file://, as Material's offline plugin inlines it) and resolves results.
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
    i18n = config.plugins["i18n"]
    if i18n.building:  # the build of another language, nested in the default one's
        return
    index = json.loads(Path(config.site_dir, "search", "search_index.json").read_text("utf-8"))

    def language(location: str) -> str:
        first = location.split("/", 1)[0]
        return first if first in i18n.build_languages else i18n.default_language

    for lang in i18n.build_languages:
        prefix = "" if lang == i18n.default_language else f"{lang}/"
        entries = [
            {**doc, "location": doc["location"].removeprefix(prefix)}
            for doc in index["docs"]
            if language(doc["location"]) == lang
        ]
        # Chinese pages name code and libraries in English: both lunr pipelines for them.
        settings = {**index["config"], "lang": list(dict.fromkeys(["en", lang]))}
        data = json.dumps({"config": settings, "docs": entries}, ensure_ascii=False)
        out = Path(config.site_dir, prefix, "search")
        out.mkdir(parents=True, exist_ok=True)
        (out / "search_index.json").write_text(data, "utf-8")
        if (offline := config.plugins.get("material/offline")) and offline.config.enabled:
            (out / "search_index.js").write_text(f"var __index = {data}", "utf-8")
